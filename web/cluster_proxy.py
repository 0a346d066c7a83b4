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

import logging

import aiohttp
from aiohttp import web

from vms.cluster import signed_headers, volume_nodes
from web.keys import GATEWAY, SERVICES, SETTINGS

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5, sock_read=30)
FORWARDED_REQUEST = ("Range", "Accept")
FORWARDED_ANSWER = ("Content-Type", "Content-Length", "Content-Range", "Accept-Ranges",
                    "X-Frame-Time-Us", "X-Segment-Id", "X-Frame-Pts")
CHUNK_BYTES = 256 * 1024


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


def _credential(app: web.Application, method: str, path_qs: str) -> dict[str, str]:
    secret = app[SERVICES].get("cluster_secret")
    if secret is None:
        raise web.HTTPServiceUnavailable(text="this node is not part of the cluster's recorders; "
                                              "footage on other nodes cannot be fetched")
    return signed_headers(secret, app[SETTINGS].node_name, method, path_qs)


async def proxy(request: web.Request, remote: RemoteFootage) -> web.StreamResponse:
    """Answer ``request`` with the owner's answer to the same GET/HEAD, streamed through."""
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
                raise web.HTTPNotFound(text="the recording is on another node, which could not "
                                            "serve it") if answer.status == 404 else \
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
        raise web.HTTPBadGateway(text=f"the recording is on node {remote.owner!r}, which cannot "
                                      "be reached now") from None
