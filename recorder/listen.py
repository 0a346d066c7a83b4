"""Listening: a camera's own sound (an intercom panel's microphone) for the live page, as AAC fMP4.

This module owns the audio half of answering a door. The live video stream stays video only and
untouched (``recorder/live.py``: ``-c:v copy``, no audio track set up), so cameras without sound,
and everyone who only watches, pay nothing. When someone turns the sound on, :class:`ListenService`
starts one :class:`AudioStream` per camera, shared by every listener: an ffmpeg that sets up only
the camera's audio track (``allowed_media_types=audio``), transcodes it — G.711 cannot go into
MP4, and one encoder means one codec for the browser — to AAC-LC mono at 16 kHz, and writes one
fragment per AAC frame (64 ms). The fan-out, bounded queues, grace period and reconnects are
:class:`recorder.live.LiveStream`'s; every audio fragment is a sync point, so a new listener starts
at the newest one. A camera that sends no audio makes the ffmpeg fail ("no audio"), and the
listener is told through the usual status messages. See docs/design/talkback.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import ffmpeg as ffmpeg_python

from recorder.live import (
    LIVE_MOVFLAGS,
    LiveOptions,
    LiveSource,
    LiveStream,
    LiveUnavailable,
    Viewer,
)
from vms.config import Settings
from vms.proc import FfmpegInput, ffmpeg_input

log = logging.getLogger(__name__)

AUDIO_CODEC = "mp4a.40.2"  # AAC-LC, what ffmpeg's aac encoder writes
AUDIO_RATE = 16_000
AUDIO_BITRATE = "32k"


def listen_input(source: LiveSource, *, socket_timeout_s: float = 10.0) -> FfmpegInput:
    """The listening ffmpeg's input: the camera's audio track only (no video is set up)."""
    src = ffmpeg_input(source.url, source.username, source.password, {
        "fflags": "nobuffer",
        "rtsp_transport": source.rtsp_transport,
        "allowed_media_types": "audio",
        "timeout": str(int(socket_timeout_s * 1_000_000)),
    })
    return dataclasses.replace(src, options={"fflags": "nobuffer", **src.options})


def listen_argv(ffmpeg_exe: str, source: FfmpegInput) -> list[str]:
    """AAC-LC mono 16 kHz, one fragment per frame, on stdout; no credentials in it."""
    src = ffmpeg_python.input(source.url, **source.options)
    out = ffmpeg_python.output(src["a:0"], "pipe:1", f="mp4", movflags=LIVE_MOVFLAGS,
                               flush_packets=1, ac=1, ar=AUDIO_RATE,
                               **{"c:a": "aac", "b:a": AUDIO_BITRATE})
    compiled: list[str] = out.compile(cmd=ffmpeg_exe)
    return [compiled[0], "-hide_banner", "-nostdin", "-loglevel", "level+warning", *compiled[1:]]


class AudioStream(LiveStream):
    """One ffmpeg turning a camera's sound into AAC fragments, shared by its listeners."""

    def command(self, source: LiveSource) -> tuple[FfmpegInput, list[str]]:
        src = listen_input(source, socket_timeout_s=self.options.socket_timeout_s)
        return src, listen_argv(self.ffmpeg_exe, src)

    def codec_of(self, init: bytes) -> str:
        return AUDIO_CODEC

    def is_keyframe(self, fragment: bytes) -> bool:
        return True  # every AAC frame decodes on its own


class ListenService:
    """Every camera someone is listening to; started and stopped by the composition root."""

    def __init__(self, resolve: Callable[[int, str], Awaitable[LiveSource]], settings: Settings,
                 options: LiveOptions | None = None) -> None:
        self._resolve = resolve
        self.settings = settings
        self.options = options or LiveOptions()
        self._ffmpeg_exe: str | None = None
        self._streams: dict[int, AudioStream] = {}
        self._all: set[AudioStream] = set()
        self._lock = asyncio.Lock()
        self._stopped = False

    def stats(self) -> list[dict[str, object]]:
        return [{"camera_id": s.key[0], "listeners": len(s.viewers),
                 "pid": s.proc.pid if s.proc else None, "starts": s.starts,
                 "stopping": s.closing} for s in sorted(self._all, key=lambda s: s.key)]

    async def subscribe(self, camera_id: int) -> Viewer:
        """A new listener of the camera's sound (its ffmpeg started on demand)."""
        async with self._lock:
            if self._stopped:
                raise LiveUnavailable("the server is stopping")
            stream = self._streams.get(camera_id)
            if stream is None or stream.closing:
                if self._ffmpeg_exe is None:
                    self._ffmpeg_exe = await asyncio.to_thread(self.settings.ffmpeg_exe)
                stream = AudioStream((camera_id, "audio"), self._ffmpeg_exe, self.options,
                                     lambda: self._resolve(camera_id, "main"))
                self._streams[camera_id] = stream
                self._all.add(stream)
                stream.task.add_done_callback(functools.partial(self._forget, stream))
            return stream.add_viewer()

    @contextlib.asynccontextmanager
    async def listen(self, camera_id: int) -> AsyncIterator[Viewer]:
        viewer = await self.subscribe(camera_id)
        try:
            yield viewer
        finally:
            viewer.stream.remove_viewer(viewer)

    def _forget(self, stream: AudioStream, _task: object = None) -> None:
        self._all.discard(stream)
        if self._streams.get(stream.key[0]) is stream:
            del self._streams[stream.key[0]]

    async def stop(self) -> None:
        """Stop every audio stream and await its ffmpeg's exit."""
        self._stopped = True
        streams = list(self._all)
        for stream in streams:
            stream.close()
        await asyncio.gather(*(s.task for s in streams), return_exceptions=True)
