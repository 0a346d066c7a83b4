"""Any node serves any request: footage kept on another node's storage volume is fetched from that
node (vms/cluster.py).

Each storage volume belongs to one node (the ``node.volumes`` column); a recorded file on a volume
this node does not have is asked of the owner at its ``advertise_url``, with the same path and
query, signed with the cluster secret (``X-VMS-Node``, ``X-VMS-Node-Time``, ``X-VMS-Node-Auth``:
HMAC-SHA256 over node, method, path and time) — a node-to-node credential, never the user's session.
The user's rights and site were checked here first; the owner accepts a signed request as a node
principal for GET and HEAD only (web/middleware.py). :func:`fetch_segment` copies one segment file
from its owner (an export made here of footage recorded there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import aiohttp
import peewee as pw
from aiohttp import WSMsgType, web

from vms.cluster import live_holder, node_url, signed_headers, volume_nodes
from web.keys import GATEWAY, SERVICES, SETTINGS, principal_of

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5, sock_read=30)
FORWARDED_REQUEST = ("Range", "If-Range", "Accept")
FORWARDED_ANSWER = ("Content-Type", "Content-Length", "Content-Range", "Accept-Ranges",
                    "Content-Disposition", "ETag", "Last-Modified",
                    "X-Frame-Time-Us", "X-Segment-Id", "X-Frame-Pts")
CHUNK_BYTES = 256 * 1024
WS_CONNECT_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0)
NODE_MSG_BYTES = 16 * 1024 * 1024
"""Largest message taken from the holder (a keyframe's fragment); ``max_msg_size`` bounds what
the user's client may send, as on the holder."""
RECHECK_S = 5.0
"""How often a live relay re-reads who holds the camera's lease (at most; half the lease when
shorter)."""
WS_SEND_TIMEOUT_S = 10.0
"""A relayed message the receiving side has not taken within this closes both sides (a stuck
viewer must not hold the holder's stream: the holder drops a viewer that falls behind, too)."""


class RemoteFootage(Exception):
    """The file is on another node's volume: ask ``owner`` at ``base_url``."""

    def __init__(self, owner: str, base_url: str) -> None:
        super().__init__(f"on node {owner!r} ({base_url})")
        self.owner = owner
        self.base_url = base_url


async def owner_of(request: web.Request, volume: str) -> RemoteFootage | None:
    """For a volume this node does not have, in a cluster: its owner; else None."""
    settings = request.app[SETTINGS]
    if not settings.clustered or any(v.name == volume for v in settings.volumes):
        return None
    owners = await request.app[GATEWAY].read(volume_nodes)
    if volume not in owners or owners[volume][0] == settings.node_name:
        return None
    name, url = owners[volume]
    return RemoteFootage(name, url)


def _from_node(request: web.Request) -> bool:
    principal = principal_of(request)
    return principal is not None and principal.via == "node"


async def live_holder_of(request: web.Request, camera_id: int) -> RemoteFootage | None:
    """In a cluster: the other, alive node holding ``camera_id``'s lease, whose live stream this
    request should be relayed from; None when this node holds it, nobody does (serve here, as a
    single server does) or the request already comes from a node."""
    settings = request.app[SETTINGS]
    if not settings.clustered or _from_node(request):
        return None
    holder = await request.app[GATEWAY].read(live_holder, camera_id,
                                             float(settings.cluster.lease_seconds))
    if holder is None or holder[0] == settings.node_name:
        return None
    return RemoteFootage(*holder)


async def node_of(request: web.Request, node: str) -> RemoteFootage | None:
    """In a cluster: ``node`` (another node, which made a file kept on it) to proxy to; None
    when it is this node, no node ('' : made by a single server) or the request comes from a
    node."""
    settings = request.app[SETTINGS]
    if not settings.clustered or not node or node == settings.node_name or _from_node(request):
        return None
    url = await request.app[GATEWAY].read(node_url, node)
    if url is None:
        raise web.HTTPBadGateway(text=f"the file is on node {node!r}, which is no longer part "
                                      "of the cluster")
    return RemoteFootage(node, url)


def _credential(app: web.Application, method: str, path_qs: str) -> dict[str, str]:
    secret = app[SERVICES].get("cluster_secret")
    if secret is None:
        raise web.HTTPServiceUnavailable(text="this node is not part of the cluster's recorders; "
                                              "footage on other nodes cannot be fetched")
    return signed_headers(secret, app[SETTINGS].node_name, method, path_qs)


async def proxy(request: web.Request, remote: RemoteFootage,
                what: str = "the recording") -> web.StreamResponse:
    """Answer ``request`` with the owner's answer to the same GET/HEAD, streamed through
    (``what``: how an error names the thing asked for)."""
    path_qs = request.rel_url.path_qs
    headers = _credential(request.app, request.method, path_qs)
    headers.update({k: request.headers[k] for k in FORWARDED_REQUEST if k in request.headers})
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http, \
                http.request(request.method, remote.base_url + path_qs, headers=headers,
                             allow_redirects=False) as answer:
            if answer.status >= 400:
                text = (await answer.text())[:500]
                log.warning("node %s answered %s for %s: %s", remote.owner, answer.status,
                            request.path, text)
                raise web.HTTPNotFound(text=f"{what} is on node {remote.owner!r}, which could "
                                            "not serve it") if answer.status == 404 else \
                    web.HTTPBadGateway(text=f"node {remote.owner!r} answered {answer.status}")
            response = web.StreamResponse(status=answer.status, headers={
                k: answer.headers[k] for k in FORWARDED_ANSWER if k in answer.headers})
            response.headers["Cache-Control"] = "no-store"
            response.headers["X-VMS-Served-By"] = remote.owner
            await response.prepare(request)
            if request.method != "HEAD":
                async for chunk in answer.content.iter_chunked(CHUNK_BYTES):
                    await response.write(chunk)
            await response.write_eof()
            return response
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("node %s (%s) unreachable for %s: %s", remote.owner, remote.base_url,
                    request.path, exc)
        raise web.HTTPBadGateway(text=f"{what} is on node {remote.owner!r}, which cannot be "
                                      "reached now") from None


async def relay_ws(request: web.Request, remote: RemoteFootage, *, max_msg_size: int,
                   heartbeat_s: float, camera_id: int | None = None) -> web.WebSocketResponse:
    """Answer the WebSocket ``request`` (already checked here: rights, site, Origin) by relaying
    the same WebSocket of ``remote``, opened with the node-to-node credential: every message
    both ways, one at a time (aiohttp's bounded reader queues and :data:`WS_SEND_TIMEOUT_S` bound
    what waits here); either side closing closes the other. The holder is connected before this
    socket is accepted, so an unreachable one answers 502 naming it. ``max_msg_size`` bounds what
    the client may send. With ``camera_id``, the lease is re-read every :data:`RECHECK_S`: when
    another node (or none) holds it now, both sides close and the client's reconnect lands on the
    new holder."""
    path_qs = request.rel_url.path_qs
    headers = _credential(request.app, "GET", path_qs)
    url = remote.base_url + path_qs
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=5))
    try:
        upstream = await http.ws_connect(url, headers=headers, heartbeat=heartbeat_s,
                                         max_msg_size=NODE_MSG_BYTES, timeout=WS_CONNECT_TIMEOUT)
    except aiohttp.WSServerHandshakeError as exc:
        await http.close()
        log.warning("node %s answered %s for the WebSocket %s", remote.owner, exc.status,
                    request.path)
        if exc.status == 404:
            raise web.HTTPNotFound(text=f"node {remote.owner!r}, which records the camera, "
                                        "has no such stream") from None
        raise web.HTTPBadGateway(text=f"the camera is recorded by node {remote.owner!r}, which "
                                      f"answered {exc.status}") from None
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        await http.close()
        log.warning("node %s (%s) unreachable for %s: %s", remote.owner, remote.base_url,
                    request.path, exc)
        raise web.HTTPBadGateway(text=f"the camera is recorded by node {remote.owner!r}, which "
                                      "cannot be reached now") from None
    ws = web.WebSocketResponse(heartbeat=heartbeat_s, max_msg_size=max_msg_size)
    try:
        await ws.prepare(request)
        log.info("%s: relayed from node %s", request.path, remote.owner)
        down = asyncio.create_task(_pump(upstream, ws), name=f"relay-down-{request.path}")
        up = asyncio.create_task(_pump(ws, upstream), name=f"relay-up-{request.path}")
        tasks = {down, up}
        if camera_id is not None:
            tasks.add(asyncio.create_task(_holder_moved(request, remote, camera_id),
                                          name=f"relay-lease-{request.path}"))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.close(code=_close_code(upstream, down))
    finally:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await upstream.close()
        await http.close()
    return ws


