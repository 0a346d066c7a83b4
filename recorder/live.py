"""Live view: one ``ffmpeg -c copy`` per watched camera stream, fanned out as fragmented MP4.

This module owns live streaming on the server side. :class:`LiveService` (held by the composition
root in a ``cleanup_ctx``) starts one :class:`LiveStream` per (camera, stream kind) when the first
viewer arrives; the stream runs ``ffmpeg -rtsp_transport tcp -i rtsp://… -map 0:v -c:v copy -f mp4
-movflags +frag_every_frame+empty_moov+default_base_moof pipe:1`` (video only, never transcoded),
cuts its stdout into the init segment (``ftyp``+``moov``) and one fragment (``moof``+``mdat``) per
frame (:class:`recorder.fmp4.Fmp4Splitter`), and puts every fragment on each :class:`Viewer`'s
bounded queue. A new viewer gets the init segment and the fragments since the latest keyframe, so it
can start decoding at once. A viewer that falls behind is dropped (its client reconnects); the
ffmpeg is stopped a grace period after the last viewer leaves, and restarted with a backoff when the
camera is lost while viewers remain. Camera credentials never reach the argv: ffmpeg reads the URL
from a script on its stdin (:func:`vms.proc.ffmpeg_input`), and the process is a
:class:`vms.proc.ChildProcess`.
See docs/design/live.md.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import ffmpeg as ffmpeg_python

from recorder import ffmpeg as ffmpeg_flags
from recorder.fmp4 import (
    Fmp4Error,
    Fmp4Splitter,
    codec_string,
    fragment_is_keyframe,
    iter_boxes,
)
from recorder.live_tap import FeedItem, LiveFeed, LiveFeeds
from vms.clock import Clock, SystemClock
from vms.config import Settings
from vms.db.gateway import Gateway
from vms.db.models import Camera, CameraStream
from vms.logs import bind_log_context, redact, register_secret
from vms.proc import ChildProcess, FfmpegInput, ffmpeg_input
from vms.secrets import SecretBox, SecretError

log = logging.getLogger(__name__)

__all__ = ["STREAM_KINDS", "Fmp4Error", "Fmp4Splitter", "LiveMessage", "LiveOptions",
           "LiveService", "LiveSource", "LiveStream", "LiveUnavailable", "Viewer",
           "codec_string", "fragment_is_keyframe", "iter_boxes", "live_argv", "live_input"]

STREAM_KINDS = ("main", "sub")
LIVE_MOVFLAGS = ffmpeg_flags.LIVE_MOVFLAGS
"""One fragment per frame: a frame leaves the server as soon as ffmpeg has it (no GOP wait)."""


# -- ffmpeg ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveSource:
    """Where one live stream comes from (the password only ever reaches the argv)."""

    camera_id: int
    camera_name: str
    kind: str
    url: str
    username: str = ""
    password: str = field(default="", repr=False)
    rtsp_transport: str = "tcp"


@dataclass(frozen=True)
class LiveOptions:
    grace_s: float = 5.0
    """Keep the ffmpeg this long after the last viewer left (a page reload reuses it)."""
    max_queued: int = 200
    """Fragments a viewer may have waiting (one a frame: 8 s at 25 fps) before it is dropped."""
    max_gop_fragments: int = 600
    """Fragments kept since the last keyframe for new viewers; beyond, they wait for a keyframe."""
    startup_timeout_s: float = 20.0
    stall_after_s: float = 1.0
    """No frame for this long after media flowed: viewers are told ``stall`` (the camera went
    silent; ffmpeg itself gives up only after ``socket_timeout_s``)."""
    fast_probe: bool = True
    """Probe only the first packet (:data:`FAST_PROBE`); after a run that delivered nothing the
    stream falls back to ffmpeg's default probe."""
    socket_timeout_s: float = 10.0
    stop_timeout_s: float = 5.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 15.0


FAST_PROBE = {"probesize": "32", "analyzeduration": "0"}
"""Probe as little as possible: the SDP (or the first access unit) names codec and size, and the
packets read while probing are kept (no ``-fflags nobuffer``, which throws them away — with it the
first keyframe was lost and the first picture waited a whole GOP)."""


