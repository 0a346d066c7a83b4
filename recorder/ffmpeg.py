"""The recording ffmpeg process: its command line, its output streams and its life.

This module owns everything about one ``ffmpeg -c copy -f segment`` process: building the argv with
ffmpeg-python (never a shell), putting camera credentials into the RTSP URL of the argv only (the
logged form is redacted), spawning it with :func:`asyncio.create_subprocess_exec`, draining stderr
continuously (progress key=value lines and the last log lines, redacted, for error reasons), handing
each segment-list CSV line from stdout to the caller, and stopping it (terminate, wait with a
timeout, kill; the owner always awaits the exit). It knows nothing about the database.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import ffmpeg as ffmpeg_python

from vms.logs import redact, register_secret
from vms.urls import credentialed_url

log = logging.getLogger(__name__)

FRAGMENTED_MP4_FLAGS = "movflags=+frag_keyframe+empty_moov+default_base_moof:flush_packets=1"
"""Each keyframe starts a fragment, and every write reaches the file at once (without
``flush_packets`` a low-bitrate segment killed after 1.7 s held only its 28-byte ``ftyp``): a killed
process leaves a file playable up to its last complete fragment."""

STDERR_TAIL_LINES = 30
PROGRESS_PERIOD_S = 2
"""Seconds between progress reports (stall detection needs a few seconds, not one)."""
READ_CHUNK_BYTES = 65536

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
    password: str
    output_pattern: Path
    """Segment file pattern containing one ``%06d`` (the sequence number within the run)."""
    segment_seconds: int
    rtsp_transport: str = "tcp"
    transcode_audio: bool = False
    """True: ``-c:a aac`` (G.711 and other codecs MP4 cannot carry); False: copy audio."""
    socket_timeout_s: float = 10.0

    def argv(self) -> list[str]:
        """The argv, credentials included: pass it to exec, never to a log."""
        return self._argv(credentialed_url(self.url, self.username, self.password))

    def redacted_argv(self) -> list[str]:
        """The argv as it may be logged."""
        safe = credentialed_url(self.url, self.username, "***" if self.password else "")
        return [redact(a) for a in self._argv(safe)]

    def _argv(self, url: str) -> list[str]:
        input_opts: dict[str, object] = {}
        if url.startswith(("rtsp://", "rtsps://")):
            input_opts["rtsp_transport"] = self.rtsp_transport
            input_opts["timeout"] = int(self.socket_timeout_s * 1_000_000)
        else:  # a file or device, for development: read it in real time, forever
            input_opts["re"] = None
            input_opts["stream_loop"] = -1
        source = ffmpeg_python.input(url, **input_opts)
        out = ffmpeg_python.output(
            source["v"], source["a?"], str(self.output_pattern),
            f="segment",
            segment_time=self.segment_seconds,
            segment_format="mp4",
            segment_format_options=FRAGMENTED_MP4_FLAGS,
            segment_list="pipe:1",
            segment_list_type="csv",
            **{"c:v": "copy", "c:a": "aac" if self.transcode_audio else "copy"},
        )
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


def _set_parent_death_signal() -> None:  # pragma: no cover - runs in the child
    """Linux: have the kernel SIGKILL ffmpeg when its owner dies (kill -9 of the server)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1


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
        self.tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.proc: asyncio.subprocess.Process | None = None
        self.stopping = False
        self.killed_by_us = False
        self.last_out_time_us: int | None = None
        self._readers: list[asyncio.Task[None]] = []

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self) -> None:
        if self.command.password:
            register_secret(self.command.password)
        log.info("%s: starting %s", self.name, " ".join(self.command.redacted_argv()))
        kwargs: dict[str, object] = {}
        if sys.platform.startswith("linux"):
            kwargs["preexec_fn"] = _set_parent_death_signal
        self.proc = await asyncio.create_subprocess_exec(
            *self.command.argv(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            **kwargs,  # type: ignore[arg-type]
        )
        self._readers = [
            asyncio.create_task(self._read_stdout(), name=f"{self.name}-stdout"),
            asyncio.create_task(self._read_stderr(), name=f"{self.name}-stderr"),
        ]

    @staticmethod
    async def _lines(stream: asyncio.StreamReader) -> AsyncIterator[list[bytes]]:
        """Complete lines, a batch per read: one await per chunk, not per line (the progress
        block of ~12 lines arrives in one write; per-line reads cost the supervisor's CPU)."""
        pending = b""
        while True:
            chunk = await stream.read(READ_CHUNK_BYTES)
            if not chunk:
                if pending:
                    yield [pending]
                return
            *lines, pending = (pending + chunk).split(b"\n")
            if lines:
                yield lines

    async def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for batch in self._lines(self.proc.stdout):
            for raw in batch:
                self._stdout_line(raw)

    def _stdout_line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").strip()
        seg = parse_segment_line(line)
        if seg is not None:
            self._on_segment(seg)
        elif line:
            log.debug("%s: unexpected segment-list line %r", self.name, redact(line))

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for batch in self._lines(self.proc.stderr):
            for raw in batch:
                self._stderr_line(raw)

    def _stderr_line(self, raw: bytes) -> None:
        if raw.startswith(b"out_time_us="):
            with contextlib.suppress(ValueError):
                self.last_out_time_us = int(raw[12:])
                if self._on_progress is not None:
                    self._on_progress(self.last_out_time_us)
            return
        key, sep, _ = raw.partition(b"=")
        if sep and b" " not in key and key.replace(b"_", b"").isalnum():
            return  # other progress keys
        line = raw.decode("utf-8", "replace").strip()
        if not line:
            return
        clean = redact(line)
        self.tail.append(clean)
        if "Timestamps are unset" not in clean:
            log.debug("%s: ffmpeg: %s", self.name, clean)
        if self._on_log is not None:
            self._on_log(clean)

    def tail_text(self) -> str:
        return "\n".join(self.tail)

    def last_error_line(self) -> str:
        for line in reversed(self.tail):
            if "[error]" in line or "[fatal]" in line:
                return _strip_ffmpeg_prefix(line)
        return _strip_ffmpeg_prefix(self.tail[-1]) if self.tail else ""

    async def wait(self) -> int:
        """Wait for the exit and for both pipes to be drained; the return code."""
        assert self.proc is not None
        rc = await self.proc.wait()
        if self._readers:
            await asyncio.gather(*self._readers, return_exceptions=True)
        return rc

    async def stop(self, timeout_s: float = 5.0) -> int:
        """Terminate (ffmpeg then writes the last segment and its list line), wait, kill."""
        self.stopping = True
        assert self.proc is not None
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                return await asyncio.wait_for(self.wait(), timeout_s)
            except TimeoutError:
                log.warning("%s: ffmpeg did not exit %.1fs after SIGTERM; killing", self.name,
                            timeout_s)
                self.kill()
        return await self.wait()

    def terminate(self) -> None:
        """SIGTERM without waiting (ffmpeg closes its segment, lists it and exits); the owner
        awaits the exit and kills ffmpeg if it does not come."""
        self.stopping = True
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()

    def kill(self) -> None:
        self.killed_by_us = True
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
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
