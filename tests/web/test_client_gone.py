"""A client that goes away in the middle of a media answer (a closed tab, a seek) is no server
error: no traceback, no "unhandled error" in the log. The app is the server's own error middleware
around a handler that streams like the media routes do, on a real socket."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from aiohttp import web

from web.middleware import error_middleware


async def test_a_client_leaving_mid_stream_is_not_logged_as_an_error(
        caplog: pytest.LogCaptureFixture) -> None:
    finished = asyncio.Event()
    outcome: list[str] = []

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        await response.prepare(request)
        try:
            for _ in range(2000):  # bounded: ~128 MB at most, far more than a socket buffers
                await response.write(b"\0" * 65536)
        except BaseException as exc:
            outcome.append(type(exc).__name__)
            raise
        finally:
            finished.set()
        return response

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/media", stream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    caplog.set_level(logging.DEBUG)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /media HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await reader.readexactly(100_000)  # the answer is flowing
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # RST
        writer.close()
        await asyncio.wait_for(finished.wait(), 10)
        await asyncio.sleep(0.1)
    finally:
        await runner.cleanup()
    assert outcome and outcome[0] in ("ClientConnectionResetError", "ConnectionResetError",
                                      "ConnectionError",
                                      "CancelledError"), outcome
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.WARNING)
