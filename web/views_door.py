"""Door release and doorbell rings over HTTP: a camera's relays, the door pulse, answering a
ring, the missed calls (JSON and the ``/calls`` page).

``POST /api/v1/cameras/{id}/relays/{token}/pulse`` needs the ``door`` right (viewers — residents —
have it for their own sites); another site's camera is a 404 like every camera route; the per-user
rate limit answers 429 with ``Retry-After``; a camera that refused or did not answer is a 424.
Every attempt is audited by the service (:class:`onvif_bridge.doors.DoorService`, in
``app[SERVICES]["doors"]``). A pulse or an acknowledgement that answers ringing doorbell events is
told to the site's open pages through the live event feed (``answered``), so they stop ringing.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from onvif_bridge.doors import RELAY_NAME_PATTERN, DoorError, DoorService
from onvif_bridge.onboarding_common import OnboardingError
from vms import catalog, rings
from vms.auth import Principal
from vms.events import EventStore
from web.inputs import match_id, query_instant, query_int
from web.keys import CLOCK, GATEWAY, SERVICES, SETTINGS, principal_of, service_of
from web.middleware import client_address, json_error
from web.render import render
from web.routing import Param, Routes
from web.schemas import BOOL, ID, INSTANT, INT, NUM, STR, US, array, enum, nullable, obj

log = logging.getLogger(__name__)
routes = Routes()

_HTTP_STATUS = {"invalid": 400, "not_found": 404, "conflict": 409, "camera": 424,
                "rate_limited": 429}
TOKEN = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": RELAY_NAME_PATTERN}

RELAY = obj(token=STR, mode=STR, delay_s=nullable(NUM), idle_state=STR, modes=array(STR),
            monostable=BOOL, listed_us=US)
RELAYS = obj(camera_id=INT, pulse_s=INT, relays=array(RELAY))
PULSE = obj(camera_id=INT, relay=STR, method=enum("monostable", "active_inactive"), pulse_s=INT,
            released=BOOL, answered=array(INT))
ANSWER = obj(event_id=INT, site_id=INT, camera_id=INT, how=enum(*rings.HOWS), username=STR,
             at_us=US)
MISSED = obj(calls=array(obj(id=INT, camera_id=INT, camera_name=STR, site_id=INT, site_name=STR,
                             timezone=STR, start_us=US, snapshot_url=STR)),
             ring_seconds=INT, next_before=nullable(US))
MISSED_QUERY = (Param("camera_id", "only this camera", ID),
                Param("before", "calls that rang before this instant (next_before pages on)",
                      INSTANT),
                Param("limit", "1–500 (default 100)", {"type": "integer", "minimum": 1,
                                                      "maximum": 500}))


def _principal(request: web.Request) -> Principal:
    principal = principal_of(request)
    assert principal is not None
    return principal


def _doors(request: web.Request) -> DoorService:
    return service_of(request.app, "doors", DoorService,
                      "door release is not running on this server")


def _refused(exc: OnboardingError) -> web.Response:
    response = json_error(_HTTP_STATUS.get(exc.kind, 400), str(exc))
    if isinstance(exc, DoorError) and exc.retry_after_s:
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def _announce(request: web.Request, answered: list[tuple[int, int]], how: str,
              username: str) -> None:
    store = request.app[SERVICES].get("events")
    if not isinstance(store, EventStore):
        return
    for event_id, site_id in answered:
        store.announce("answered", event_id, site_id,
                       {"id": event_id, "how": how, "username": username})


@routes.route("GET", "/api/v1/cameras/{id}/relays", access="live", response=RELAYS,
              summary="A camera's relay outputs (door locks) as listed at adoption or refresh; "
                      "monostable: a pulse is asked of the camera as Monostable")
async def api_relays(request: web.Request) -> web.StreamResponse:
    service = _doors(request)
    try:
        relays = await service.relays(_principal(request), match_id(request))
    except OnboardingError as exc:
        return _refused(exc)
    return web.json_response({"camera_id": match_id(request), "pulse_s": service.pulse_s,
                              "relays": relays})


@routes.route("POST", "/api/v1/cameras/{id}/relays/refresh", access="manage_cameras",
              response=RELAYS, summary="Ask the camera for its relay outputs again and store them")
async def api_relays_refresh(request: web.Request) -> web.StreamResponse:
    service = _doors(request)
    try:
        relays = await service.refresh(_principal(request), match_id(request))
    except OnboardingError as exc:
        return _refused(exc)
    return web.json_response({"camera_id": match_id(request), "pulse_s": service.pulse_s,
                              "relays": relays})


@routes.route("POST", "/api/v1/cameras/{id}/relays/{token}/pulse", access="door",
              params={"token": TOKEN}, response=PULSE,
              summary="Open the door: set the relay active for [intercom] pulse_seconds "
                      "(Monostable where supported, else active then inactive); rate-limited "
                      "per user and camera (429 with Retry-After), always audited")
async def api_pulse(request: web.Request) -> web.StreamResponse:
    principal = _principal(request)
    token = request.match_info.get("token", "")
    try:
        result = await _doors(request).pulse(principal, match_id(request), token,
                                             address=client_address(request))
    except OnboardingError as exc:
        return _refused(exc)
    _announce(request, result.pop("answered_sites"), "door", principal.username)
    return web.json_response(result)


RINGS = obj(ring_seconds=INT, now_us=US, rings=array(obj(
    id=INT, camera_id=INT, camera_name=STR, site_id=INT, start_us=US)))


@routes.route("GET", "/api/v1/rings", access="door", response=RINGS,
              summary="Doorbell events of your sites ringing now (unanswered, within "
                      "[intercom] ring_seconds), with the server's time")
async def api_rings(request: web.Request) -> web.StreamResponse:
    ring_s = request.app[SETTINGS].intercom.ring_seconds
    now_us = request.app[CLOCK].now_us()
    found = await request.app[GATEWAY].read(rings.ringing, _principal(request), now_us,
                                            ring_s * 1_000_000)
    return web.json_response({"ring_seconds": ring_s, "now_us": now_us, "rings": found})


@routes.route("POST", "/api/v1/rings/{id}/answer", access="door", response=ANSWER,
              summary="Acknowledge a ringing doorbell event (it stops ringing on every page of "
                      "its site and is not a missed call); 409 once its ring is over")
async def api_ring_answer(request: web.Request) -> web.StreamResponse:
    principal = _principal(request)
    window_us = request.app[SETTINGS].intercom.ring_seconds * 1_000_000
    try:
        result = await request.app[GATEWAY].write(rings.acknowledge, principal,
                                                  match_id(request), request.app[CLOCK].now_us(),
                                                  window_us)
    except rings.RingNotFound as exc:
        return json_error(404, str(exc))
    except rings.RingOver as exc:
        return json_error(409, str(exc))
    _announce(request, [(result["event_id"], result["site_id"])], result["how"],
              result["username"])
    return web.json_response(result)


async def _missed(request: web.Request) -> dict[str, Any]:
    principal = _principal(request)
    ring_s = request.app[SETTINGS].intercom.ring_seconds
    limit = query_int(request, "limit", default=100, minimum=1, maximum=500) or 100
    camera_id = query_int(request, "camera_id", minimum=1)
    if camera_id is not None:
        try:
            await request.app[GATEWAY].read(catalog.get_camera, principal, camera_id)
        except catalog.NotFound as exc:
            raise web.HTTPNotFound(text=str(exc)) from None
    calls = await request.app[GATEWAY].read(
        rings.missed_calls, principal, request.app[CLOCK].now_us(), ring_s * 1_000_000,
        camera_id=camera_id, before_us=query_instant(request, "before"), limit=limit)
    return {"calls": calls, "ring_seconds": ring_s,
            "next_before": calls[-1]["start_us"] if len(calls) == limit else None}


@routes.route("GET", "/api/v1/calls/missed", access="door", query=MISSED_QUERY,
              response=MISSED,
              summary="Missed calls: doorbell events of your sites nobody answered (no door "
                      "opened, no acknowledgement) within [intercom] ring_seconds, newest first, "
                      "each with the recorded snapshot of its instant")
async def api_missed_calls(request: web.Request) -> web.StreamResponse:
    return web.json_response(await _missed(request))


@routes.route("GET", "/calls", access="door", query=MISSED_QUERY,
              summary="Missed calls page: snapshots from the recording, links to playback")
async def calls_page(request: web.Request) -> web.StreamResponse:
    return render(request, "calls.html", await _missed(request))


__all__ = ["routes"]
