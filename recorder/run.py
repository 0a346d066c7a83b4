"""One recorded stream: the task that keeps one camera stream on disk, run after run.

A :class:`StreamRecorder` loops: open a run (a ``Run`` row), start one ffmpeg
(:mod:`recorder.ffmpeg`), index every segment ffmpeg reports as finished (probe with PyAV, fsync
file and folder, then insert the ``Segment`` row), watch for stalls, and when ffmpeg exits index the
segment it was writing (if playable), close the run with its end reason, report status, back off,
and start again — until told to stop. Time derivation (:mod:`recorder.runclock`, described in
docs/design/recording.md): a segment spans the run's anchor (the wall-clock instant of media time 0)
plus the media times ffmpeg lists for it — the frames' own timestamps — checked against when its
first keyframe arrived, never taken from when ffmpeg got round to closing the file. A stall inside a
run is a hole between its segments where the frames stop and resume.

In mode ``event`` the same loop records into short ring-buffer segments that are *not* indexed
when they close: they wait in a ring (files on the same volume) until an event asks for them
(:meth:`StreamRecorder.trigger`, pre-roll) or until they are older than the pre-roll, then they are
deleted. Segments overlapping ``[event − pre_roll, event end + post_roll]`` are indexed with
``kind = "event"``; in continuous mode the same window only marks segments ``event``. The keep
windows and the ring live in :mod:`recorder.preroll`; this module decides when to consult them.

Full disk: a run does not start while its volume has less than ``min_free_bytes`` free (after a
full disk, less than that plus ``disk_resume_margin_bytes``); a running ffmpeg is stopped cleanly
when the free space drops below it, and one that fails with ENOSPC ends its run ``disk_full``,
its last listed segments re-probed so no row claims more than the file holds. The stream's status
is then ``error`` naming the volume, and it retries with backoff until space is free.

Volumes: a run writes to the camera's volume (``StreamConfig.volume``, else the first) when its
health (:mod:`recorder.volumes`: marker ours, readable, answering) is ``ok``, else to another
healthy volume (the status says which and why), else it does not start (``error`` naming the
volume and the problem). A volume that goes bad mid-run ends the run ``volume_unavailable``. Every
file-system call of a stream runs on its volume's threads (:meth:`VolumeMonitor.io`), never on
the event loop; the per-run callbacks and the watchdog live in :mod:`recorder.run_watch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from recorder import index
from recorder.ffmpeg import (
    AUDIO_UNSUPPORTED_MARKERS,
    AUTH_FAILED_MARKERS,
    CONNECT_FAILED_MARKERS,
    DISK_FULL_MARKERS,
    FfmpegProcess,
    RecordCommand,
    SegmentLine,
)
from recorder.live_tap import LiveFeeds, LiveTap
from recorder.preroll import KeepWindows, PendingSegment, ring_horizon_us
from recorder.run_watch import FLUSH, RunState, RunWatch
from recorder.segments import (
    SEGMENT_RE,
    discard_unplayable,
    fsync_path,
    make_run_dir,
    move_to_lost_and_found,
    probe_segment,
    run_dir,
    run_files,
    segment_pattern,
    space_problem,
)
from recorder.stats import StreamStats
from recorder.status import State, StreamStatus
from recorder.volumes import VolumeMonitor
from vms.backoff import Backoff
from vms.clock import Clock
from vms.config import Settings, Volume
from vms.db.gateway import Gateway
from vms.logs import bind_log_context

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class StreamConfig:
    """What to record; compared as a whole to decide whether a config change needs a restart."""

    camera_id: int
    camera_uuid: str
    camera_name: str
    kind: str
    url: str
    username: str
    password: str = field(repr=False)
    rtsp_transport: str = "tcp"
    mode: str = "continuous"
    """``continuous`` (index every segment) or ``event`` (ring buffer, index what events keep)."""
    pre_roll_s: float = 5.0
    post_roll_s: float = 10.0
    volume: str | None = None
    """The camera's storage volume (``Camera.volume``); None: the first configured one."""
    fence: index.Fence | None = None
    """In a cluster: the lease (node, epoch) this stream records under; runs and segments are
    indexed only while it is current (recorder/index.py)."""


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
    schedule_tick_s: float = 1.0
    """How often the supervisor re-evaluates scheduled cameras' windows."""
    config_poll_s: float = 5.0
    """How often the supervisor looks for camera rows edited without telling it (``updated_us``)."""
    event_segment_seconds: int = 2
    """Segment length of the event-mode ring buffer (shorter = finer pre/post-roll, more files)."""
    ring_margin_s: float = 4.0
    """Ring segments are kept this much longer than the pre-roll (late events, clock skew)."""
    event_max_s: float = 600.0
    """An event that started (state true) and never ended stops keeping after this long."""
    disk_resume_margin_bytes: int = 64 * 1024 * 1024
    """After its volume filled up, a stream starts again only once this much more than the
    volume's ``min_free_bytes`` is free (a few freed KiB must not start a fail-and-retry loop)."""
    volume_probe_timeout_s: float = 5.0
    """A volume whose health check (marker, free space) takes longer is ``unresponsive``."""


