"""Live view: a camera's live page, the multi-camera grid, and the live WebSocket.

``GET /api/v1/cameras/{id}/live?stream=main|sub`` upgrades to a WebSocket that carries one JSON
text message ``{"type": "init", "codec", "mime", "stream"}`` followed by the binary init segment,
then one binary fragmented-MP4 fragment (``moof``+``mdat``) per frame, and JSON ``status`` messages
(``{"type": "status", "message"}``) when the camera is being reconnected, ``{"type": "stall",
"since_us"}`` when no frame came for a second (``since_us``: when the last one did) and
``{"type": "resumed"}`` when frames flow again. Access and site scope are
checked before the upgrade: another site's camera answers 404 like every camera route. The stream
itself comes from :class:`recorder.live.LiveService` (``app[SERVICES]["live"]``) — or, in a
cluster, when another alive node holds the camera's lease, is relayed from that node
(web/cluster_proxy.py), so only the holder has a session with the camera.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from typing import Any

from aiohttp import WSMsgType, web

from recorder.live import STREAM_KINDS, LiveService, LiveUnavailable, Viewer
from vms import catalog, layouts
from web.cluster_proxy import close_when_held_elsewhere, live_holder_of, relay_ws
from web.inputs import bad_request, get_int, get_str, json_object, match_id, query_int
from web.keys import CLOCK, GATEWAY, SERVICES, principal_of
from web.render import render
from web.routing import Param, Routes
from web.schemas import ID, INT, MAX_ID, STR, US, array, enum, nullable, obj, path_id

log = logging.getLogger(__name__)

routes = Routes()

GRID_LAYOUTS = layouts.GRID_SIZES
WS_HEARTBEAT_S = 20.0
WS_MAX_MSG_BYTES = 64 * 1024


def _stream_kind(request: web.Request, default: str) -> str:
    kind = request.query.get("stream", default)
    if kind not in STREAM_KINDS:
        raise bad_request(f"stream must be one of {', '.join(STREAM_KINDS)}")
    return kind


def _live_service(request: web.Request) -> LiveService:
    service = request.app[SERVICES].get("live")
    if not isinstance(service, LiveService):
        raise web.HTTPServiceUnavailable(text="live view is not running on this server")
    return service


async def _camera(request: web.Request) -> dict[str, Any]:
    principal = principal_of(request)
    assert principal is not None
    try:
        return await request.app[GATEWAY].read(catalog.camera_detail, principal,
                                               match_id(request))
    except catalog.NotFound:
        raise web.HTTPNotFound(text="no such camera") from None


def _same_origin(request: web.Request) -> bool:
    """A browser WebSocket carries the page's Origin: refuse other sites (cross-site hijacking)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser (scripts, tests)
    return origin in (f"{request.scheme}://{request.host}", f"https://{request.host}",
                      f"http://{request.host}")


def _check_upgrade(request: web.Request) -> None:
    if not web.WebSocketResponse().can_prepare(request).ok:
        raise bad_request("this URL is a WebSocket: connect with 'Upgrade: websocket'")
    if not _same_origin(request):
        raise web.HTTPForbidden(text="WebSocket from another origin")


@routes.route("GET", "/api/v1/cameras/{id}/live", access="live",
              query=(Param("stream", "main (default) or sub", enum(*STREAM_KINDS)),),
              statuses=(101,), media=(),
              summary="Live video: a WebSocket of fragmented MP4 (init segment, then one "
                      "fragment per frame)")
