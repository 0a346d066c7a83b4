"""Talk-back: the WebSocket that carries a browser's microphone to a camera's loudspeaker.

``GET /api/v1/cameras/{id}/talk`` upgrades to a WebSocket (right ``door``: whoever may open a
courtyard door may answer its intercom; another site's camera is 404 before the upgrade, like
every camera route; API tokens need the ``control`` scope; a browser's Origin must be this
server's). The server then opens the camera's ONVIF audio backchannel
(:class:`recorder.backchannel.TalkService`) and answers one JSON text message: ``{"type": "ready",
"codec": "PCMU", "rate": 8000, "format": "s16le"}``, or ``{"type": "error", "code", "message"}``
(``no_backchannel``, ``codec``, ``auth``, ``camera``, ``no_stream``) before it closes. The client
then sends binary frames of 16-bit little-endian mono PCM at 8 kHz (at most
:data:`MAX_FRAME_BYTES` each), as it records them; closing the socket ends the RTSP session. When
the session ends on the server's side (another user took over the camera, the camera hung up) the
client gets ``{"type": "ended", "reason"}`` and the socket closes. Each session start is audited
(``talk``), as is a refused one.

``GET /api/v1/cameras/{id}/listen`` (right ``live``) is the other direction: a WebSocket of the
camera's own sound as AAC in fragmented MP4 (:class:`recorder.listen.ListenService`), the same
messages as the live video socket: ``{"type": "init", "codec", "mime"}`` and the binary init
segment, then one binary fragment per AAC frame, ``{"type": "status", "message"}`` while the camera
is reconnected (or sends no sound). In a cluster it is relayed from the node holding the camera's
lease (web/cluster_proxy.py), like live video. Talk-back is not: it is a camera-control call
(scope ``control``), which a node-to-node credential may not make, and its backchannel is a
session of its own on whichever node the user asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from recorder.backchannel import TalkError, TalkService, TalkSession, TalkTarget
from recorder.listen import ListenService
from recorder.live import LiveService, LiveUnavailable, Viewer
from vms import audit, catalog
from web.cluster_proxy import live_holder_of, relay_ws
from web.inputs import match_id
from web.keys import CLOCK, GATEWAY, SERVICES, principal_of
from web.messages import translate_message
from web.middleware import client_address
from web.routing import Routes

log = logging.getLogger(__name__)

routes = Routes()

MAX_FRAME_BYTES = 16_000
"""One binary frame: at most 1 s of 8 kHz 16-bit audio."""
WS_HEARTBEAT_S = 10.0
"""A phone that lost signal is noticed within about this, and its session ended."""
CLOSE_ERROR = 4000
CLOSE_ENDED = 4001


def _same_origin(request: web.Request) -> bool:
    """A browser WebSocket carries the page's Origin: refuse other sites (cross-site hijacking
    would let any page a resident opens speak at their door)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser (scripts, tests)
    return origin in (f"{request.scheme}://{request.host}", f"https://{request.host}",
                      f"http://{request.host}")


async def _camera(request: web.Request) -> dict[str, Any]:
    principal = principal_of(request)
    assert principal is not None
    try:
        return await request.app[GATEWAY].read(catalog.camera_detail, principal,
                                               match_id(request))
    except catalog.NotFound:
        raise web.HTTPNotFound(text="no such camera") from None


async def _target(request: web.Request, camera_id: int) -> TalkTarget:
    """The camera's main stream URL and login (the backchannel is offered on the main profile)."""
    live = request.app[SERVICES].get("live")
    if not isinstance(live, LiveService):
        raise TalkError("stopping", "the server is not running its camera services")
    try:
        source = await live.resolve(camera_id, "main")
    except LiveUnavailable as exc:
        raise TalkError("no_stream", str(exc)) from None
    return TalkTarget(camera_id=camera_id, camera_name=source.camera_name, url=source.url,
                      username=source.username, password=source.password)


@routes.route("GET", "/api/v1/cameras/{id}/talk", access="door", scope="control",
              statuses=(101,), media=(),
              summary="Talk-back: a WebSocket of 8 kHz 16-bit PCM from the microphone, sent to "
                      "the camera's ONVIF audio backchannel")