def live_input(source: LiveSource, *, socket_timeout_s: float = 10.0,
               fast_probe: bool = True) -> FfmpegInput:
    """The live ffmpeg's input: for RTSP, a script on stdin with the URL and its credentials.

    ``fast_probe`` (the default) probes only the first packet; without it ffmpeg's default probe
    (up to 5 s) is used — the fallback for a camera whose first packets do not say enough."""
    probe = FAST_PROBE if fast_probe else {}
    if source.url.startswith(("rtsp://", "rtsps://")):
        src = ffmpeg_input(source.url, source.username, source.password, {
            **probe,
            "rtsp_transport": source.rtsp_transport,
            "allowed_media_types": "video",  # no audio track set up: it is not sent
            "timeout": str(int(socket_timeout_s * 1_000_000)),
        })
        # the concat demuxer probes the stream again: the same limits there
        return dataclasses.replace(src, options={**probe, **src.options})
    # a file, for development: real time, forever
    return FfmpegInput(source.url, {**probe, "re": None, "stream_loop": "-1"},
                       redact(source.url))


def live_argv(ffmpeg_exe: str, source: FfmpegInput) -> list[str]:
    """The live ffmpeg argv for ``source`` (:func:`live_input`); it holds no credentials."""
    src = ffmpeg_python.input(source.url, **source.options)
    out = ffmpeg_python.output(src["v:0"], "pipe:1", f="mp4", movflags=LIVE_MOVFLAGS,
                               flush_packets=1, **{"c:v": "copy"})
    compiled: list[str] = out.compile(cmd=ffmpeg_exe)
    return [compiled[0], "-hide_banner", "-nostdin", "-loglevel", "level+warning", *compiled[1:]]


# -- viewers and streams --------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveMessage:
    """What a viewer receives: the init segment (with its codec), a fragment, or a status line."""

    kind: Literal["init", "fragment", "status", "closed", "stall", "resumed"]
    data: bytes = b""
    codec: str = ""
    text: str = ""
    since_us: int = 0
    """``stall``: when the server received the last frame (UTC µs)."""


class Viewer:
    """One watcher's bounded queue. Iterate it; iteration ends when the viewer is closed."""

    def __init__(self, stream: LiveStream, max_queued: int) -> None:
        self.stream = stream
        self.max_queued = max_queued
        self.queue: asyncio.Queue[LiveMessage] = asyncio.Queue()
        self.synced = False  # has had an init segment and a keyframe
        self.closed = False
        self.close_reason = ""
        self.fragments = 0
        self.bytes = 0

    def offer(self, msg: LiveMessage) -> None:
        if self.closed:
            return
        if msg.kind == "init":
            self.synced = False
        if self.queue.qsize() >= self.max_queued:
            self.close("fell behind the live stream")
            return
        self.queue.put_nowait(msg)

    def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(LiveMessage("closed", text=reason))

    def __aiter__(self) -> Viewer:
        return self

    async def __anext__(self) -> LiveMessage:
        msg = await self.queue.get()
        if msg.kind == "closed":
            self.queue.put_nowait(msg)  # keep ending further iterations
            raise StopAsyncIteration
        if msg.kind == "fragment":
            self.fragments += 1
            self.bytes += len(msg.data)
        return msg


