"""Live view: a camera's live page, the multi-camera grid, and the live WebSocket.

``GET /api/v1/cameras/{id}/live?stream=main|sub`` upgrades to a WebSocket that carries one JSON
text message ``{"type": "init", "codec", "mime", "stream"}`` followed by the binary init segment,
then one binary fragmented-MP4 fragment (``moof``+``mdat``) per frame, and JSON ``status`` messages
(``{"type": "status", "message"}``) when the camera is being reconnected. Access and site scope are
checked before the upgrade: another site's camera answers 404 like every camera route. The stream
itself comes from :class:`recorder.live.LiveService` (``app[SERVICES]["live"]``).
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
from vms import catalog
from web.inputs import bad_request, match_id, query_int
from web.keys import GATEWAY, SERVICES, principal_of
from web.render import render
from web.routing import Param, Routes
from web.schemas import MAX_ID, enum

log = logging.getLogger(__name__)

routes = Routes()

GRID_LAYOUTS = (1, 2, 3, 4)
WS_HEARTBEAT_S = 20.0


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


@routes.route("GET", "/api/v1/cameras/{id}/live", access="live",
              query=(Param("stream", "main (default) or sub", enum(*STREAM_KINDS)),),
              statuses=(101,), media=(),
              summary="Live video: a WebSocket of fragmented MP4 (init segment, then one "
                      "fragment per frame)")
async def api_live(request: web.Request) -> web.StreamResponse:
    camera = await _camera(request)
    kind = _stream_kind(request, "main")
    service = _live_service(request)
    try:
        source = await service.resolve(camera["id"], kind)
    except LiveUnavailable as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    ws = web.WebSocketResponse(heartbeat=WS_HEARTBEAT_S, max_msg_size=64 * 1024)
    if not ws.can_prepare(request).ok:
        raise bad_request("this URL is a WebSocket: connect with 'Upgrade: websocket'")
    if not _same_origin(request):
        raise web.HTTPForbidden(text="WebSocket from another origin")
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
        try:
            async for msg in ws:  # the client sends nothing we need; this sees its close
                if msg.type == WSMsgType.ERROR:
                    break
                if sender.done():
                    break
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
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
                     ("page", "page of cameras, from 1"), ("site_id", "only this site")),
              summary="Live grid of the cameras you may see (sub streams)")
async def live_grid(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    assert principal is not None
    layout = query_int(request, "layout", default=2, minimum=1, maximum=4) or 2
    site_id = query_int(request, "site_id", minimum=1, maximum=MAX_ID)
    cameras = await request.app[GATEWAY].read(catalog.list_cameras, principal, site_id)
    per_page = layout * layout
    pages = max(1, math.ceil(len(cameras) / per_page))
    page = query_int(request, "page", default=1, minimum=1, maximum=pages) or 1
    shown = cameras[(page - 1) * per_page:page * per_page]
    return render(request, "grid.html", {
        "cameras": shown, "layout": layout, "layouts": GRID_LAYOUTS, "page": page,
        "pages": pages, "site_id": site_id, "total": len(cameras)})