async def api_live(request: web.Request) -> web.StreamResponse:
    camera = await _camera(request)
    kind = _stream_kind(request, "main")
    remote = await live_holder_of(request, camera["id"])
    if remote is not None:  # another node records it: its session, relayed (no second one here)
        _check_upgrade(request)
        return await relay_ws(request, remote, max_msg_size=WS_MAX_MSG_BYTES,
                              heartbeat_s=WS_HEARTBEAT_S, camera_id=camera["id"])
    service = _live_service(request)
    try:
        source = await service.resolve(camera["id"], kind)
    except LiveUnavailable as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    ws = web.WebSocketResponse(heartbeat=WS_HEARTBEAT_S, max_msg_size=WS_MAX_MSG_BYTES)
    _check_upgrade(request)
    try:
        viewer = await service.subscribe(source.camera_id, source.kind)
    except LiveUnavailable as exc:
        raise web.HTTPServiceUnavailable(text=str(exc)) from None
    try:
        await ws.prepare(request)
        principal = principal_of(request)
        log.info("live %s/%s: viewer %s joined", source.camera_id, source.kind,
                 principal.username if principal else "?")
        sender = asyncio.create_task(_send(ws, viewer, source.kind),
                                     name=f"live-ws-{source.camera_id}")
        moved = asyncio.create_task(close_when_held_elsewhere(request, ws, source.camera_id),
                                    name=f"live-lease-{source.camera_id}")
        try:
            async for msg in ws:  # the client sends nothing we need; this sees its close
                if msg.type == WSMsgType.ERROR:
                    break
                if sender.done():
                    break
        finally:
            if ws.closed and not moved.done():  # moved is closing it: let the handshake end
                await asyncio.wait({moved}, timeout=2)
            for task in (sender, moved):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        service.unsubscribe(viewer)
    return ws


async def _send(ws: web.WebSocketResponse, viewer: Viewer, kind: str) -> None:
    try:
        async for msg in viewer:
            if msg.kind == "init":
                mime = f'video/mp4; codecs="{msg.codec}"'
                await ws.send_str(json.dumps({"type": "init", "codec": msg.codec, "mime": mime,
                                              "stream": kind}))
                await ws.send_bytes(msg.data)
            elif msg.kind == "fragment":
                await ws.send_bytes(msg.data)
            elif msg.kind == "status":
                await ws.send_str(json.dumps({"type": "status", "message": msg.text}))
            elif msg.kind == "stall":
                await ws.send_str(json.dumps({"type": "stall", "since_us": msg.since_us}))
            elif msg.kind == "resumed":
                await ws.send_str(json.dumps({"type": "resumed"}))
        await ws.send_str(json.dumps({"type": "closed", "message": viewer.close_reason}))
    except (ConnectionResetError, RuntimeError):  # the client went away mid-send
        pass
    finally:
        await ws.close()


@routes.route("GET", "/cameras/{id}/live", access="live",
              query=(("stream", "main (default) or sub"),), summary="Live view of one camera")
async def live_page(request: web.Request) -> web.StreamResponse:
    camera = await _camera(request)
    kind = _stream_kind(request, "main")
    kinds = [s["kind"] for s in camera["streams"] if s["rtsp_url"]]
    return render(request, "live.html", {"camera": camera, "stream": kind, "kinds": kinds})


@routes.route("GET", "/live", access="live",
              query=(("layout", "tiles per side: 1, 2 (default), 3 or 4"),
                     ("page", "page of cameras, from 1"), ("site_id", "only this site"),
                     ("layout_id", "one of your saved layouts")),
              summary="Live grid of the cameras you may see (sub streams), or a saved layout")
async def live_grid(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    assert principal is not None
    gw = request.app[GATEWAY]
    site_id = query_int(request, "site_id", minimum=1, maximum=MAX_ID)
    layout_id = query_int(request, "layout_id", minimum=1, maximum=MAX_ID)
    cameras = await gw.read(catalog.list_cameras, principal, site_id)
    saved = await gw.read(layouts.list_layouts, principal)
    by_id = {c["id"]: c for c in cameras}
    current = None
    if layout_id is not None:
        current = next((lay for lay in saved if lay["id"] == layout_id), None)
        if current is None:
            raise web.HTTPNotFound(text="no such layout")
        if site_id is not None:  # the layout's own cameras, whatever the site filter
            by_id = {c["id"]: c for c in await gw.read(catalog.list_cameras, principal)}
        layout = current["grid"]
        tiles = [by_id.get(c) if c is not None else None for c in current["camera_ids"]]
        page = pages = 1
    else:
        layout = query_int(request, "layout", default=2, minimum=1, maximum=4) or 2
        per_page = layout * layout
        pages = max(1, math.ceil(len(cameras) / per_page))
        page = query_int(request, "page", default=1, minimum=1, maximum=pages) or 1
        tiles = list(cameras[(page - 1) * per_page:page * per_page])
    return render(request, "grid.html", {
        "tiles": tiles, "cameras": [t for t in tiles if t is not None], "all_cameras": cameras,
        "layout": layout, "layouts": GRID_LAYOUTS, "page": page, "pages": pages,
        "site_id": site_id, "total": len(cameras), "saved": saved, "current": current})


# -- saved layouts --------------------------------------------------------------------------------

LAYOUT = obj(id=INT, name=STR, grid=INT, camera_ids=array(nullable(INT)), created_us=US,
             updated_us=US)
LAYOUT_BODY = {"type": "object", "required": ["name", "grid", "camera_ids"], "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": layouts.NAME_MAX},
    "grid": {"type": "integer", "enum": list(layouts.GRID_SIZES)},
    "camera_ids": {"type": "array", "maxItems": 16, "items": nullable(ID)}}}