def _close_code(upstream: aiohttp.ClientWebSocketResponse, down: asyncio.Task[None]) -> int:
    """The holder's close code when it closed first (an abnormal end: 1014, bad gateway), else
    1000 (the client left, or the lease moved)."""
    if not (down.done() and upstream.closed):
        return aiohttp.WSCloseCode.OK
    code = upstream.close_code
    if code is None or code in (1005, 1006, 1015) or not 1000 <= code < 5000:
        return aiohttp.WSCloseCode.BAD_GATEWAY
    return code


async def _holder_when(request: web.Request, camera_id: int,
                       moved: Callable[[tuple[str, str] | None], bool]) -> tuple[str, str] | None:
    """Re-read who holds ``camera_id``'s lease every RECHECK_S (half the lease when shorter)
    until ``moved(holder)``; that holder. A database hiccup keeps waiting."""
    settings = request.app[SETTINGS]
    while True:
        await asyncio.sleep(min(RECHECK_S, settings.cluster.lease_seconds / 2))
        try:
            holder = await request.app[GATEWAY].read(live_holder, camera_id,
                                                     float(settings.cluster.lease_seconds))
        except pw.DatabaseError as exc:
            log.debug("camera %s: lease not re-read (%s)", camera_id, exc)
            continue
        if moved(holder):
            return holder


