"""Live view from the recorder's own camera session: the recording ffmpeg's second output.

A recorded stream's ffmpeg (recorder/ffmpeg.py, ``RecordCommand.live_fd``) also writes the video
as fragmented MP4, one fragment a frame, to a pipe. :class:`LiveTap` owns that pipe for one
recording run: it makes it (1 MiB of pipe buffer, so a busy event loop never holds the recording
back), drains it whether anyone watches or not (ffmpeg must never block on it), cuts it into the
init segment and fragments (:class:`recorder.fmp4.Fmp4Splitter`) and hands them to the stream's
:class:`LiveFeed`. The feed keeps the init segment and the fragments since the latest keyframe, so
a live viewer (recorder/live.py attaches one ``LiveStream`` per watched stream) gets a picture at
once, and opens no second RTSP session to the camera. :class:`LiveFeeds` is the registry the
recorder supervisor and the live service share (wired by the composition root).

Cost (measured with ``bench/recording.py --compare-live``): while nobody watches, the tap does not
wake for every frame; it drains the pipe every :data:`POLL_S` with plain non-blocking reads (one
loop callback, a few frames at a time). When a viewer attaches, the pipe is drained at once (so the
cached GOP is the newest) and from then on read as soon as ffmpeg writes (``add_reader``), for live
latency; when the last viewer leaves it goes back to polling. A pipe too small for the polling
period (the kernel refuses 1 MiB once the user's pipes pass ``fs.pipe-user-pages-soft``) is read
as soon as ffmpeg writes, always; a bit rate that would fill a quarter of the pipe between two
polls makes them come sooner.
See docs/design/live.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fcntl
import logging
import os
from collections.abc import Callable

from recorder.fmp4 import Fmp4Splitter, FragmentBacklog, fragment_is_keyframe

log = logging.getLogger(__name__)

PIPE_BYTES = 1 << 20
"""The pipe's buffer: ~2 s at 4 Mbit/s before ffmpeg would wait for the reader."""
POLL_S = 0.5
"""How often an unwatched tap drains its pipe (1 MiB holds ~2 s at 4 Mbit/s: 4x margin; a
higher bit rate polls sooner, see :meth:`LiveTap._pace`)."""
MIN_POLL_S = 0.02
TRIM_S = 1.0
"""How often an unwatched tap drops what precedes the latest keyframe (memory: a GOP + ~1 s)."""
MAX_GOP_FRAGMENTS = 600
FeedItem = tuple[str, bytes] | None
"""``("init", segment)``, ``("fragment", fragment)``, or None: the feed ended."""


