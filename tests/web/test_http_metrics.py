"""The HTTP latency histogram counts time to headers for responses streamed from inside their
handler (live view WebSocket, SSE, streamed downloads): a WebSocket held open for seconds, or a
slow stream, lands in a low bucket; a slow ordinary handler still lands in a high one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
from aiohttp import web
from prometheus_client import CollectorRegistry

from web.keys import METRICS
from web.middleware import metrics_middleware_factory

HELD_S = 1.5


def _build() -> web.Application:
    app = web.Application()
    app[METRICS] = CollectorRegistry()
    app.middlewares.append(metrics_middleware_factory(app))

    async def websocket(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("hello")
        async for _msg in ws:  # until the client closes it
            pass
        return ws

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "text/event-stream"
        await response.prepare(request)
        for i in range(3):
            await response.write(f"data: {i}\n\n".encode())
            await asyncio.sleep(HELD_S / 3)
        await response.write_eof()
        return response

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(HELD_S)
        return web.Response(text="late")

    app.router.add_get("/ws", websocket)
    app.router.add_get("/stream", stream)
    app.router.add_get("/slow", slow)
    return app


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[web.Application, str]]:
    app = _build()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _observations(app: web.Application) -> dict[str, float]:
    """Cumulative bucket counts of ``vms_http_request_seconds`` by ``le``, plus ``count``."""
    out: dict[str, float] = {}
    for family in app[METRICS].collect():
        if family.name != "vms_http_request_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                out[sample.labels["le"]] = sample.value
            elif sample.name.endswith("_count"):
                out["count"] = sample.value
    return out


async def test_long_websocket_and_stream_are_not_latency(served) -> None:  # type: ignore[no-untyped-def]
    app, base = served
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:
        started = loop.time()
        async with http.ws_connect(f"{base}/ws") as ws:
            assert (await ws.receive_str()) == "hello"
            await asyncio.sleep(HELD_S)  # the viewer watches; the socket stays open
        # the server's handler ends once the close frame is through
        deadline = loop.time() + 10
        while _observations(app).get("count", 0) < 1:
            assert loop.time() < deadline, "the WebSocket request was never counted"
            await asyncio.sleep(0.05)
        assert loop.time() - started >= HELD_S
        seen = _observations(app)
        assert seen["count"] == 1
        assert seen["0.1"] == 1, f"a {HELD_S}s WebSocket was counted as latency: {seen}"

        async with http.get(f"{base}/stream") as resp:
            body = await resp.read()
        assert body.count(b"data:") == 3
        seen = _observations(app)
        assert seen["count"] == 2
        assert seen["0.1"] == 2, f"a {HELD_S}s stream was counted as latency: {seen}"

        async with http.get(f"{base}/slow") as resp:
            assert await resp.text() == "late"
        seen = _observations(app)
        assert seen["count"] == 3
        assert seen["1.0"] == 2, f"a slow handler must still count as slow: {seen}"
