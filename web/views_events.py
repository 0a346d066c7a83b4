"""Camera events: ``GET /api/v1/events`` (search), ``GET /api/v1/events/stream`` (server-sent
events), the ``/events`` page, and a camera's event settings (``PUT
/api/v1/cameras/{id}/events/settings``, the form on the camera's page).

Everything is scoped by the user's sites: the search and the resumption read rows of the user's
sites only; the live feed's listener drops other sites' events before they are queued; a camera
or site filter naming one the user may not see is a 404, like every other route. The store is
``app[SERVICES]["events"]`` (:class:`vms.events.EventStore`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from vms import audit, catalog
from vms.auth import Principal
from vms.bus import CameraChanged
from vms.clock import Clock
from vms.db import models as m
from vms.events import (
    EVENT_TYPES,
    PAGE_MAX,
    BadCursor,
    EventQuery,
    EventStore,
    after_id,
    format_types,
    max_id,
    parse_types,
    search,
)
from web.inputs import json_object, match_id, query_instant, query_int
from web.keys import BUS, CLOCK, GATEWAY, principal_of, service_of
from web.middleware import json_error
from web.render import render
from web.routing import Param, Routes
from web.schemas import ANY_OBJECT, ID, INSTANT, INT, STR, US, array, enum, nullable, obj

log = logging.getLogger(__name__)
routes = Routes()

RESUME_MAX = 1000
"""At most this many missed events are replayed to a client resuming with Last-Event-ID."""

EVENT = obj(id=INT, camera_id=INT, camera_name=STR, site_id=INT, site_name=STR,
            type=enum(*EVENT_TYPES), topic=STR, start_us=US, end_us=nullable(US), data=ANY_OBJECT)
EVENTS = obj(events=array(EVENT), next_cursor=nullable(STR))
EVENT_SETTINGS = obj(camera_id=INT, kept=array(enum(*EVENT_TYPES)),
                     recorded=array(enum(*EVENT_TYPES)))

QUERY = (
    Param("site_id", "only this site", ID),
    Param("camera_id", "only this camera", ID),
    Param("type", "only this type", enum(*EVENT_TYPES)),
    Param("from", "events that started at or after this instant", INSTANT),
    Param("to", "events that started before this instant", INSTANT),
    Param("plate", "plate text, found anywhere in the plate; case, spaces, dashes and "
                   "look-alike Cyrillic letters do not matter"),
    Param("limit", f"1–{PAGE_MAX} (default 100)", {"type": "integer", "minimum": 1,
                                                  "maximum": PAGE_MAX}),
    Param("cursor", "next_cursor of the previous page"),
)


def _principal(request: web.Request) -> Principal:
    principal = principal_of(request)
    assert principal is not None
    return principal


def _store(request: web.Request) -> EventStore:
    return service_of(request.app, "events", EventStore, "the event store is not running")


async def _query(request: web.Request) -> EventQuery:
    """The filters of a search; a camera or site the user may not see is a 404."""
    principal = _principal(request)
    gw = request.app[GATEWAY]
    site_id = query_int(request, "site_id", minimum=1)
    camera_id = query_int(request, "camera_id", minimum=1)
    etype = request.query.get("type", "") or None
    if etype is not None and etype not in EVENT_TYPES:
        raise web.HTTPBadRequest(text=f"query parameter 'type': unknown type {etype!r} "
                                      f"(known: {', '.join(EVENT_TYPES)})")
    try:
        if site_id is not None:
            await gw.read(catalog.get_site, principal, site_id)
        if camera_id is not None:
            await gw.read(catalog.get_camera, principal, camera_id)
    except catalog.NotFound as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    limit = query_int(request, "limit", default=100, minimum=1, maximum=PAGE_MAX)
    assert limit is not None
    plate = request.query.get("plate", "")
    if len(plate) > 100:
        raise web.HTTPBadRequest(text="query parameter 'plate': at most 100 characters")
    return EventQuery(site_id=site_id, camera_id=camera_id, type=etype,
                      from_us=query_instant(request, "from"), to_us=query_instant(request, "to"),
                      plate=plate, limit=limit, cursor=request.query.get("cursor", ""))


async def _search(request: web.Request) -> dict[str, Any]:
    q = await _query(request)
    try:
        return await request.app[GATEWAY].read(search, _principal(request), q)
    except BadCursor as exc:
        raise web.HTTPBadRequest(text=f"query parameter 'cursor': {exc}") from None


@routes.route("GET", "/api/v1/events", access="playback", query=QUERY, response=EVENTS,
              summary="Camera events of your sites, newest first (filters: site, camera, type, "
                      "time, partial plate text); next_cursor pages on")
async def api_events(request: web.Request) -> web.StreamResponse:
    return web.json_response(await _search(request))


def _sse(kind: str, payload: dict[str, Any], event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


@routes.route("GET", "/api/v1/events/stream", access="playback",
              query=(Param("last_event_id", "resume after this event id (like the "
                                            "Last-Event-ID header)", ID),),
              media=("text/event-stream",),
              summary="Live camera events of your sites (server-sent events: ``event`` with "
                      "``id:`` = event id, ``end`` when an interval closes); Last-Event-ID "
                      "resumes from the store")
async def api_events_stream(request: web.Request) -> web.StreamResponse:
    principal = _principal(request)
    store = _store(request)
    gw = request.app[GATEWAY]
    last_text = request.headers.get("Last-Event-ID") or request.query.get("last_event_id", "")
    last_id: int | None = None
    if last_text:
        if not (last_text.isascii() and last_text.isdigit()) or len(last_text) > 18:
            raise web.HTTPBadRequest(text="Last-Event-ID: expected an event id")
        last_id = int(last_text)
    listener = store.listen(principal.site_ids)  # before the replay: nothing falls in between
    try:
        if last_id is None:
            last_id = await gw.read(max_id)
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-store",
            "X-Accel-Buffering": "no"})
        await response.prepare(request)
        await response.write(b"retry: 2000\n\n")
        replayed = await gw.read(after_id, principal, last_id, RESUME_MAX)
        for row in replayed:
            await response.write(_sse("event", row, row["id"]))
            last_id = row["id"]
        while True:
            try:
                item = await asyncio.wait_for(listener.queue.get(), store.feed_heartbeat_s)
            except TimeoutError:
                await response.write(b": heartbeat\n\n")
                continue
            if item is None:
                break
            if item.kind == "event":
                if item.id <= last_id:
                    continue  # already sent by the replay
                await response.write(_sse("event", item.row, item.id))
            else:
                await response.write(_sse(item.kind, item.row))
        return response
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    finally:
        listener.close()


# --- the page -------------------------------------------------------------------------------------

@routes.route("GET", "/events", access="playback", query=QUERY,
              summary="Events page: filters, live updates, snapshots, links to playback")
async def events_page(request: web.Request) -> web.StreamResponse:
    principal = _principal(request)
    gw = request.app[GATEWAY]
    result = await _search(request)
    sites = await gw.read(catalog.list_sites, principal)
    cameras = await gw.read(catalog.list_cameras, principal, None, archived=None)
    filters = {k: request.query.get(k, "") for k in
               ("site_id", "camera_id", "type", "from", "to", "plate")}
    return render(request, "events.html", {
        "events": result["events"], "next_cursor": result["next_cursor"], "sites": sites,
        "cameras": cameras, "types": EVENT_TYPES, "filters": filters,
        "live": not request.query.get("cursor") and not request.query.get("to"),
        "now_us": request.app[CLOCK].now_us()})


# --- a camera's event settings ----------------------------------------------------------------

def _settings_of(principal: Principal, camera_id: int) -> dict[str, Any]:
    cam = catalog.get_camera(principal, camera_id)
    return {"camera_id": cam.id, "kept": sorted(_types(cam.event_types_kept)),
            "recorded": sorted(_types(cam.event_types_recorded))}


def _types(text: str) -> frozenset[str]:
    try:
        return parse_types(text)
    except ValueError:
        return frozenset(EVENT_TYPES)


def _save(principal: Principal, camera_id: int, kept: frozenset[str],
          recorded: frozenset[str], clock: Clock) -> dict[str, Any]:
    cam = catalog.get_camera(principal, camera_id)
    m.Camera.update(event_types_kept=format_types(kept),
                    event_types_recorded=format_types(recorded), updated_us=clock.now_us()).where(
        m.Camera.id == cam.id).execute()
    audit.record(clock, "camera_event_settings", principal=principal, target=f"camera:{cam.id}",
                 site_id=cam.site_id, detail={"kept": sorted(kept), "recorded": sorted(recorded)})
    return _settings_of(principal, camera_id)


def _types_field(data: dict[str, Any], key: str) -> frozenset[str]:
    value = data.get(key)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key!r}: expected a list of event types")
    return parse_types(",".join(value))


async def _apply(request: web.Request, data: dict[str, Any]) -> dict[str, Any]:
    principal = _principal(request)
    camera_id = match_id(request)
    try:
        kept = _types_field(data, "kept")
        recorded = _types_field(data, "recorded")
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    try:
        result = await request.app[GATEWAY].write(_save, principal, camera_id, kept, recorded,
                                                  request.app[CLOCK])
    except catalog.NotFound as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    request.app[BUS].publish(CameraChanged(camera_id, reason="event_settings"))
    return result


@routes.route("GET", "/api/v1/cameras/{id}/events/settings", access="playback",
              response=EVENT_SETTINGS,
              summary="A camera's event settings: types kept in the store, types that trigger "
                      "recording")
async def api_event_settings(request: web.Request) -> web.StreamResponse:
    try:
        result = await request.app[GATEWAY].read(_settings_of, _principal(request),
                                                 match_id(request))
    except catalog.NotFound as exc:
        return json_error(404, str(exc))
    return web.json_response(result)


@routes.route("PUT", "/api/v1/cameras/{id}/events/settings", access="manage_cameras",
              body=obj(kept=array(enum(*EVENT_TYPES)), recorded=array(enum(*EVENT_TYPES))),
              response=EVENT_SETTINGS,
              summary="Set which event types a camera keeps and which trigger recording")
async def api_put_event_settings(request: web.Request) -> web.StreamResponse:
    return web.json_response(await _apply(request, await json_object(request)))


@routes.route("POST", "/cameras/{id}/events/settings", access="manage_cameras",
              summary="The camera page's event settings form")
async def post_event_settings(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    data = {"kept": form.getall("kept", []), "recorded": form.getall("recorded", [])}
    await _apply(request, data)
    raise web.HTTPSeeOther(f"/cameras/{match_id(request)}#events")