class LiveFeed:
    """One recorded stream's live fragments during one recording run."""

    def __init__(self, key: tuple[int, str]) -> None:
        self.key = key
        self.init: bytes | None = None
        self._gop: list[bytes] = []
        self.live = True
        self._queues: dict[asyncio.Queue[FeedItem], int] = {}
        self.refresh: Callable[[], None] | None = None
        """Brings the cached GOP up to date (the tap cuts out the fragments it only buffered
        while nobody watched)."""
        self.on_watch: Callable[[bool], None] | None = None
        """Called with True when the first consumer attaches (before it gets the cached GOP:
        the tap drains its pipe first) and with False when the last one leaves."""

    @property
    def watched(self) -> bool:
        return bool(self._queues)

    @property
    def gop(self) -> list[bytes]:
        """The fragments since the latest keyframe (empty: none yet, or the GOP was too long)."""
        if self.refresh is not None:
            self.refresh()
        return self._gop

    def reset_gop(self) -> None:
        """The fragments that follow do not continue the cached GOP."""
        self._gop = []

    def attach(self, max_queued: int = 1000) -> asyncio.Queue[FeedItem]:
        """A queue of what comes next, starting with the init segment and the cached GOP."""
        if self.live and not self._queues and self.on_watch is not None:
            self.on_watch(True)
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
        if self._queues.pop(queue, None) is not None and not self._queues and self.live \
                and self.on_watch is not None:
            self.on_watch(False)

    def put(self, kind: str, unit: bytes) -> None:
        if kind == "init":
            self.init, self._gop = unit, []
        elif self.init is None:
            return
        elif fragment_is_keyframe(unit):
            self._gop = [unit]
        elif self._gop and len(self._gop) < MAX_GOP_FRAGMENTS:
            self._gop.append(unit)
        else:
            self._gop = []
        for queue, limit in list(self._queues.items()):
            if queue.qsize() >= limit:  # a stuck consumer: end its feed, never buffer forever
                self.detach(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait((kind, unit))

    def end(self) -> None:
        self.live = False
        self.on_watch = None
        self.refresh = None
        for queue in list(self._queues):
            queue.put_nowait(None)
        self._queues.clear()


class LiveFeeds:
    """The live feed of every recorded stream that is running now, by (camera id, stream kind)."""

    def __init__(self) -> None:
        self._feeds: dict[tuple[int, str], LiveFeed] = {}
        self.read_buffer = bytearray(PIPE_BYTES)
        """Every tap reads into this one buffer and copies out at once (taps run on one loop)."""

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
    ends with ffmpeg); ``close()`` after ffmpeg exited (reads what is left, ends the feed).

    Reading: polled every :data:`POLL_S` while nobody watches (more often at a bit rate that
    would fill a quarter of the pipe meanwhile), ``add_reader`` while watched or when the pipe is
    too small to poll. Cutting: the init segment at once; then, while
    nobody watches, fragments only go into a :class:`FragmentBacklog` (trimmed to the latest
    keyframe every :data:`TRIM_S`) and are cut out when a viewer attaches (or someone reads
    ``feed.gop``); while watched, each read is cut out and handed on at once."""

    def __init__(self, feeds: LiveFeeds, key: tuple[int, str], name: str) -> None:
        self.feeds = feeds
        self.key = key
        self.name = name
        self.write_fd: int | None = None
        self._read_fd: int | None = None
        self.feed: LiveFeed | None = None
        self.pipe_bytes = 0
        self._splitter: Fmp4Splitter | None = Fmp4Splitter()
        """Until the init segment is out; then the backlog takes over."""
        self._backlog: FragmentBacklog | None = None
        self._broken = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._context: contextvars.Context | None = None
        self._trimmed_at = 0.0
        self._drained_at = 0.0
        self.poll_s = POLL_S
        """When the next poll comes (shorter for a high bit rate: :meth:`_pace`)."""
        self._reading = False
        self.always_read = False
        """The pipe cannot wait :data:`POLL_S`: read as soon as ffmpeg writes, watched or not."""
        self.drains = 0
        self.bytes_read = 0

    @property
    def reading(self) -> bool:
        """The pipe is read as soon as ffmpeg writes (watched, or too small to poll)."""
        return self._reading

    def open(self) -> int:
        read_fd, write_fd = os.pipe()
        with contextlib.suppress(OSError):  # Linux only; the default 64 KiB works, with less slack
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        try:
            self.pipe_bytes = fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ)
        except OSError:
            self.pipe_bytes = 64 * 1024
        os.set_blocking(read_fd, False)
        self._read_fd, self.write_fd = read_fd, write_fd
        self._loop = asyncio.get_running_loop()
        self._context = contextvars.copy_context()  # once, not at every poll
        self._trimmed_at = self._drained_at = self._loop.time()
        self.feed = self.feeds.open(self.key)
        self.feed.on_watch = self._watch
        self.feed.refresh = self._publish
        if self.pipe_bytes < PIPE_BYTES // 4:  # 256 KiB: ~0.5 s at 4 Mbit/s, a keyframe burst
            log.warning("%s: live output pipe holds only %d KiB (fs.pipe-user-pages-soft "
                        "reached?); reading it on every frame", self.name, self.pipe_bytes >> 10)
            self.always_read = True
            self._start_reader()
        else:
            self._schedule()
        return write_fd

    def started(self) -> None:
        if self.write_fd is not None:
            os.close(self.write_fd)
            self.write_fd = None

    async def close(self) -> None:
        """After ffmpeg exited: read what it left in the pipe, close it, end the feed."""
        self.started()  # ffmpeg never started: the reader sees the end now
        self._stop_reading()
        if self._read_fd is not None:
            self._drain()
            os.close(self._read_fd)
            self._read_fd = None
        if self.feed is not None:
            self._publish()
            self.feeds.close(self.feed)

    # -- reading -----------------------------------------------------------------------------

    def _schedule(self) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_later(self.poll_s, self._poll, context=self._context)

    def _poll(self) -> None:
        self._timer = None
        if self._drain() and not self._reading:
            self._schedule()

    def _watch(self, watched: bool) -> None:
        """A viewer attached (drain now: it gets the newest GOP) or the last one left."""
        if self._read_fd is None:
            return
        if watched:
            if self._drain():
                self._start_reader()
            self._publish()
        elif not self.always_read:
            self._stop_reading()
            self._schedule()

    def _start_reader(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._reading and self._read_fd is not None and self._loop is not None:
            self._loop.add_reader(self._read_fd, self._readable)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._reading and self._read_fd is not None and self._loop is not None:
            self._loop.remove_reader(self._read_fd)
        self._reading = False

    def _readable(self) -> None:
        if not self._drain():
            self._stop_reading()

    def _drain(self) -> bool:
        """Read everything the pipe holds now and take it in; False once the pipe ended."""
        fd = self._read_fd
        if fd is None:
            return False
        ended, got = False, 0
        view = memoryview(self.feeds.read_buffer)
        try:
            while True:
                try:
                    n = os.readv(fd, [view])  # into one buffer: no allocation per read
                except BlockingIOError:
                    break
                except OSError as exc:
                    log.error("%s: cannot read the live output: %s", self.name, exc)
                    ended = True
                    break
                if n == 0:
                    ended = True
                    break
                got += n
                self._take_in(view[:n])
                if n < len(view):
                    break  # the pipe is empty now (one syscall fewer than reading until EAGAIN)
        finally:
            view.release()
        if got:
            self.drains += 1
            self.bytes_read += got
            assert self._loop is not None
            now = self._loop.time()
            self._pace(got, now)
            self._after_read(now)
        return not ended

    def _pace(self, got: int, now: float) -> None:
        """The next poll comes before ffmpeg could fill a quarter of the pipe at the rate just
        seen (a high bit rate polls more often; a late poll, after a busy loop, does not)."""
        elapsed, self._drained_at = now - self._drained_at, now
        if not self._reading and elapsed > 0:
            rate = got / elapsed
            self.poll_s = max(MIN_POLL_S, min(POLL_S, self.pipe_bytes / 4 / rate))

    def _take_in(self, data: memoryview) -> None:
        feed = self.feed
        if self._broken or feed is None:
            return  # a broken stream: drain it, ffmpeg must not block
        try:
            if self._backlog is not None:
                self._backlog.add(data)
                return
            assert self._splitter is not None
            for kind, unit in self._splitter.feed(bytes(data)):
                feed.put(kind, unit)
            if self._splitter.init is not None:  # from here on, fragments are cut out lazily
                self._backlog = FragmentBacklog(self._splitter.leftover(), MAX_GOP_FRAGMENTS)
                self._splitter = None
        except Exception as exc:  # noqa: BLE001 - whatever it is, the pipe must drain
            self._fail(exc)

    def _after_read(self, now: float) -> None:
        """Watched: hand the new fragments on now. Not watched: now and then keep only the GOP."""
        if self._backlog is None or self.feed is None or self._broken:
            return
        if self.feed.watched:
            self._publish()
            return
        if now - self._trimmed_at >= TRIM_S:
            self._trimmed_at = now
            try:
                self._backlog.trim()
            except Exception as exc:  # noqa: BLE001 - as in _take_in
                self._fail(exc)

    def _publish(self) -> None:
        """Cut the buffered fragments out and hand them to the feed (and its viewers)."""
        feed, backlog = self.feed, self._backlog
        if backlog is None or feed is None or self._broken or not len(backlog):
            return
        try:
            units = backlog.take()
        except Exception as exc:  # noqa: BLE001 - as in _take_in
            self._fail(exc)
            return
        if backlog.lost:
            backlog.lost = False
            feed.reset_gop()
        for unit in units:
            feed.put("fragment", unit)

    def _fail(self, exc: Exception) -> None:
        # a reader that stopped would make ffmpeg fail its write, ending the recording
        log.error("%s: live output unreadable (%r); live view falls back to its own camera "
                  "session", self.name, exc)
        self._broken = True
        if self.feed is not None:
            self.feed.end()