async def _holder_moved(request: web.Request, remote: RemoteFootage, camera_id: int) -> None:
    """Return once ``remote`` no longer holds ``camera_id``'s lease."""
    await _holder_when(request, camera_id, lambda h: h is None or h[0] != remote.owner)
    log.info("camera %s: node %s no longer holds it; relay closed", camera_id, remote.owner)


async def close_when_held_elsewhere(request: web.Request, ws: web.WebSocketResponse,
                                    camera_id: int) -> None:
    """For a viewer served here directly (this node held the camera, or nobody did): close
    ``ws`` once another alive node holds ``camera_id``'s lease, so the player's reconnect is
    relayed from the new holder and this node drops its own camera session. Returns at once
    outside a cluster or for a request relayed from another node."""
    settings = request.app[SETTINGS]
    if not settings.clustered or _from_node(request):
        return
    holder = await _holder_when(request, camera_id,
                                lambda h: h is not None and h[0] != settings.node_name)
    assert holder is not None
    log.info("camera %s: node %s holds it now; %s closed here", camera_id, holder[0],
             request.path)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.close(code=aiohttp.WSCloseCode.OK)


async def _pump(src: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                dst: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> None:
    """Copy messages from ``src`` to ``dst`` until ``src`` closes or a send stalls."""
    async for msg in src:
        if msg.type == WSMsgType.TEXT:
            send = dst.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            send = dst.send_bytes(msg.data)
        else:  # ERROR: the loop ends with the connection
            break
        try:
            await asyncio.wait_for(send, WS_SEND_TIMEOUT_S)
        except (TimeoutError, ConnectionError, RuntimeError):
            return
