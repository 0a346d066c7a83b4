"""One run in progress: its state, the callbacks ffmpeg's output drives, and the watchdog.

:class:`RunState` is what :class:`recorder.run.StreamRecorder` knows about the run it is recording
(its row, folder, volume, the run clock, indexed segments, why it was stopped). :class:`RunWatch`
holds the three things that react to ffmpeg while it runs — progress reports (first media →
``recording``), segment-list lines (queued for the indexer, then a volume check), log lines (a read
timeout ends the run cleanly) — and :meth:`RunWatch.watch`, the loop that ticks every second until
ffmpeg exits: it checks the run's volume (health and free space, read off the event loop through
:class:`recorder.volumes.VolumeMonitor`), kills ffmpeg when it makes no progress for
``stall_timeout_s`` (``startup_timeout_s`` before the first media), and kills it when a clean stop
it asked for takes longer than ``stop_timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from recorder import index
from recorder.ffmpeg import READ_TIMEOUT_MARKER, FfmpegProcess, SegmentLine
from recorder.preroll import PreRollRing
from recorder.runclock import RunClock
from recorder.segments import space_problem
from recorder.volumes import VolumeMonitor
from vms.clock import Clock
from vms.config import Volume

log = logging.getLogger(__name__)


class WatchOptions(Protocol):
    """The recorder options a watch reads (:class:`recorder.run.RecorderOptions`)."""

    @property
    def socket_timeout_s(self) -> float: ...

    @property
    def stall_timeout_s(self) -> float: ...

    @property
    def startup_timeout_s(self) -> float: ...

    @property
    def stop_timeout_s(self) -> float: ...


class Recorder(Protocol):
    """What a watch needs of the stream recorder (:class:`recorder.run.StreamRecorder`); a
    protocol, so this module does not import the one that imports it."""

    name: str
    clock: Clock
    volumes: VolumeMonitor

    @property
    def options(self) -> WatchOptions: ...

    @property
    def is_event(self) -> bool: ...

    @property
    def stopping(self) -> bool: ...

    def set_recording(self) -> None: ...

    def spawn_write(self, fn: Callable[..., object], *args: object) -> None: ...

FLUSH = "flush"
"""Indexer queue marker: an event arrived, index the ring segments it keeps."""
WATCH_TICK_S = 1.0


@dataclass
class RunState:
    run_id: int
    run_uuid: str
    volume: Volume
    folder: Path
    provisional_start_us: int
    run_clock: RunClock = field(default_factory=RunClock)
    """The run's anchor and the chain of the segments ffmpeg closed (indexed or in the ring)."""
    last_end_us: int | None = None
    """End of the last indexed segment."""
    last_seq: int = -1
    recent: list[tuple[int, Path, int, int]] = field(default_factory=list)
    """The last indexed segments: (row id, path, start_us, end_us), newest last."""
    disk_full: str | None = None
    """Why the run was stopped for lack of space (the volume fell below ``min_free_bytes``)."""
    volume_problem: str | None = None
    """Why the run was stopped because its volume became unusable (unmarked, foreign,
    unreadable, unresponsive): the health message."""
    silent: bool = False
    """ffmpeg's read timed out (the camera sent nothing for ``socket_timeout_s``): run ended."""
    segments: int = 0
    closed: int = 0
    ring: PreRollRing = field(default_factory=PreRollRing)
    media_seen: bool = False
    progress_anchor_us: int | None = None
    """Early estimate of media time 0 from the first progress report (used until a segment closes)."""
    queue: asyncio.Queue[tuple[SegmentLine, int] | str | None] = field(
        default_factory=asyncio.Queue)


