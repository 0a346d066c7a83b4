"""Cameras and sites as the signed-in user may see them (pages and JSON from the same data), and a
camera's name and site changed (``PATCH /api/v1/cameras/{id}``: the camera page's management card,
``js/camera_manage.js``; the ONVIF operations it also offers are in :mod:`web.views_discovery`)."""

from __future__ import annotations

from aiohttp import web

from onvif_bridge.onboarding_common import OnboardingError
from vms import catalog
from web.camera_page import camera_page_context, events_status
from web.inputs import bad_request, get_int, get_str, json_object, match_id, query_int
from web.keys import GATEWAY, SERVICES, principal_of
from web.middleware import client_address, json_error
from web.render import render
from web.routing import Param, Routes
from web.schemas import (
    BOOL,
    CAMERA,
    CAMERA_DETAIL,
    EVENT_PUMP,
    ID,
    MAX_ID,
    RECORDING_STATUS,
    SITE,
    SOAP_LOG,
    array,
    obj,
    or_blank,
)
from web.views_discovery import onboarding_of
from web.views_recording import live_status

routes = Routes()


async def _camera_detail(request: web.Request) -> dict[str, object]:
    principal = principal_of(request)
    assert principal is not None
    try:
        return await request.app[GATEWAY].read(catalog.camera_detail, principal, match_id(request))
    except catalog.NotFound:
        raise web.HTTPNotFound(text="no such camera") from None


@routes.route("GET", "/api/v1/sites", access="login", summary="Sites you may see",
              response=obj(sites=array(SITE)))
async def api_sites(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    assert principal is not None
    return web.json_response({"sites": await request.app[GATEWAY].read(catalog.list_sites,
                                                                       principal)})


@routes.route("GET", "/api/v1/cameras", access="live",
              query=(Param("site_id", "only this site", or_blank(ID)),
                     Param("archived", "false (default): cameras in service; true: removed "
                                       "cameras whose recordings are kept; all: both",
                           {"type": "string", "enum": ["false", "true", "all"]})),
              summary="Cameras you may see, with site and status",
              response=obj(cameras=array(CAMERA)))
async def api_cameras(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    assert principal is not None
    site_id = query_int(request, "site_id", minimum=1, maximum=MAX_ID)
    choice = request.query.get("archived", "false")
    archived = {"false": False, "true": True, "all": None}.get(choice, "bad")
    if archived == "bad":
        raise bad_request("query parameter 'archived' must be false, true or all")
    cameras = await request.app[GATEWAY].read(catalog.list_cameras, principal, site_id,
                                              archived=archived)
    return web.json_response({"cameras": cameras})


@routes.route("GET", "/api/v1/cameras/{id}", access="live",
              summary="One camera, with streams, recording status and event pump",
              response={**CAMERA_DETAIL,
                        "properties": {**CAMERA_DETAIL["properties"], "recording": RECORDING_STATUS,
                                       "events": EVENT_PUMP},
                        "required": [*CAMERA_DETAIL["required"], "recording", "events"]})
async def api_camera(request: web.Request) -> web.StreamResponse:
    detail = await _camera_detail(request)
    stored = {"state": detail["status"], "reason": detail["status_reason"],
              "since_us": detail["status_since_us"]}
    detail["recording"] = live_status(request.app, int(str(detail["id"])), stored)
    detail["events"] = events_status(request.app, int(str(detail["id"])))
    return web.json_response(detail)


def _soap_log(request: web.Request, camera_id: int) -> dict[str, object]:
    pumps = request.app[SERVICES].get("event_pumps")
    if pumps is None:
        return {"enabled": False, "exchanges": []}
    log = pumps.soap_log(camera_id)
    return {"enabled": log.enabled, "exchanges": log.entries()}


@routes.route("GET", "/api/v1/cameras/{id}/events/soap-log", access="manage_cameras",
              summary="The raw SOAP of the camera's event pump (last 50 exchanges while the "
                      "switch is on; credentials redacted)",
              response=SOAP_LOG)
async def api_soap_log(request: web.Request) -> web.StreamResponse:
    detail = await _camera_detail(request)  # 404 for a camera of another site
    return web.json_response(_soap_log(request, int(str(detail["id"]))))


@routes.route("PUT", "/api/v1/cameras/{id}/events/soap-log", access="manage_cameras",
              summary="Switch the raw SOAP log of the camera's event pump on or off (off clears "
                      "it; in memory only, until the server stops)",
              body=obj(enabled=BOOL), response=SOAP_LOG)
async def api_soap_log_switch(request: web.Request) -> web.StreamResponse:
    detail = await _camera_detail(request)
    body = await json_object(request)
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise bad_request("'enabled' must be true or false")
    pumps = request.app[SERVICES].get("event_pumps")
    if pumps is None:
        raise web.HTTPConflict(text="ONVIF events are not running on this server")
    pumps.soap_log(int(str(detail["id"])), str(detail["name"])).set(enabled)
    return web.json_response(_soap_log(request, int(str(detail["id"]))))


@routes.route("PATCH", "/api/v1/cameras/{id}", access="manage_cameras",
              summary="Rename a camera (here only) and/or move it to another site of yours; its "
                      "recordings go with it; audited",
              body={"type": "object", "minProperties": 1, "additionalProperties": False,
                    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200},
                                   "site_id": ID}},
              response=CAMERA_DETAIL)
async def api_camera_patch(request: web.Request) -> web.StreamResponse:
    camera_id = match_id(request)
    data = await json_object(request)
    name = get_str(data, "name", required=False, max_len=200).strip() if "name" in data else None
    site_id = get_int(data, "site_id", required=False, minimum=1, maximum=MAX_ID)
    if name is None and site_id is None:
        raise bad_request("give 'name' and/or 'site_id'")
    if name == "":
        raise bad_request("field 'name' must not be empty")
    principal = principal_of(request)
    assert principal is not None
    # the onboarding service is the one door for camera changes (site checks, audit, recorder)
    service = onboarding_of(request.app)
    kinds = {"invalid": 400, "not_found": 404, "conflict": 409}
    try:
        if site_id is not None:
            await service.move(principal, camera_id, site_id, address=client_address(request))
        if name is not None:
            await service.rename(principal, camera_id, name, address=client_address(request))
    except OnboardingError as exc:
        return json_error(kinds.get(exc.kind, 400), str(exc))
    return web.json_response(await _camera_detail(request))


@routes.route("GET", "/cameras", access="live", summary="Camera list page")
async def cameras_page(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    assert principal is not None
    cameras = await request.app[GATEWAY].read(catalog.list_cameras, principal)
    archived = await request.app[GATEWAY].read(catalog.list_cameras, principal, archived=True)
    return render(request, "cameras.html", {"cameras": cameras, "archived": archived})


@routes.route("GET", "/cameras/{id}", access="live", summary="Camera page")
async def camera_page(request: web.Request) -> web.StreamResponse:
    camera = await _camera_detail(request)
    principal = principal_of(request)
    assert principal is not None
    sites = (await request.app[GATEWAY].read(catalog.list_sites, principal)
             if principal.can("manage_cameras") else [])
    return render(request, "camera.html", camera_page_context(request, camera, sites=sites))