class LiveStream:
    """One ffmpeg for one (camera, stream kind), shared by every viewer of it."""

    def __init__(self, key: tuple[int, str], ffmpeg_exe: str, options: LiveOptions,
                 load: Callable[[], Awaitable[LiveSource]], clock: Clock | None = None,
                 feeds: LiveFeeds | None = None) -> None:
        self.key = key
        self._feeds = feeds
        self._feed_queue: asyncio.Queue[FeedItem] | None = None
        self.shared_runs = 0
        """Times this stream took its video from the recorder's camera session."""
        self.clock = clock or SystemClock()
        self.name = f"live {key[0]}/{key[1]}"
        self.ffmpeg_exe = ffmpeg_exe
        self.options = options
        self._load = load
        self.viewers: set[Viewer] = set()
        self.init: bytes | None = None
        self.codec = ""
        self.gop: list[bytes] = []
        self.closing = False
        self.proc: ChildProcess | None = None
        self.starts = 0
        self.fast_probe = options.fast_probe
        self.last_frame_us: int | None = None
        """When the server last received a frame (UTC µs)."""
        self.stalled_since_us: int | None = None
        """Set while no frame arrives (the last frame's time); None while frames flow."""
        self.tail: collections.deque[str] = collections.deque(maxlen=20)
        self._wake = asyncio.Event()
        self._idle: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
            self._run(), name=f"live-{key[0]}-{key[1]}")

    # viewers

    def add_viewer(self) -> Viewer:
        viewer = Viewer(self, self.options.max_queued)
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self.viewers.add(viewer)
        if self.init is not None:
            viewer.offer(LiveMessage("init", self.init, codec=self.codec))
            if self.gop:
                viewer.synced = True
                for frag in self.gop:
                    viewer.offer(LiveMessage("fragment", frag))
        if self.stalled_since_us is not None:
            viewer.offer(LiveMessage("stall", since_us=self.stalled_since_us))
        return viewer

    def remove_viewer(self, viewer: Viewer) -> None:
        viewer.close("viewer left")
        self.viewers.discard(viewer)
        if not self.viewers and not self.closing:
            loop = asyncio.get_running_loop()
            self._idle = loop.call_later(self.options.grace_s, self._idle_expired)

    def _idle_expired(self) -> None:
        self._idle = None
        if not self.viewers:
            log.info("%s: no viewers for %.1fs; stopping", self.name, self.options.grace_s)
            self.close()

    def close(self) -> None:
        """Stop the ffmpeg (terminate, then kill) and end every viewer; await :attr:`task`."""
        self.closing = True
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self._wake.set()
        if self.proc is not None:
            self.proc.terminate()
        if self._feed_queue is not None:
            self._feed_queue.put_nowait(None)

    def _broadcast(self, msg: LiveMessage) -> None:
        for viewer in list(self.viewers):
            if msg.kind == "fragment" and not viewer.synced:
                continue
            viewer.offer(msg)
            if viewer.closed:
                self.viewers.discard(viewer)
                log.info("%s: dropped a viewer: %s", self.name, viewer.close_reason)

    def _status(self, text: str) -> None:
        for viewer in list(self.viewers):
            viewer.offer(LiveMessage("status", text=text))

    def _stalled(self) -> None:
        """No frame for ``stall_after_s`` (or the run ended): tell every viewer, once."""
        if self.stalled_since_us is not None or self.last_frame_us is None:
            return
        self.stalled_since_us = self.last_frame_us
        log.warning("%s: no frame for %.1fs", self.name, self.options.stall_after_s)
        self._broadcast_control(LiveMessage("stall", since_us=self.last_frame_us))

    def _frame(self) -> None:
        self.last_frame_us = self.clock.now_us()
        if self.stalled_since_us is not None:
            self.stalled_since_us = None
            log.info("%s: frames again", self.name)
            self._broadcast_control(LiveMessage("resumed"))

    def _broadcast_control(self, msg: LiveMessage) -> None:
        for viewer in list(self.viewers):
            viewer.offer(msg)

    # the ffmpeg

    async def _run(self) -> None:
        bind_log_context(camera_id=self.key[0], stream=self.key[1])
        backoff_s = self.options.backoff_initial_s
        try:
            while not self.closing:
                feed = self._feeds.get(self.key) if self._feeds is not None else None
                if feed is not None:  # recorded: share the recorder's camera session
                    if await self._run_feed(feed):
                        backoff_s = self.options.backoff_initial_s
                    reason = self._last_error() or "the recording's camera session ended"
                    if self.closing:
                        break
                    log.info("%s: %s; retrying in %.1fs", self.name, reason, backoff_s)
                    self._status(f"reconnecting: {reason}")
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), backoff_s)
                    backoff_s = min(backoff_s * 2, self.options.backoff_max_s)
                    continue
                try:
                    source = await self._load()
                except LiveUnavailable as exc:  # camera removed, or its secret unreadable
                    log.warning("%s: %s; ending the stream", self.name, exc)
                    for viewer in list(self.viewers):
                        viewer.close(str(exc))
                    break
                else:
                    got_media = await self._run_once(source)
                    if got_media:
                        backoff_s = self.options.backoff_initial_s
                    reason = self._last_error() or "camera stream ended"
                if self.closing:
                    break
                log.warning("%s: %s; retrying in %.1fs", self.name, reason, backoff_s)
                self._status(f"reconnecting: {reason}")
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), backoff_s)
                backoff_s = min(backoff_s * 2, self.options.backoff_max_s)
        finally:
            self.closing = True
            for viewer in list(self.viewers):
                viewer.close("live stream stopped")
            self.viewers.clear()

    # what the ffmpeg makes: video here; recorder/listen.py's audio stream overrides these

    def command(self, source: LiveSource) -> tuple[FfmpegInput, list[str]]:
        """The ffmpeg input (its stdin script) and argv for ``source``."""
        src = live_input(source, socket_timeout_s=self.options.socket_timeout_s,
                         fast_probe=self.fast_probe)
        return src, live_argv(self.ffmpeg_exe, src)

    def codec_of(self, init: bytes) -> str:
        return codec_string(init)

    def is_keyframe(self, fragment: bytes) -> bool:
        return fragment_is_keyframe(fragment)

    def _last_error(self) -> str:
        for line in reversed(self.tail):
            if "[error]" in line or "[fatal]" in line:
                return line
        return self.tail[-1] if self.tail else ""

    async def _run_once(self, source: LiveSource) -> bool:
        """Run one ffmpeg until it exits; True when it delivered media."""
        if source.password:
            register_secret(source.password)
        src, argv = self.command(source)
        log.info("%s: %s: starting ffmpeg for %s: %s", self.name, source.camera_name, src.shown,
                 redact(" ".join(argv)))
        self.tail.clear()
        proc = ChildProcess(argv, name=f"{self.name}: ffmpeg", stdin=src.stdin,
                            secrets=src.secrets, tail=self.tail,
                            stop_timeout_s=self.options.stop_timeout_s)
        await proc.start()
        self.proc = proc
        self.starts += 1
        got_media = False
        try:
            if self.closing:  # closed while it started
                proc.terminate()
            got_media = await self._read_stdout(proc.stdout)
        except Fmp4Error as exc:
            self.tail.append(f"[error] {exc}")
            log.error("%s: %s", self.name, exc)
        finally:
            if not self.closing:
                self._stalled()  # the picture stops here, whatever comes next
            if not got_media and self.fast_probe and not self.closing:
                log.info("%s: no video with the short probe; probing fully next time", self.name)
                self.fast_probe = False
            await proc.stop()
            self.proc = None
            self.init = None
            self.codec = ""
            self.gop = []
        return got_media

    async def _run_feed(self, feed: LiveFeed) -> bool:
        """Follow a recorded stream's live feed until it ends; True when it delivered media."""
        queue = self._feed_queue = feed.attach(self.options.max_gop_fragments + 1000)
        self.shared_runs += 1
        self.tail.clear()
        log.info("%s: sharing the recorder's camera session", self.name)
        got_media = False
        try:
            while not self.closing:
                timeout = (self.options.stall_after_s if got_media
                           else self.options.startup_timeout_s)
                try:
                    item = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    if got_media:
                        self._stalled()
                        continue
                    self.tail.append("[error] no video from the recording within "
                                     f"{self.options.startup_timeout_s:.0f}s")
                    break
                if item is None:
                    break
                got_media = self._unit(*item) or got_media
        finally:
            feed.detach(queue)
            self._feed_queue = None
            if not self.closing:
                self._stalled()
            self.init = None
            self.codec = ""
            self.gop = []
        return got_media

    def _unit(self, kind: str, unit: bytes) -> bool:
        """Cache and fan out one init segment or fragment; True for a fragment (media)."""
        if kind == "init":
            self.init = unit
            self.codec = self.codec_of(unit)
            self.gop = []
            log.info("%s: streaming %s", self.name, self.codec)
            self._broadcast(LiveMessage("init", unit, codec=self.codec))
            return False
        if self.init is None:
            return False
        self._frame()
        if self.is_keyframe(unit):
            self.gop = [unit]
            for viewer in self.viewers:
                viewer.synced = True
        elif self.gop and len(self.gop) < self.options.max_gop_fragments:
            self.gop.append(unit)
        else:
            self.gop = []  # too long a GOP: new viewers wait for the next keyframe
        self._broadcast(LiveMessage("fragment", unit))
        return True

    async def _read_stdout(self, stdout: asyncio.StreamReader) -> bool:
        splitter = Fmp4Splitter()
        got_media = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.startup_timeout_s
        while True:
            if got_media:
                timeout = self.options.stall_after_s
            else:
                timeout = max(0.1, deadline - loop.time())
            try:
                data = await asyncio.wait_for(stdout.read(256 * 1024), timeout)
            except TimeoutError:
                if got_media:  # the camera went silent: say so, keep waiting for ffmpeg
                    self._stalled()
                    continue
                self.tail.append(f"[error] no video within {self.options.startup_timeout_s:.0f}s")
                return False
            if not data:
                return got_media
            for kind, unit in splitter.feed(data):
                got_media = self._unit(kind, unit) or got_media