class RunWatch:
    """ffmpeg's callbacks and the watchdog of one run (see the module docstring)."""

    def __init__(self, recorder: Recorder, state: RunState) -> None:
        self.rec = recorder
        self.state = state
        self.proc: FfmpegProcess | None = None
        clock = recorder.clock
        self.last_progress_us = clock.monotonic_us()
        """Monotonic instant of the last progress (a later media time, or a segment line)."""
        self.last_out_time_us = -1
        self.stalled = False
        self._check: asyncio.Task[None] | None = None

    # -- callbacks (called by FfmpegProcess's reader tasks, on the loop) ---------------------

    def on_progress(self, out_time_us: int) -> None:
        rec, state = self.rec, self.state
        state.run_clock.progress(rec.clock.now_us(), out_time_us)
        if out_time_us <= self.last_out_time_us:
            return
        self.last_progress_us = rec.clock.monotonic_us()
        self.last_out_time_us = out_time_us
        if out_time_us > 0 and not state.media_seen:
            state.media_seen = True
            state.progress_anchor_us = rec.clock.now_us() - out_time_us
            rec.set_recording()
            if not rec.is_event:
                rec.spawn_write(index.update_run_start, state.run_id, state.progress_anchor_us)

    def on_segment(self, line: SegmentLine) -> None:
        self.last_progress_us = self.rec.clock.monotonic_us()
        self.state.queue.put_nowait((line, self.rec.clock.now_us()))
        if self._check is None or self._check.done():
            self._check = asyncio.create_task(self.check_volume())

    def on_log(self, line: str) -> None:
        """A read timeout: ffmpeg would go on, but would stamp the first frame after the stall
        with the time of the last one before it; end the run cleanly (the segment being written
        closes with the frames captured before the stall)."""
        proc = self.proc
        if READ_TIMEOUT_MARKER in line and self.state.media_seen and proc is not None \
                and not proc.stopping:
            self.state.silent = True
            log.warning("%s: the camera sent nothing for %gs; stopping ffmpeg (pid %s) before "
                        "it resumes with wrong timestamps", self.rec.name,
                        self.rec.options.socket_timeout_s, proc.pid)
            proc.terminate()

    # -- checks ------------------------------------------------------------------------------

    async def check_volume(self) -> None:
        """At each segment boundary and each watchdog tick: stop ffmpeg before the volume fills,
        or as soon as the volume is no longer usable (marker gone, unreadable, unresponsive)."""
        state, proc = self.state, self.proc
        if state.disk_full is not None or state.volume_problem is not None or proc is None \
                or proc.stopping:
            return
        health = await self.rec.volumes.health(state.volume)
        if proc.stopping:
            return
        if not health.ok:
            state.volume_problem = health.message
            log.warning("%s: %s; stopping ffmpeg (pid %s)", self.rec.name, health.message,
                        proc.pid)
            proc.terminate()
            return
        problem = space_problem(state.volume, health.free_bytes or 0, health.total_bytes or 0)
        if problem is not None:
            state.disk_full = problem
            log.warning("%s: %s; stopping ffmpeg (pid %s) so it starts no new segment",
                        self.rec.name, problem, proc.pid)
            proc.terminate()

    async def watch(self, wait_task: asyncio.Task[int]) -> None:
        """Tick every second until ffmpeg exits (see the module docstring)."""
        rec, state = self.rec, self.state
        proc = self.proc
        assert proc is not None
        clock, options = rec.clock, rec.options
        terminated_us: int | None = None
        while not wait_task.done():
            await asyncio.wait({wait_task}, timeout=WATCH_TICK_S)
            if wait_task.done():
                continue
            await self.check_volume()
            stopped_by_us = (state.disk_full is not None or state.volume_problem is not None
                             or state.silent)
            if stopped_by_us and not rec.stopping:
                terminated_us = terminated_us or clock.monotonic_us()
                if clock.monotonic_us() - terminated_us > options.stop_timeout_s * 1e6:
                    proc.kill()
            if proc.stopping:
                continue
            idle_s = (clock.monotonic_us() - self.last_progress_us) / 1e6
            limit_s = options.stall_timeout_s if state.media_seen else options.startup_timeout_s
            if idle_s > limit_s:
                self.stalled = True
                log.warning("%s: no progress for %.1fs; killing ffmpeg (pid %s)", rec.name,
                            idle_s, proc.pid)
                proc.kill()

    async def close(self) -> None:
        """Await a volume check still running (the run is over)."""
        if self._check is not None:
            await asyncio.gather(self._check, return_exceptions=True)
