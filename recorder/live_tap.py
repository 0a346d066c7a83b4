"""Live view from the recorder's own camera session: the recording ffmpeg's second output.

A recorded stream's ffmpeg (recorder/ffmpeg.py, ``RecordCommand.live_fd``) also writes the video
as fragmented MP4, one fragment a frame, to a pipe. :class:`LiveTap` owns that pipe for one
recording run: it makes it (1 MiB of pipe buffer, so a busy event loop never holds the recording
back), reads it continuously whether anyone watches or not (ffmpeg must never block on it), cuts
it into the init segment and fragments (:class:`recorder.fmp4.Fmp4Splitter`) and hands them to the
stream's :class:`LiveFeed`. The feed keeps the init segment and the fragments since the latest
keyframe, so a live viewer (recorder/live.py attaches one ``LiveStream`` per watched stream) gets a
picture at once, and opens no second RTSP session to the camera. :class:`LiveFeeds` is the
registry the recorder supervisor and the live service share (wired by the composition root).
See docs/design/live.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os

from recorder.fmp4 import Fmp4Splitter, fragment_is_keyframe

log = logging.getLogger(__name__)

PIPE_BYTES = 1 << 20
"""The pipe's buffer: ~2 s at 4 Mbit/s before ffmpeg would wait for the reader."""
MAX_GOP_FRAGMENTS = 600
FeedItem = tuple[str, bytes] | None
"""``("init", segment)``, ``("fragment", fragment)``, or None: the feed ended."""


class LiveFeed:
    """One recorded stream's live fragments during one recording run."""

    def __init__(self, key: tuple[int, str]) -> None:
        self.key = key
        self.init: bytes | None = None
        self.gop: list[bytes] = []
        self.live = True
        self._queues: dict[asyncio.Queue[FeedItem], int] = {}

    def attach(self, max_queued: int = 1000) -> asyncio.Queue[FeedItem]:
        """A queue of what comes next, starting with the init segment and the cached GOP."""
        queue: asyncio.Queue[FeedItem] = asyncio.Queue()
        if self.init is not None:
            queue.put_nowait(("init", self.init))
            for frag in self.gop:
                queue.put_nowait(("fragment", frag))
        if not self.live:
            queue.put_nowait(None)
        else:
            self._queues[queue] = max_queued
        return queue

    def detach(self, queue: asyncio.Queue[FeedItem]) -> None:
        self._queues.pop(queue, None)

    def put(self, kind: str, unit: bytes) -> None:
        if kind == "init":
            self.init, self.gop = unit, []
        elif self.init is None:
            return
        elif fragment_is_keyframe(unit):
            self.gop = [unit]
        elif self.gop and len(self.gop) < MAX_GOP_FRAGMENTS:
            self.gop.append(unit)
        else:
            self.gop = []
        for queue, limit in list(self._queues.items()):
            if queue.qsize() >= limit:  # a stuck consumer: end its feed, never buffer forever
                self.detach(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait((kind, unit))

    def end(self) -> None:
        self.live = False
        for queue in list(self._queues):
            queue.put_nowait(None)
        self._queues.clear()


class LiveFeeds:
    """The live feed of every recorded stream that is running now, by (camera id, stream kind)."""

    def __init__(self) -> None:
        self._feeds: dict[tuple[int, str], LiveFeed] = {}

    def get(self, key: tuple[int, str]) -> LiveFeed | None:
        feed = self._feeds.get(key)
        return feed if feed is not None and feed.live else None

    def open(self, key: tuple[int, str]) -> LiveFeed:
        old = self._feeds.get(key)
        if old is not None:
            old.end()
        feed = self._feeds[key] = LiveFeed(key)
        return feed

    def close(self, feed: LiveFeed) -> None:
        feed.end()
        if self._feeds.get(feed.key) is feed:
            del self._feeds[feed.key]


class LiveTap:
    """The pipe of one recording run's live output, read into its :class:`LiveFeed`.

    ``open()`` before starting ffmpeg (its :attr:`write_fd` goes into the argv as ``pipe:N``);
    ``started()`` once ffmpeg runs (the parent's copy of the write end is closed, so the pipe
    ends with ffmpeg); ``close()`` after ffmpeg exited (awaits the reader, ends the feed)."""

    def __init__(self, feeds: LiveFeeds, key: tuple[int, str], name: str) -> None:
        self.feeds = feeds
        self.key = key
        self.name = name
        self.write_fd: int | None = None
        self._read_fd: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.feed: LiveFeed | None = None

    def open(self) -> int:
        read_fd, write_fd = os.pipe()
        with contextlib.suppress(OSError):  # Linux only; the default 64 KiB works, with less slack
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(read_fd, False)
        self._read_fd, self.write_fd = read_fd, write_fd
        self.feed = self.feeds.open(self.key)
        self._task = asyncio.get_running_loop().create_task(
            self._read(read_fd, self.feed), name=f"live-tap-{self.key[0]}-{self.key[1]}")
        return write_fd

    def started(self) -> None:
        if self.write_fd is not None:
            os.close(self.write_fd)
            self.write_fd = None

    async def close(self) -> None:
        self.started()  # ffmpeg never started: the reader sees the end now
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5.0)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self.feed is not None:
            self.feeds.close(self.feed)

    async def _read(self, read_fd: int, feed: LiveFeed) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=PIPE_BYTES)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0))
        splitter: Fmp4Splitter | None = Fmp4Splitter()
        try:
            while True:
                data = await reader.read(256 * 1024)
                if not data:
                    return
                if splitter is None:
                    continue  # a broken stream: drain it, ffmpeg must not block
                try:
                    for kind, unit in splitter.feed(data):
                        feed.put(kind, unit)
                except Exception as exc:  # noqa: BLE001 - whatever it is, the pipe must drain:
                    # a reader that stopped would make ffmpeg fail its write, ending the recording
                    log.error("%s: live output unreadable (%r); live view falls back to its "
                              "own camera session", self.name, exc)
                    splitter = None
                    feed.end()
        finally:
            transport.close()
