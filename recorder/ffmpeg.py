"""The recording ffmpeg process: its command line, its output streams and its life.

This module owns everything about one ``ffmpeg -c copy -f segment`` process: building the argv with
ffmpeg-python (never a shell; the camera URL and its credentials reach ffmpeg through a script on
its stdin, :func:`vms.proc.ffmpeg_input`, never through the argv), running it as a
:class:`vms.proc.ChildProcess` (spawn, stderr drained continuously into a redacted tail, stop =
terminate, wait with a timeout, kill; the owner always awaits the exit), reading its progress
key=value lines and handing each segment-list CSV line from stdout to the caller. It knows nothing
about the database.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import ffmpeg as ffmpeg_python

from vms.logs import redact, register_secret
from vms.proc import ChildProcess, FfmpegInput, ffmpeg_input

log = logging.getLogger(__name__)

FRAGMENTED_MP4_FLAGS = "movflags=+frag_keyframe+empty_moov+default_base_moof:flush_packets=1"
"""Each keyframe starts a fragment, and every write reaches the file at once (without
``flush_packets`` a low-bitrate segment killed after 1.7 s held only its 28-byte ``ftyp``): a killed
process leaves a file playable up to its last complete fragment."""

LIVE_MOVFLAGS = "+frag_every_frame+empty_moov+default_base_moof"
"""The live output: one fragment per frame, as recorder/live.py's own ffmpeg writes it."""

PROGRESS_PERIOD_S = 2
"""Seconds between progress reports (stall detection needs a few seconds, not one)."""

AUTH_FAILED_MARKERS = ("401 Unauthorized", "403 Forbidden")
AUDIO_UNSUPPORTED_MARKERS = ("codec not currently supported in container",)
DISK_FULL_MARKERS = ("No space left on device", "Disk quota exceeded")
"""ENOSPC/EDQUOT as ffmpeg prints them (``Error submitting a packet to the muxer: No space left on
device``, exit code 228). ffmpeg still lists the segment it failed to finish, truncated."""
READ_TIMEOUT_MARKER = "Failed reading RTSP data: Connection timed out"
"""The camera sent nothing for the socket timeout. ffmpeg survives the first one (it retries the read
and exits only at the second), but the first packet after it gets no timestamp of its own: ffmpeg
gives it the previous packet's time plus a frame, so the keyframe ending a stall is written seconds
before it was captured (measured with camsim: 6.9 s early after a 6 s stall with a 5 s timeout).
The recorder ends the run there instead (see recorder/run.py)."""
CONNECT_FAILED_MARKERS = (
    "Connection refused", "Connection timed out", "Connection reset", "No route to host",
    "503 Service Unavailable", "End of file", "Network is unreachable", "Broken pipe",
    "Operation timed out", "Invalid data found when processing input",
)


@dataclass(frozen=True)
class RecordCommand:
    """What one recording ffmpeg is asked to do."""

    ffmpeg_exe: str
    url: str
    """RTSP URL without credentials (or, for development, any ffmpeg input)."""
    username: str
    password: str = field(repr=False)
    output_pattern: Path
    """Segment file pattern containing one ``%06d`` (the sequence number within the run)."""
    segment_seconds: int
    rtsp_transport: str = "tcp"
    transcode_audio: bool = False
    """True: ``-c:a aac`` (G.711 and other codecs MP4 cannot carry); False: copy audio."""
    socket_timeout_s: float = 10.0
    live_fd: int | None = None
    """A pipe's write end: also write the video as fragmented MP4, one fragment a frame, to it
    (``pipe:N``) — live view shares this camera session (recorder/live_tap.py)."""

    def source(self) -> FfmpegInput:
        """The input: for RTSP, a script on stdin holding the URL, credentials and options."""
        if self.url.startswith(("rtsp://", "rtsps://")):
            return ffmpeg_input(self.url, self.username, self.password, {
                "rtsp_transport": self.rtsp_transport,
                "timeout": str(int(self.socket_timeout_s * 1_000_000)),
            })
        # a file or device, for development: read it in real time, forever
        return FfmpegInput(self.url, {"re": None, "stream_loop": "-1"})

    def argv(self, source: FfmpegInput | None = None) -> list[str]:
        """The argv; it holds no credentials (they are in ``source().stdin``)."""
        source = source or self.source()
        stream = ffmpeg_python.input(source.url, **source.options)
        out = ffmpeg_python.output(
            stream["v"], stream["a?"], str(self.output_pattern),
            f="segment",
            segment_time=self.segment_seconds,
            segment_format="mp4",
            segment_format_options=FRAGMENTED_MP4_FLAGS,
            segment_list="pipe:1",
            segment_list_type="csv",
            **{"c:v": "copy", "c:a": "aac" if self.transcode_audio else "copy"},
        )
        if self.live_fd is not None:
            live = ffmpeg_python.output(stream["v:0"], f"pipe:{self.live_fd}", f="mp4",
                                        movflags=LIVE_MOVFLAGS, flush_packets=1,
                                        **{"c:v": "copy"})
            out = ffmpeg_python.merge_outputs(out, live)
        compiled: list[str] = out.compile(cmd=self.ffmpeg_exe)
        global_opts = [
            "-hide_banner", "-nostdin", "-loglevel", "level+warning",
            "-nostats", "-progress", "pipe:2", "-stats_period", str(PROGRESS_PERIOD_S),
        ]
        return [compiled[0], *global_opts, *compiled[1:]]