TRUNCATED_TOLERANCE_US = 100_000
"""A re-probed segment shorter than its row by more than this is truncated to what it holds."""
RECENT_SEGMENTS = 3
"""Segments of a run re-probed in full when it ends on a full disk."""


_RunState = RunState
_FLUSH = FLUSH


class StreamRecorder:
    """Records one stream until :meth:`stop`. ``run()`` is the task body."""

    def __init__(self, gateway: Gateway, settings: Settings, clock: Clock, config: StreamConfig,
                 options: RecorderOptions, volumes: VolumeMonitor,
                 on_status: Callable[[StreamRecorder], None] | None = None,
                 stats: StreamStats | None = None) -> None:
        self.gw = gateway
        self.volumes = volumes
        self.stats = stats or StreamStats()
        """Counters for /metrics (kept by the supervisor across restarts of this stream)."""
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
        self._keeps = KeepWindows(clock, config.pre_roll_s, config.post_roll_s,
                                  options.event_max_s)
        self._state: _RunState | None = None
        self._disk_full = False
        """The last run ended (or could not start) on a full volume: resume needs the margin."""
        self.disk_refusals = 0
        """Runs not started because the volume was full (each one after a backoff delay)."""
        self.on_disk_full: Callable[[Volume, str], None] | None = None
        """Called when a run ends or is refused for lack of space (retention's hook, later)."""
        self.volume_refusals = 0
        """Runs not started because no volume was healthy (each one after a backoff delay)."""
        self._volume_note = ""
        """Why this stream records on another volume than its own (said in its status)."""
        self.live_feeds: LiveFeeds | None = None
        """Set by the supervisor: each run also feeds live view (recorder/live_tap.py)."""
        self._tap: LiveTap | None = None

    @property
    def is_event(self) -> bool:
        return self.config.mode == "event"

    @property
    def stopping(self) -> bool:
        """:meth:`stop` was called: the run ends with the reason given there."""
        return self._stop_reason is not None

    # -- events ------------------------------------------------------------------------------

    def trigger(self, event_type: str, state: bool | None, at_us: int) -> None:
        """An event for this camera: keep ``[at − pre_roll, end + post_roll]``.

        ``state`` true opens an event that lasts until a false of the same type arrives (capped at
        ``event_max_s``); ``None`` is a momentary event; false ends one.
        """
        self._keeps.add_event(event_type, state, at_us)
        log.info("%s: event %s (%s) at %d: keeping recording", self.name, event_type, state,
                 at_us)
        if self.is_event and self._state is not None:
            self._state.queue.put_nowait(_FLUSH)
        elif not self.is_event:
            self.spawn_write(index.mark_event_segments, self.config.camera_id, self.config.kind,
                              *self._keeps.window(at_us))

    # -- control -----------------------------------------------------------------------------

    async def stop(self, reason: str = "shutdown") -> None:
        """Ask the task to finish its run with ``reason``; the caller awaits the task."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop_event.set()
        proc = self._proc
        if proc is not None and proc.proc is not None:
            await proc.stop(self.options.stop_timeout_s)

    def spawn_write(self, fn: Callable[..., object], *args: object) -> None:
        task = asyncio.create_task(self.gw.write(fn, *args))
        self._pending_writes.add(task)
        task.add_done_callback(self._pending_writes.discard)

    def set_recording(self) -> None:
        """The first media of a run arrived."""
        self._set_status("recording", self._recording_reason())

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
        bind_log_context(camera_id=self.config.camera_id, stream=self.config.kind)
        try:
            while self._stop_reason is None:
                delay_s = await self._one_run()
                bind_log_context(run_id=None)  # lines between runs name no run
                if self._stop_reason is not None:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_event.wait(), delay_s)
        finally:
            self._set_status("stopped", self._stop_reason or "stopped")

    async def _one_run(self) -> float:
        """One ffmpeg session; returns how long to wait before the next one."""
        volume = await self._choose_volume()
        if volume is None:
            return self._backoff.next_delay_s()
        state = await self._open_run(volume)
        if state is None:
            return self._backoff.next_delay_s()
        watch = RunWatch(self, state)
        key = (self.config.camera_id, self.config.kind)
        tap = self._tap = None if self.live_feeds is None else LiveTap(self.live_feeds, key, self.name)
        proc = FfmpegProcess(self._command(state, tap.open() if tap else None), name=self.name,
                             on_segment=watch.on_segment, on_progress=watch.on_progress,
                             on_log=watch.on_log)
        watch.proc = proc
        try:
            if self._stop_reason is not None:
                await self.gw.write(index.delete_run_if_empty, state.run_id)
                return 0.0
            rc = await self._record(state, watch, proc)
        finally:
            self._proc = None
            self._state = None
            await watch.close()
            if proc.proc is not None and proc.proc.returncode is None:  # cancelled: never leak
                proc.kill()
                await proc.wait()
            if tap is not None:
                await tap.close()
        await self._index_leftovers(state)
        await self.volumes.io(state.volume, state.ring.drop_oldest, len(state.ring))
        return await self._finish_run(state, proc, rc, watch.stalled)

    async def _choose_volume(self) -> Volume | None:
        """The volume this run writes to: the camera's own (or the first) when it is healthy;
        another healthy one when it is not (the status says so); None when there is none, or
        when the volume is full (status ``error``, the disk-full hook told)."""
        assigned = self.volumes.volume(self.config.volume)
        note = ""
        if self.config.volume is not None and assigned.name != self.config.volume:
            note = (f"volume {self.config.volume!r} is not configured; recording on volume "
                    f"{assigned.name!r}")
        health = await self.volumes.health(assigned)
        volume = assigned
        if not health.ok:
            other = await self._healthy_other(assigned)
            if other is None:
                self.volume_refusals += 1
                self._volume_note = ""
                self._set_status("error", f"{health.message}; not recording")
                return None
            volume = other
            note = f"{health.message}; recording on volume {volume.name!r} instead"
            health = await self.volumes.health(volume)
        margin = self.options.disk_resume_margin_bytes if self._disk_full else 0
        problem = space_problem(volume, health.free_bytes or 0, health.total_bytes or 0, margin)
        if problem is not None:
            self.disk_refusals += 1
            self._disk_full = True
            self._set_status("error", f"{problem}; not recording")
            self._notify_disk_full(volume, problem)
            return None
        self._volume_note = note
        if self._disk_full:
            self._disk_full = False
            self._set_status("reconnecting", f"space is free again on volume {volume.name!r}; "
                                             "connecting to camera")
        elif note:
            self._set_status("reconnecting", f"{note}; connecting to camera")
        elif self.status.state not in ("auth_failed", "error", "reconnecting") or \
                self.status.reason == "starting":
            self._set_status("reconnecting", "connecting to camera")
        return volume

    async def _healthy_other(self, assigned: Volume) -> Volume | None:
        """The healthy volume other than ``assigned`` with the most free space above its floor."""
        best: tuple[int, Volume] | None = None
        for vol in self.settings.volumes:
            if vol.name == assigned.name:
                continue
            health = await self.volumes.health(vol)
            free = health.free_bytes or 0
            if (health.ok and space_problem(vol, free, health.total_bytes or 0) is None
                    and (best is None or free > best[0])):
                best = (free, vol)
        return best[1] if best else None

    async def _open_run(self, volume: Volume) -> _RunState | None:
        """Insert the run row and make its folder (below the volume's root, off the loop)."""
        cfg = self.config
        start_us = self.clock.now_us()
        folder = run_dir(volume, cfg.camera_uuid, cfg.kind, start_us)
        try:
            await self.volumes.io(volume, make_run_dir, volume, folder)
        except OSError as exc:
            self._set_status("error", f"volume {volume.name!r} ({volume.path}): cannot create "
                                      f"{folder.relative_to(volume.path)}: "
                                      f"{exc.strerror or exc}; not recording")
            return None
        try:
            run_id, run_uuid = await self.gw.write(index.insert_run, cfg.camera_id, cfg.kind,
                                                   start_us, cfg.mode, cfg.fence)
        except index.LeaseLost as exc:
            log.warning("%s: not recording: %s", self.name, exc)
            self._set_status("stopped", "recorded by another node")
            return None
        self.runs_started += 1
        self.stats.runs_started += 1
        bind_log_context(run_id=run_id)
        state = _RunState(run_id, run_uuid, volume, folder, start_us)
        self._state = state
        return state

    def _command(self, state: _RunState, live_fd: int | None = None) -> RecordCommand:
        cfg = self.config
        return RecordCommand(
            ffmpeg_exe=self.settings.ffmpeg_exe(), url=cfg.url, username=cfg.username,
            password=cfg.password, output_pattern=segment_pattern(state.folder, state.run_uuid),
            segment_seconds=self._segment_seconds(),
            rtsp_transport=cfg.rtsp_transport, transcode_audio=self._transcode_audio,
            socket_timeout_s=self.options.socket_timeout_s, live_fd=live_fd,
        )

    async def _record(self, state: _RunState, watch: RunWatch, proc: FfmpegProcess) -> int:
        """Start ffmpeg, index what it lists and watch it until it exits; its exit code."""
        self._proc = proc
        await proc.start()
        if self._tap is not None:
            self._tap.started()
        if self._stop_reason is not None:  # stop() came while ffmpeg was starting
            proc.terminate()
        indexer = asyncio.create_task(self._indexer(state), name=f"{self.name}-indexer")
        wait_task = asyncio.create_task(proc.wait())
        await watch.watch(wait_task)
        rc = await wait_task
        state.queue.put_nowait(None)
        await indexer
        if self._pending_writes:
            await asyncio.gather(*self._pending_writes, return_exceptions=True)
        return rc

    def _notify_disk_full(self, volume: Volume, problem: str) -> None:
        """Tell the owner. Retention (a later issue) hooks in here to delete the volume's oldest
        footage; the next attempt (after the backoff delay) then finds the space. Never raises."""
        if self.on_disk_full is None:
            return
        try:
            self.on_disk_full(volume, problem)
        except Exception:  # a hook's bug must not stop the recording loop
            log.exception("%s: disk-full hook failed", self.name)

    async def _verify_recent(self, state: _RunState) -> None:
        """After a full disk, re-probe the last indexed segments in full: ffmpeg lists the segment
        it failed to finish, so its row may claim more than the file holds."""
        for seg_id, path, start_us, end_us in list(state.recent):
            probe = await self.volumes.io(state.volume, probe_segment, path)
            if not probe.playable:
                log.warning("%s: segment %s is not playable after the disk filled (%s); "
                            "removing its row", self.name, path.name, probe.error)
                await self.gw.write(index.delete_segment, seg_id)
                await self.volumes.io(state.volume, discard_unplayable, self.name, state.volume,
                                      path, probe.video_packets, probe.error)
                state.segments -= 1
                state.recent.remove((seg_id, path, start_us, end_us))
            elif start_us + probe.duration_us < end_us - TRUNCATED_TOLERANCE_US:
                new_end = start_us + probe.duration_us
                log.warning("%s: segment %s holds %.2fs, not %.2fs (truncated by the full disk); "
                            "indexed as partial", self.name, path.name, probe.duration_us / 1e6,
                            (end_us - start_us) / 1e6)
                await self.gw.write(index.truncate_segment, seg_id, start_us, new_end,
                                    probe.size_bytes)
                idx = state.recent.index((seg_id, path, start_us, end_us))
                state.recent[idx] = (seg_id, path, start_us, new_end)
        if state.recent:
            state.last_end_us = max(r[3] for r in state.recent)

    def _segment_seconds(self) -> int:
        seconds = self.settings.recording.segment_seconds
        if self.is_event:
            return max(1, min(seconds, self.options.event_segment_seconds))
        return seconds

    async def _finish_run(self, state: _RunState, proc: FfmpegProcess, rc: int,
                          stalled: bool) -> float:
        tail = proc.tail_text()
        err = proc.last_error_line()
        delay_s = 0.0
        disk_full = state.disk_full is not None or any(m in tail for m in DISK_FULL_MARKERS)
        if disk_full:
            await self._verify_recent(state)
        recorded = state.segments > 0
        if self._stop_reason is not None:
            reason = self._stop_reason
        elif state.volume_problem is not None:
            reason = "volume_unavailable"
            self._set_status("error", f"{state.volume_problem}; recording stopped")
        elif disk_full:
            reason = "disk_full"
            self._disk_full = True
            problem = state.disk_full or (
                f"volume {state.volume.name!r} ({state.volume.path}) is full "
                f"(ffmpeg: {err or 'No space left on device'})")
            self._set_status("error", f"{problem}; recording stopped")
            self._notify_disk_full(state.volume, problem)
        elif stalled or state.silent:
            reason = "stall"
            silence_s = self.options.socket_timeout_s if state.silent else \
                self.options.stall_timeout_s
            self._set_status("reconnecting", f"stalled: no data for {silence_s:g}s")
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
        if recorded or state.closed:
            self._backoff.reset()
        if delay_s == 0.0 and reason not in ("shutdown", "config_change") and \
                not (reason == "error" and self._transcode_audio and not recorded):
            delay_s = self._backoff.next_delay_s()
        end_us = state.last_end_us if state.last_end_us is not None else (
            state.run_clock.anchor_us or state.provisional_start_us)
        deleted = False
        if not recorded:
            deleted = await self.gw.write(index.delete_run_if_empty, state.run_id)
        if not deleted:
            await self.gw.write(index.close_run, state.run_id, end_us, reason)
        self.stats.run_ended(reason)
        log.info("%s: run %d ended (%s, ffmpeg rc %s, %d segments)%s", self.name, state.run_id,
                 reason, rc, state.segments, f"; retry in {delay_s:.1f}s" if delay_s else "")
        return delay_s

    # -- indexing ----------------------------------------------------------------------------

    async def _indexer(self, state: _RunState) -> None:
        while True:
            item = await state.queue.get()
            if item is None:
                return
            try:
                if item == _FLUSH:
                    await self._flush_ring(state)
                    continue
                assert not isinstance(item, str)
                line, seen_us = item
                await self._index_line(state, line, seen_us)
            except Exception:  # an index failure must not stop the recording
                log.exception("%s: cannot index segment %s", self.name, item)

    async def _index_line(self, state: _RunState, line: SegmentLine, seen_us: int) -> None:
        path = state.folder / Path(line.name).name
        match = SEGMENT_RE.match(path.name)
        seq = int(match["seq"]) if match else state.last_seq + 1
        first = state.run_clock.anchor_us is None
        placed = state.run_clock.place(seen_us, round(line.start_s * 1_000_000),
                                   round(line.end_s * 1_000_000))
        start_us, end_us = placed.start_us, placed.end_us
        if placed.shift_us > 0:
            log.warning("%s: media time fell %.1fs behind the wall clock (the camera's clock "
                        "paused or went back); re-anchored from segment %s", self.name,
                        placed.shift_us / 1e6, path.name)
        elif placed.shift_us < 0:
            log.warning("%s: media time jumped %.1fs ahead of the wall clock; re-anchored from "
                        "segment %s", self.name, -placed.shift_us / 1e6, path.name)
        if placed.late:
            end_us = await self._frames_end(state, path, start_us, end_us)
            state.run_clock.truncate_last(end_us)
            log.info("%s: segment %s closed %.1fs after its last frame (the camera stopped "
                     "sending)", self.name, path.name, (seen_us - end_us) / 1e6)
        if first and not self.is_event:
            await self.gw.write(index.update_run_start, state.run_id, start_us)
        state.closed += 1
        if self.is_event and not self._keeps.keeping(start_us, end_us):
            state.ring.add(PendingSegment(path, seq, start_us, end_us))
            state.last_seq = max(state.last_seq, seq)
            if not state.media_seen:
                state.media_seen = True
                self.set_recording()
            await self._prune_ring(state, end_us)
            return
        await self._index_file(state, path, seq, start_us, end_us, "ok")

    async def _frames_end(self, state: _RunState, path: Path, start_us: int, end_us: int) -> int:
        """The end of a segment closed late (a stall), checked against the frames in its file: a
        list line's end may reach up to the keyframe that closed it, after the stall."""
        probe = await self.volumes.io(state.volume, probe_segment, path)
        if probe.playable and start_us + probe.duration_us < end_us - TRUNCATED_TOLERANCE_US:
            return start_us + probe.duration_us
        return end_us

    async def _flush_ring(self, state: _RunState) -> None:
        """Index the ring segments an event now keeps (pre-roll), oldest first."""
        for p in state.ring.take_kept(self._keeps):
            await self._index_file(state, p.path, p.seq, p.start_us, p.end_us, "ok")

    async def _prune_ring(self, state: _RunState, latest_end_us: int) -> None:
        """Delete the ring files too old for any pre-roll, and the keep windows ended before them."""
        horizon_us = ring_horizon_us(latest_end_us, self.config.pre_roll_s,
                                     self.options.ring_margin_s)
        old = state.ring.count_ending_before(horizon_us)
        if old:
            await self.volumes.io(state.volume, state.ring.drop_oldest, old)
        self._keeps.prune(horizon_us)

    async def _index_file(self, state: _RunState, path: Path, seq: int, start_us: int,
                          end_us: int | None, seg_state: str) -> bool:
        probe = await self.volumes.io(state.volume, partial(probe_segment, quick=end_us is not None),
                                     path)
        if not probe.playable:
            await self.volumes.io(state.volume, discard_unplayable, self.name, state.volume,
                                  path, probe.video_packets, probe.error)
            return False
        if end_us is None:
            end_us = start_us + probe.duration_us
        await self.volumes.io(state.volume, fsync_path, path)
        row = index.SegmentRow(
            camera_id=self.config.camera_id, stream=self.config.kind, run_id=state.run_id,
            volume=state.volume.name, path=str(path.relative_to(state.volume.path)),
            start_us=start_us, end_us=end_us, size_bytes=probe.size_bytes,
            video_codec=probe.video_codec, audio_codec=probe.audio_codec, width=probe.width,
            height=probe.height, state=seg_state,
            kind="event" if self.is_event or self._keeps.keeping(start_us, end_us) else "continuous",
        )
        if self.is_event and state.segments == 0:
            await self.gw.write(index.update_run_start, state.run_id, start_us)
        insert_start = time.perf_counter()
        try:
            seg_id = await self.gw.write(index.insert_segment, row, self.config.fence)
        except index.LeaseLost as exc:  # fenced: another node records this camera now
            log.warning("%s: segment %s not indexed: %s; set aside in lost+found", self.name,
                        path.name, exc)
            await self.volumes.io(state.volume, move_to_lost_and_found, state.volume, row.path)
            self._stop_reason = self._stop_reason or "lease_lost"
            self._stop_event.set()  # the run ends: the supervisor's lease loop stops ffmpeg
            return False
        self.stats.segment_indexed(row.size_bytes, time.perf_counter() - insert_start,
                                   self.clock.monotonic_us())
        state.recent = [*state.recent[1 - RECENT_SEGMENTS:], (seg_id, path, start_us, end_us)]
        state.last_end_us = end_us
        state.last_seq = max(state.last_seq, seq)
        state.segments += 1
        if not state.media_seen:
            state.media_seen = True
            self.set_recording()
        if not self.is_event:
            # segments come in time order: a window that ended before this one began can no
            # longer mark one (without this, continuous mode kept every event's window forever)
            self._keeps.prune(start_us)
        return True

    def _recording_reason(self) -> str:
        reason = "event mode: buffering pre-roll, keeping events" if self.is_event else "recording"
        return f"{reason} ({self._volume_note})" if self._volume_note else reason

    async def _index_leftovers(self, state: _RunState) -> None:
        """Index the file ffmpeg was writing when it died (no list line came for it)."""
        leftovers = await self.volumes.io(state.volume, run_files, state.folder, state.run_uuid)
        for path in leftovers:
            match = SEGMENT_RE.match(path.name)
            assert match is not None
            seq = int(match["seq"])
            if seq <= state.last_seq:
                continue
            start_us = state.run_clock.next_start_us(
                state.progress_anchor_us or state.provisional_start_us)
            if self.is_event and not self._keeps.keeping(start_us, self.clock.now_us()):
                await self.volumes.io(state.volume, path.unlink, True)
                continue
            if await self._index_file(state, path, seq, start_us, None, "partial"):
                log.info("%s: indexed partial segment %s", self.name, path.name)

