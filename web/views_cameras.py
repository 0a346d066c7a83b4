"""Cameras and sites as the signed-in user may see them (pages and JSON from the same data)."""

from __future__ import annotations

from aiohttp import web

from vms import catalog
from web.inputs import bad_request, match_id, query_int
from web.keys import GATEWAY, principal_of
from web.render import render
from web.routing import Param, Routes
from web.schemas import CAMERA, CAMERA_DETAIL, ID, MAX_ID, RECORDING_STATUS, SITE, array, obj, or_blank
from web.views_recording import live_status, volume_names

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


@routes.route("GET", "/api/v1/cameras/{id}", access="live", summary="One camera, with streams",
              response={**CAMERA_DETAIL,
                        "properties": {**CAMERA_DETAIL["properties"], "recording": RECORDING_STATUS},
                        "required": [*CAMERA_DETAIL["required"], "recording"]})
async def api_camera(request: web.Request) -> web.StreamResponse:
    detail = await _camera_detail(request)
    stored = {"state": detail["status"], "reason": detail["status_reason"],
              "since_us": detail["status_since_us"]}
    detail["recording"] = live_status(request.app, int(str(detail["id"])), stored)
    return web.json_response(detail)


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
    return render(request, "camera.html", {"camera": camera, "volumes": volume_names(request)})