# -- the service ----------------------------------------------------------------------------------


class LiveUnavailable(LookupError):
    """The camera or the stream does not exist, or its credentials cannot be read."""


class LiveService:
    """Every live stream of this server; started and stopped by the composition root."""

    def __init__(self, gateway: Gateway, settings: Settings, secrets: SecretBox,
                 options: LiveOptions | None = None, clock: Clock | None = None) -> None:
        self.gw = gateway
        self.clock = clock or SystemClock()
        self.settings = settings
        self.secrets = secrets
        self.options = options or LiveOptions()
        self.feeds = LiveFeeds()
        """Recorded streams' live output (recorder/live_tap.py), filled by the recorder."""
        self._ffmpeg_exe: str | None = None
        self._streams: dict[tuple[int, str], LiveStream] = {}
        self._all: set[LiveStream] = set()
        self._lock = asyncio.Lock()
        self._stopped = False

    def stats(self) -> list[dict[str, object]]:
        """One line per stream whose task has not ended: camera, kind, viewers, ffmpeg pid."""
        return [{"camera_id": s.key[0], "stream": s.key[1], "viewers": len(s.viewers),
                 "pid": s.proc.pid if s.proc else None, "codec": s.codec, "starts": s.starts,
                 "stopping": s.closing, "stalled_since_us": s.stalled_since_us,
                 "shared_runs": s.shared_runs,
                 "source": "recorder" if s._feed_queue is not None else "ffmpeg",
                 "last_frame_us": s.last_frame_us}
                for s in sorted(self._all, key=lambda s: (s.key, s.closing))]

    def running(self, camera_id: int, kind: str) -> LiveStream | None:
        stream = self._streams.get((camera_id, kind))
        return stream if stream is not None and not stream.closing else None

    async def resolve(self, camera_id: int, kind: str) -> LiveSource:
        """The source of ``kind`` (a camera without a sub stream falls back to its main one)."""
        if kind not in STREAM_KINDS:
            raise LiveUnavailable(f"unknown stream {kind!r}")

        def load() -> tuple[Camera | None, dict[str, str]]:
            cam = Camera.get_or_none(Camera.id == camera_id)
            if cam is None:
                return None, {}
            rows = CameraStream.select().where(CameraStream.camera == camera_id)
            return cam, {s.kind: s.rtsp_url for s in rows if s.rtsp_url}

        cam, urls = await self.gw.read(load)
        if cam is None:
            raise LiveUnavailable(f"no camera {camera_id}")
        if cam.archived_us is not None:
            raise LiveUnavailable(f"camera {cam.name!r} was removed: no live view (its "
                                  "recordings can still be played)")
        chosen = kind if kind in urls else next((k for k in STREAM_KINDS if k in urls), None)
        if chosen is None:
            raise LiveUnavailable(f"camera {cam.name!r} has no stream to show")
        try:
            password = self.secrets.decrypt(cam.password_enc) if cam.password_enc else ""
        except SecretError as exc:
            raise LiveUnavailable(f"camera {cam.name!r}: {exc}") from None
        return LiveSource(camera_id=camera_id, camera_name=cam.name, kind=chosen,
                          url=urls[chosen], username=cam.username, password=password,
                          rtsp_transport=self.settings.recording.rtsp_transport)

    async def subscribe(self, camera_id: int, kind: str) -> Viewer:
        """A new viewer of the stream (started on demand). Pair with :meth:`unsubscribe`."""
        async with self._lock:
            if self._stopped:
                raise LiveUnavailable("the server is stopping")
            key = (camera_id, kind)
            stream = self._streams.get(key)
            if stream is None or stream.closing:
                if self._ffmpeg_exe is None:
                    self._ffmpeg_exe = await asyncio.to_thread(self.settings.ffmpeg_exe)
                stream = LiveStream(key, self._ffmpeg_exe, self.options,
                                    lambda: self.resolve(camera_id, kind), self.clock,
                                    self.feeds)
                self._streams[key] = stream
                self._all.add(stream)
                stream.task.add_done_callback(functools.partial(self._forget, stream))
            return stream.add_viewer()

    def unsubscribe(self, viewer: Viewer) -> None:
        viewer.stream.remove_viewer(viewer)

    @contextlib.asynccontextmanager
    async def watch(self, camera_id: int, kind: str) -> AsyncIterator[Viewer]:
        viewer = await self.subscribe(camera_id, kind)
        try:
            yield viewer
        finally:
            self.unsubscribe(viewer)

    def _forget(self, stream: LiveStream, _task: object = None) -> None:
        self._all.discard(stream)
        if self._streams.get(stream.key) is stream:
            del self._streams[stream.key]

    async def stop(self) -> None:
        """Stop every stream and await its ffmpeg's exit."""
        self._stopped = True
        streams = list(self._all)
        for stream in streams:
            stream.close()
        results = await asyncio.gather(*(s.task for s in streams), return_exceptions=True)
        for stream, result in zip(streams, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("%s: failed: %r", stream.name, result)
