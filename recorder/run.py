"""One recorded stream: the task that keeps one camera stream on disk, run after run.

A :class:`StreamRecorder` loops: open a run (a ``Run`` row), start one ffmpeg
(:mod:`recorder.ffmpeg`), index every segment ffmpeg reports as finished (probe with PyAV, fsync
file and folder, then insert the ``Segment`` row), watch for stalls, and when ffmpeg exits index the
segment it was writing (if playable), close the run with its end reason, report status, back off,
and start again — until told to stop. Time derivation is described in docs/design/recording.md:
the run's start is the wall clock at media time 0, estimated when the first segment closes; within
a run each segment starts at run start + ffmpeg's cumulative media time, chained to the previous
segment's end so segments never overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from recorder import index
from recorder.ffmpeg import (
    AUDIO_UNSUPPORTED_MARKERS,
    AUTH_FAILED_MARKERS,
    CONNECT_FAILED_MARKERS,
    FfmpegProcess,
    RecordCommand,
    SegmentLine,
)
from recorder.segments import (
    SEGMENT_RE,
    fsync_path,
    move_to_lost_and_found,
    pick_volume,
    probe_segment,
    run_dir,
    segment_pattern,
)
from recorder.status import Backoff, State, StreamStatus
from vms.clock import Clock
from vms.config import Settings, Volume
from vms.db.gateway import Gateway

log = logging.getLogger(__name__)

CHAIN_TOLERANCE_US = 50_000
"""A segment whose media start is this close to the previous end is chained to it exactly."""

REANCHOR_THRESHOLD_US = 5_000_000
"""If media time and the wall clock disagree by more than this, the media clock jumped: re-anchor."""


@dataclass(frozen=True)
class StreamConfig:
    """What to record; compared as a whole to decide whether a config change needs a restart."""

    camera_id: int
    camera_name: str
    kind: str
    url: str
    username: str
    password: str = field(repr=False)
    rtsp_transport: str = "tcp"


@dataclass(frozen=True)
class RecorderOptions:
    """Timing knobs (tests shorten them)."""

    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    auth_retry_s: float = 60.0
    stall_timeout_s: float = 15.0
    startup_timeout_s: float = 30.0
    stop_timeout_s: float = 5.0
    socket_timeout_s: float = 10.0


@dataclass
class _RunState:
    run_id: int
    volume: Volume
    folder: Path
    provisional_start_us: int
    anchor_us: int | None = None
    """Wall-clock instant of media time 0 (set when the first segment closes)."""
    last_end_us: int | None = None
    last_seq: int = -1
    segments: int = 0
    media_seen: bool = False
    progress_anchor_us: int | None = None
    """Early estimate of media time 0 from the first progress report (used until a segment closes)."""
    queue: asyncio.Queue[tuple[SegmentLine, int] | None] = field(default_factory=asyncio.Queue)


class StreamRecorder:
    """Records one stream until :meth:`stop`. ``run()`` is the task body."""

    def __init__(self, gateway: Gateway, settings: Settings, clock: Clock, config: StreamConfig,
                 options: RecorderOptions,
                 on_status: Callable[[StreamRecorder], None] | None = None) -> None:
        self.gw = gateway
        self.settings = settings
        self.clock = clock
        self.config = config
        self.options = options
        self.name = f"camera {config.camera_name!r} ({config.camera_id}/{config.kind})"
        self._on_status = on_status
        self._stop_reason: str | None = None
        self._stop_event = asyncio.Event()
        self._proc: FfmpegProcess | None = None
        self._transcode_audio = False
        self._backoff = Backoff(options.backoff_initial_s, options.backoff_max_s)
        self.status = StreamStatus("reconnecting", "starting", clock.now_us())
        self.runs_started = 0
        self._pending_writes: set[asyncio.Task[object]] = set()

    # -- control -----------------------------------------------------------------------------

    async def stop(self, reason: str = "shutdown") -> None:
        """Ask the task to finish its run with ``reason``; the caller awaits the task."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop_event.set()
        proc = self._proc
        if proc is not None and proc.proc is not None:
            await proc.stop(self.options.stop_timeout_s)

    def _spawn_write(self, fn: Callable[..., object], *args: object) -> None:
        task = asyncio.create_task(self.gw.write(fn, *args))
        self._pending_writes.add(task)
        task.add_done_callback(self._pending_writes.discard)

    def _set_status(self, state: State, reason: str) -> None:
        since = self.status.since_us if state == self.status.state else self.clock.now_us()
        new = StreamStatus(state, reason, since)
        if new != self.status:
            self.status = new
            if state in ("auth_failed", "error"):
                log.warning("%s: %s: %s", self.name, state, reason)
            else:
                log.info("%s: %s: %s", self.name, state, reason)
            if self._on_status is not None:
                self._on_status(self)

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while self._stop_reason is None:
                delay_s = await self._one_run()
                if self._stop_reason is not None:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_event.wait(), delay_s)
        finally:
            self._set_status("stopped", self._stop_reason or "stopped")

    async def _one_run(self) -> float:
        """One ffmpeg session; returns how long to wait before the next one."""
        cfg = self.config
        if self.status.state not in ("auth_failed", "error", "reconnecting"):
            self._set_status("reconnecting", "connecting to camera")
        elif self.status.reason == "starting":
            self._set_status("reconnecting", "connecting to camera")
        volume = pick_volume(self.settings)
        start_us = self.clock.now_us()
        run_id = await self.gw.write(index.insert_run, cfg.camera_id, cfg.kind, start_us)
        self.runs_started += 1
        folder = run_dir(volume, cfg.camera_id, cfg.kind, start_us)
        folder.mkdir(parents=True, exist_ok=True)
        state = _RunState(run_id, volume, folder, start_us)
        command = RecordCommand(
            ffmpeg_exe=self.settings.ffmpeg_exe(), url=cfg.url, username=cfg.username,
            password=cfg.password, output_pattern=segment_pattern(folder, run_id),
            segment_seconds=self.settings.recording.segment_seconds,
            rtsp_transport=cfg.rtsp_transport, transcode_audio=self._transcode_audio,
            socket_timeout_s=self.options.socket_timeout_s,
        )
        last_progress_us = [self.clock.monotonic_us(), -1]

        def on_progress(out_time_us: int) -> None:
            if out_time_us > last_progress_us[1]:
                last_progress_us[0] = self.clock.monotonic_us()
                last_progress_us[1] = out_time_us
                if out_time_us > 0 and not state.media_seen:
                    state.media_seen = True
                    state.progress_anchor_us = self.clock.now_us() - out_time_us
                    self._set_status("recording", "recording")
                    self._spawn_write(index.update_run_start, run_id, state.progress_anchor_us)

        def on_segment(line: SegmentLine) -> None:
            last_progress_us[0] = self.clock.monotonic_us()
            state.queue.put_nowait((line, self.clock.now_us()))

        proc = FfmpegProcess(command, name=self.name, on_segment=on_segment,
                             on_progress=on_progress)
        stalled = False
        try:
            if self._stop_reason is not None:
                await self.gw.write(index.delete_run_if_empty, run_id)
                return 0.0
            self._proc = proc
            await proc.start()
            indexer = asyncio.create_task(self._indexer(state), name=f"{self.name}-indexer")
            wait_task = asyncio.create_task(proc.wait())
            while not wait_task.done():
                await asyncio.wait({wait_task}, timeout=0.5)
                if wait_task.done() or proc.stopping:
                    continue
                idle_s = (self.clock.monotonic_us() - last_progress_us[0]) / 1e6
                limit_s = (self.options.stall_timeout_s if state.media_seen
                           else self.options.startup_timeout_s)
                if idle_s > limit_s:
                    stalled = True
                    log.warning("%s: no progress for %.1fs; killing ffmpeg (pid %s)", self.name,
                                idle_s, proc.pid)
                    proc.kill()
            rc = await wait_task
            state.queue.put_nowait(None)
            await indexer
            if self._pending_writes:
                await asyncio.gather(*self._pending_writes, return_exceptions=True)
        finally:
            self._proc = None
            if proc.proc is not None and proc.proc.returncode is None:  # cancelled: never leak
                proc.kill()
                await proc.wait()
        await self._index_leftovers(state)
        return await self._finish_run(state, proc, rc, stalled)

    async def _finish_run(self, state: _RunState, proc: FfmpegProcess, rc: int,
                          stalled: bool) -> float:
        tail = proc.tail_text()
        err = proc.last_error_line()
        recorded = state.segments > 0
        delay_s = 0.0
        if self._stop_reason is not None:
            reason = self._stop_reason
        elif stalled:
            reason = "stall"
            self._set_status("reconnecting", f"stalled: no data for {self.options.stall_timeout_s:g}s")
        elif any(m in tail for m in AUTH_FAILED_MARKERS):
            reason = "auth_failed"
            self._set_status(
                "auth_failed",
                f"wrong username or password for {self.config.url} "
                f"(RTSP answered: {err or '401 Unauthorized'})")
            delay_s = self.options.auth_retry_s
        elif any(m in tail for m in AUDIO_UNSUPPORTED_MARKERS) and not self._transcode_audio \
                and not recorded:
            self._transcode_audio = True
            reason = "error"
            log.info("%s: audio codec cannot be copied into MP4; transcoding audio to AAC",
                     self.name)
            self._backoff.reset()
        elif rc < 0 and not proc.killed_by_us and not recorded and not state.media_seen:
            reason = "error"
            self._set_status("error", f"ffmpeg died of signal {-rc}")
        elif rc < 0 and not proc.killed_by_us:
            reason = "error"
            self._set_status("reconnecting", f"ffmpeg died of signal {-rc}; restarting")
        elif recorded or state.media_seen or any(m in tail for m in CONNECT_FAILED_MARKERS):
            reason = "camera_lost"
            detail = err or "stream ended"
            self._set_status("reconnecting", f"camera lost: {detail}")
        else:
            reason = "error"
            self._set_status("error", f"ffmpeg exited with code {rc}: {err or 'no message'}")
        if recorded:
            self._backoff.reset()
        if delay_s == 0.0 and reason not in ("shutdown", "config_change") and \
                not (reason == "error" and self._transcode_audio and not recorded):
            delay_s = self._backoff.next_delay_s()
        end_us = state.last_end_us if state.last_end_us is not None else (
            state.anchor_us or state.provisional_start_us)
        deleted = False
        if not recorded:
            deleted = await self.gw.write(index.delete_run_if_empty, state.run_id)
        if not deleted:
            await self.gw.write(index.close_run, state.run_id, end_us, reason)
        log.info("%s: run %d ended (%s, ffmpeg rc %s, %d segments)%s", self.name, state.run_id,
                 reason, rc, state.segments, f"; retry in {delay_s:.1f}s" if delay_s else "")
        return delay_s

    # -- indexing ----------------------------------------------------------------------------

    async def _indexer(self, state: _RunState) -> None:
        while True:
            item = await state.queue.get()
            if item is None:
                return
            line, seen_us = item
            try:
                await self._index_line(state, line, seen_us)
            except Exception:  # an index failure must not stop the recording
                log.exception("%s: cannot index segment %s", self.name, line.name)

    async def _index_line(self, state: _RunState, line: SegmentLine, seen_us: int) -> None:
        path = state.folder / Path(line.name).name
        match = SEGMENT_RE.match(path.name)
        seq = int(match["seq"]) if match else state.last_seq + 1
        start_media_us = round(line.start_s * 1_000_000)
        end_media_us = round(line.end_s * 1_000_000)
        if state.anchor_us is None:
            state.anchor_us = seen_us - end_media_us
            await self.gw.write(index.update_run_start, state.run_id,
                                state.anchor_us + start_media_us)
        else:
            drift_us = (seen_us - end_media_us) - state.anchor_us
            if abs(drift_us) > REANCHOR_THRESHOLD_US:
                log.warning("%s: media time and wall clock disagree by %.1fs; re-anchoring",
                            self.name, drift_us / 1e6)
                state.anchor_us = seen_us - end_media_us
        start_us = state.anchor_us + start_media_us
        end_us = state.anchor_us + end_media_us
        if state.last_end_us is not None and start_us < state.last_end_us + CHAIN_TOLERANCE_US:
            start_us = state.last_end_us  # contiguous (or overlapping by rounding): chain exactly
        end_us = max(end_us, start_us)
        await self._index_file(state, path, seq, start_us, end_us, "ok")

    async def _index_file(self, state: _RunState, path: Path, seq: int, start_us: int,
                          end_us: int | None, seg_state: str) -> bool:
        probe = await asyncio.to_thread(probe_segment, path)
        if not probe.playable:
            await asyncio.to_thread(self._discard, state, path, probe.video_packets, probe.error)
            return False
        if end_us is None:
            end_us = start_us + probe.duration_us
        await asyncio.to_thread(fsync_path, path)
        row = index.SegmentRow(
            camera_id=self.config.camera_id, stream=self.config.kind, run_id=state.run_id,
            volume=state.volume.name, path=str(path.relative_to(state.volume.path)),
            start_us=start_us, end_us=end_us, size_bytes=probe.size_bytes,
            video_codec=probe.video_codec, audio_codec=probe.audio_codec, width=probe.width,
            height=probe.height, state=seg_state,
        )
        await self.gw.write(index.insert_segment, row)
        state.last_end_us = end_us
        state.last_seq = max(state.last_seq, seq)
        state.segments += 1
        if not state.media_seen:
            state.media_seen = True
            self._set_status("recording", "recording")
        return True

    def _discard(self, state: _RunState, path: Path, packets: int, error: str) -> None:
        rel = str(path.relative_to(state.volume.path))
        if not path.exists():
            return
        if packets == 0 and path.stat().st_size < 64 * 1024:
            log.debug("%s: removing empty segment file %s (%s)", self.name, rel, error)
            path.unlink(missing_ok=True)
            return
        dest = move_to_lost_and_found(state.volume, rel)
        log.warning("%s: segment %s is not playable (%s); moved to %s", self.name, rel, error, dest)

    async def _index_leftovers(self, state: _RunState) -> None:
        """Index the file ffmpeg was writing when it died (no list line came for it)."""
        prefix = f"r{state.run_id}-"
        if not state.folder.is_dir():
            return
        leftovers = sorted(p for p in state.folder.iterdir()
                           if p.name.startswith(prefix) and SEGMENT_RE.match(p.name))
        for path in leftovers:
            match = SEGMENT_RE.match(path.name)
            assert match is not None
            seq = int(match["seq"])
            if seq <= state.last_seq:
                continue
            start_us = state.last_end_us if state.last_end_us is not None else (
                state.anchor_us or state.progress_anchor_us or state.provisional_start_us)
            if await self._index_file(state, path, seq, start_us, None, "partial"):
                log.info("%s: indexed partial segment %s", self.name, path.name)