LAYOUT_ID = {"id": path_id("layout id")}


def _layout_body(data: dict[str, Any]) -> tuple[str, int, list[int | None]]:
    name = get_str(data, "name", max_len=layouts.NAME_MAX)
    grid = get_int(data, "grid", minimum=1, maximum=4)
    assert grid is not None
    raw = data.get("camera_ids")
    if not isinstance(raw, list) or len(raw) > 16:
        raise bad_request("field 'camera_ids' must be a list of at most 16 camera ids or nulls")
    ids: list[int | None] = []
    for item in raw:
        if item is not None and (isinstance(item, bool) or not isinstance(item, int)
                                 or not 1 <= item <= MAX_ID):
            raise bad_request("field 'camera_ids' must hold camera ids or nulls")
        ids.append(item)
    if len(ids) > grid * grid:
        raise bad_request(f"field 'camera_ids': a {grid}×{grid} grid has {grid * grid} tiles")
    return name, grid, ids


async def _save(request: web.Request, layout_id: int | None) -> dict[str, Any]:
    principal = principal_of(request)
    assert principal is not None
    name, grid, ids = _layout_body(await json_object(request))
    try:
        return await request.app[GATEWAY].write(layouts.save_layout, request.app[CLOCK],
                                                principal, layout_id, name, grid, ids)
    except catalog.NotFound as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    except layouts.LayoutError as exc:
        raise web.HTTPConflict(text=str(exc)) from None


@routes.route("GET", "/api/v1/layouts", access="live", response=obj(layouts=array(LAYOUT)),
              summary="Your saved live layouts (cameras you may no longer see are empty tiles)")
async def api_layouts(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    assert principal is not None
    rows = await request.app[GATEWAY].read(layouts.list_layouts, principal)
    return web.json_response({"layouts": rows})


@routes.route("POST", "/api/v1/layouts", access="live", body=LAYOUT_BODY, response=LAYOUT,
              statuses=(201,), summary="Save a live layout: a grid and the camera of each tile")
async def api_layout_create(request: web.Request) -> web.StreamResponse:
    return web.json_response(await _save(request, None), status=201)


@routes.route("GET", "/api/v1/layouts/{id}", access="live", params=LAYOUT_ID, response=LAYOUT,
              summary="One of your saved live layouts")
async def api_layout(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    assert principal is not None
    try:
        row = await request.app[GATEWAY].read(layouts.get_layout, principal, match_id(request))
    except catalog.NotFound:
        raise web.HTTPNotFound(text="no such layout") from None
    return web.json_response(row)


@routes.route("PUT", "/api/v1/layouts/{id}", access="live", params=LAYOUT_ID, body=LAYOUT_BODY,
              response=LAYOUT, summary="Replace one of your saved live layouts")
async def api_layout_update(request: web.Request) -> web.StreamResponse:
    return web.json_response(await _save(request, match_id(request)))


@routes.route("DELETE", "/api/v1/layouts/{id}", access="live", params=LAYOUT_ID,
              statuses=(204,), media=(), summary="Delete one of your saved live layouts")
async def api_layout_delete(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    assert principal is not None
    try:
        await request.app[GATEWAY].write(layouts.delete_layout, principal, match_id(request))
    except catalog.NotFound:
        raise web.HTTPNotFound(text="no such layout") from None
    return web.Response(status=204)
