"""Snapshots come back whole (a large JPEG arrives in many TCP reads) and bounded in size."""

from __future__ import annotations

import os

import pytest
from aiohttp import web

from onvif_bridge.client import get_snapshot
from onvif_bridge.errors import OnvifAuthError, OnvifParseError


@pytest.fixture
async def server(aiohttp_server):  # type: ignore[no-untyped-def]
    big = b"\xff\xd8" + os.urandom(700_000) + b"\xff\xd9"

    async def snapshot(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") is None:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="cam"'})
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        await response.prepare(request)
        for i in range(0, len(big), 10_000):  # dribble it out in small writes
            await response.write(big[i:i + 10_000])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/snap.jpg", snapshot)
    srv = await aiohttp_server(app)
    return srv, big


async def test_large_snapshot_arrives_whole(server) -> None:  # type: ignore[no-untyped-def]
    srv, big = server
    body = await get_snapshot(str(srv.make_url("/snap.jpg")), "admin", "pw-123456")
    assert body == big


async def test_oversized_snapshot_is_refused(server) -> None:  # type: ignore[no-untyped-def]
    srv, _ = server
    with pytest.raises(OnvifParseError, match="larger than"):
        await get_snapshot(str(srv.make_url("/snap.jpg")), "admin", "pw-123456",
                           max_bytes=100_000)


async def test_wrong_password_is_an_auth_error(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    async def refuse(request: web.Request) -> web.StreamResponse:
        return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="cam"'})

    app = web.Application()
    app.router.add_get("/snap.jpg", refuse)
    srv = await aiohttp_server(app)
    with pytest.raises(OnvifAuthError):
        await get_snapshot(str(srv.make_url("/snap.jpg")), "admin", "wrong-pass")
