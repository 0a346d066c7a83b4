"""A test HTTP handler that streams an answer far longer than any client limit, counting the bytes
it managed to write before the client hung up (what the client really read, give or take
buffers)."""

from __future__ import annotations

import asyncio

from aiohttp import web


class Streamed:
    """Writes ``head`` then filler up to ``CAP_BYTES`` (every ``delay_s``), counting what it got
    written; use the instance as the handler."""

    CAP_BYTES = 128 << 20

    def __init__(self, head: bytes, *, content_type: str = "application/soap+xml",
                 content_length: int | None = None, delay_s: float = 0.0) -> None:
        self.head = head
        self.content_type = content_type
        self.content_length = content_length
        self.delay_s = delay_s
        self.bytes = 0
        self.done = asyncio.Event()

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": self.content_type})
        if self.content_length is not None:
            response.content_length = self.content_length
        chunk = b"<a>" + b"x" * (64 << 10) + b"</a>" if not self.delay_s else b" "
        try:
            await response.prepare(request)
            await response.write(self.head)
            while self.bytes < self.CAP_BYTES:
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                await response.write(chunk)
                self.bytes += len(chunk)
        except ConnectionError:  # the client hung up
            pass
        finally:
            self.done.set()
        return response

    async def total(self) -> int:
        await asyncio.wait_for(self.done.wait(), 10)
        return self.bytes