async def api_talk(request: web.Request) -> web.StreamResponse:
    camera = await _camera(request)
    service = request.app[SERVICES].get("talk")
    if not isinstance(service, TalkService):
        raise web.HTTPServiceUnavailable(text="talk-back is not running on this server")
    # + 1: aiohttp refuses a message of exactly max_msg_size bytes
    ws = web.WebSocketResponse(heartbeat=WS_HEARTBEAT_S, max_msg_size=MAX_FRAME_BYTES + 1)
    if not ws.can_prepare(request).ok:
        raise web.HTTPBadRequest(text="this URL is a WebSocket: connect with 'Upgrade: websocket'")
    if not _same_origin(request):
        raise web.HTTPForbidden(text="WebSocket from another origin")
    principal = principal_of(request)
    assert principal is not None
    await ws.prepare(request)

    async def audit_start(outcome: str, detail: dict[str, Any]) -> None:
        await request.app[GATEWAY].write(
            audit.record, request.app[CLOCK], "talk", principal=principal,
            target=f"camera {camera['id']} ({camera['name']})", site_id=camera["site"]["id"],
            address=client_address(request), outcome=outcome, detail=detail)

    try:
        session = await service.start(await _target(request, camera["id"]), principal.username)
    except TalkError as exc:
        await audit_start("failed", {"code": exc.code, "reason": str(exc)})
        await ws.send_str(json.dumps({"type": "error", "code": exc.code,
                                      "message": translate_message(str(exc))}))
        await ws.close(code=CLOSE_ERROR, message=exc.code.encode()[:100])
        return ws
    await audit_start("ok", {})
    try:
        await ws.send_str(json.dumps({"type": "ready", "codec": "PCMU", "rate": 8000,
                                      "format": "s16le"}))
        await _relay(ws, session)
    finally:
        await service.finish(session, "the talk socket closed")
    return ws


async def _relay(ws: web.WebSocketResponse, session: TalkSession) -> None:
    """Feed the socket's audio to the session until either side ends."""
    ended = asyncio.create_task(session.ended.wait())
    try:
        while True:
            receive = asyncio.ensure_future(ws.receive())
            done, _ = await asyncio.wait({receive, ended}, return_when=asyncio.FIRST_COMPLETED)
            if ended in done:
                receive.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receive
                with contextlib.suppress(ConnectionResetError, RuntimeError):
                    await ws.send_str(json.dumps({"type": "ended",
                                                  "reason": translate_message(
                                                      session.end_reason)}))
                await ws.close(code=CLOSE_ENDED, message=b"ended")
                return
            msg = receive.result()
            if msg.type == WSMsgType.BINARY:
                try:
                    session.feed(msg.data)
                except TalkError as exc:
                    await ws.send_str(json.dumps({"type": "error", "code": exc.code,
                                                  "message": str(exc)}))
                    await ws.close(code=CLOSE_ERROR, message=exc.code.encode())
                    return
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                              WSMsgType.ERROR):
                return
    finally:
        ended.cancel()


@routes.route("GET", "/api/v1/cameras/{id}/listen", access="live", statuses=(101,), media=(),
              summary="The camera's sound: a WebSocket of AAC in fragmented MP4 (init segment, "
                      "then one fragment per AAC frame)")
async def api_listen(request: web.Request) -> web.StreamResponse:
    camera = await _camera(request)
    service = request.app[SERVICES].get("listen")
    if not isinstance(service, ListenService):
        raise web.HTTPServiceUnavailable(text="listening is not running on this server")
    ws = web.WebSocketResponse(heartbeat=WS_HEARTBEAT_S, max_msg_size=4096)
    if not ws.can_prepare(request).ok:
        raise web.HTTPBadRequest(text="this URL is a WebSocket: connect with 'Upgrade: websocket'")
    if not _same_origin(request):
        raise web.HTTPForbidden(text="WebSocket from another origin")
    remote = await live_holder_of(request, camera["id"])
    if remote is not None:  # another node records it: its listening session, relayed
        return await relay_ws(request, remote, max_msg_size=4096, heartbeat_s=WS_HEARTBEAT_S,
                              camera_id=camera["id"])
    try:
        viewer = await service.subscribe(camera["id"])
    except LiveUnavailable as exc:
        raise web.HTTPServiceUnavailable(text=str(exc)) from None
    try:
        await ws.prepare(request)
        sender = asyncio.create_task(_send_audio(ws, viewer), name=f"listen-{camera['id']}")
        try:
            async for msg in ws:  # the client sends nothing we need; this sees its close
                if msg.type == WSMsgType.ERROR or sender.done():
                    break
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
    finally:
        viewer.stream.remove_viewer(viewer)
    return ws


async def _send_audio(ws: web.WebSocketResponse, viewer: Viewer) -> None:
    try:
        async for msg in viewer:
            if msg.kind == "init":
                await ws.send_str(json.dumps({"type": "init", "codec": msg.codec,
                                              "mime": f'audio/mp4; codecs="{msg.codec}"'}))
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