@dataclass(frozen=True)
class SegmentLine:
    """One ``name,start,end`` line of ffmpeg's CSV segment list (times in the run's media time)."""

    name: str
    start_s: float
    end_s: float


def parse_segment_line(line: str) -> SegmentLine | None:
    """Parse a CSV segment-list line; None when it is not one (names never contain commas)."""
    parts = line.strip().rsplit(",", 2)
    if len(parts) != 3 or not parts[0]:
        return None
    try:
        return SegmentLine(parts[0].strip('"'), float(parts[1]), float(parts[2]))
    except ValueError:
        return None


class FfmpegProcess:
    """One running recording ffmpeg. ``on_segment`` is called (in the loop) for each CSV line,
    ``on_progress`` for each ``out_time_us``, ``on_log`` for each other stderr line (redacted)."""

    def __init__(self, command: RecordCommand, *, name: str,
                 on_segment: Callable[[SegmentLine], None],
                 on_progress: Callable[[int], None] | None = None,
                 on_log: Callable[[str], None] | None = None) -> None:
        self.command = command
        self.name = name
        self._on_segment = on_segment
        self._on_progress = on_progress
        self._on_log = on_log
        self.last_out_time_us: int | None = None
        self.proc: ChildProcess | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def stopping(self) -> bool:
        return self.proc is not None and self.proc.stopping

    @property
    def killed_by_us(self) -> bool:
        return self.proc is not None and self.proc.killed_by_us

    async def start(self) -> None:
        if self.command.password:
            register_secret(self.command.password)
        source = self.command.source()
        argv = self.command.argv(source)
        log.info("%s: starting ffmpeg for %s: %s", self.name, source.shown, redact(" ".join(argv)))
        self.proc = ChildProcess(
            argv, name=f"{self.name}: ffmpeg", stdin=source.stdin,
            on_stdout_line=self._stdout_line, on_stderr_line=self._progress_line,
            secrets=source.secrets, quiet=("Timestamps are unset",),
            pass_fds=() if self.command.live_fd is None else (self.command.live_fd,))
        await self.proc.start()

    def _stdout_line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").strip()
        seg = parse_segment_line(line)
        if seg is not None:
            self._on_segment(seg)
        elif line:
            log.debug("%s: unexpected segment-list line %r", self.name, redact(line))

    def _progress_line(self, raw: bytes) -> bool:
        """A ``-progress`` key=value line (consumed); False for a log line (kept in the tail)."""
        if raw.startswith(b"out_time_us="):
            with contextlib.suppress(ValueError):
                self.last_out_time_us = int(raw[12:])
                if self._on_progress is not None:
                    self._on_progress(self.last_out_time_us)
            return True
        key, sep, _ = raw.partition(b"=")
        if sep and b" " not in key and key.replace(b"_", b"").isalnum():
            return True  # other progress keys
        if self._on_log is not None and self.proc is not None:
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self._on_log(self.proc.scrub(line))
        return False  # a log line: the child process keeps it (redacted) in its tail

    def tail_text(self) -> str:
        return self.proc.tail_text() if self.proc is not None else ""

    def last_error_line(self) -> str:
        tail = self.proc.tail if self.proc is not None else ()
        for line in reversed(tail):
            if "[error]" in line or "[fatal]" in line:
                return _strip_ffmpeg_prefix(line)
        return _strip_ffmpeg_prefix(tail[-1]) if tail else ""

    async def wait(self) -> int:
        """Wait for the exit and for both pipes to be drained; the return code."""
        assert self.proc is not None
        return await self.proc.wait()

    async def stop(self, timeout_s: float = 5.0) -> int:
        """Terminate (ffmpeg then writes the last segment and its list line), wait, kill."""
        assert self.proc is not None
        return await self.proc.stop(timeout_s)

    def terminate(self) -> None:
        """SIGTERM without waiting (ffmpeg closes its segment, lists it and exits); the owner
        awaits the exit and kills ffmpeg if it does not come."""
        if self.proc is not None:
            self.proc.terminate()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()


def _strip_ffmpeg_prefix(line: str) -> str:
    """``[rtsp @ 0x55…] [error] method DESCRIBE failed: 401 Unauthorized`` → the message."""
    text = line
    while text.startswith("["):
        end = text.find("]")
        if end < 0:
            break
        text = text[end + 1:].lstrip()
    return text or line
