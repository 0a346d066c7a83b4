"""One recorded stream: the task that keeps one camera stream on disk, run after run.

A :class:`StreamRecorder` loops: choose a volume, open a run (a ``Run`` row), start one ffmpeg
(:mod:`recorder.ffmpeg`), index every segment ffmpeg reports as finished (probe with PyAV, fsync
file and folder, then insert the ``Segment`` row: :mod:`recorder.run_index`), watch for stalls
(:mod:`recorder.run_watch`), and when ffmpeg exits index the segment it was writing (if playable),
close the run with its end reason, report status, back off, and start again — until told to stop.
Each run also feeds live view when the supervisor wired live feeds (:mod:`recorder.live_tap`).

Time derivation (:mod:`recorder.runclock`, described in docs/design/recording.md): a segment spans
the run's anchor (the wall-clock instant of media time 0) plus the media times ffmpeg lists for it —
the frames' own timestamps — checked against when its first keyframe arrived, never taken from when
ffmpeg got round to closing the file. A stall inside a run is a hole between its segments where the
frames stop and resume.

In mode ``event`` the same loop records into short ring-buffer segments that are *not* indexed
when they close: they wait in a ring (files on the same volume) until an event asks for them
(:meth:`StreamRecorder.trigger`, pre-roll) or until they are older than the pre-roll, then they are
deleted. Segments overlapping ``[event − pre_roll, event end + post_roll]`` are indexed with
``kind = "event"``; in continuous mode the same window only marks segments ``event``. The keep
windows and the ring live in :mod:`recorder.preroll`; :mod:`recorder.run_index` decides when to
consult them.

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
from collections.abc import Callable
from dataclasses import dataclass, field

from recorder import index
from recorder.ffmpeg import (
    AUDIO_UNSUPPORTED_MARKERS,
    AUTH_FAILED_MARKERS,
    CONNECT_FAILED_MARKERS,
    DISK_FULL_MARKERS,
    FfmpegProcess,
    RecordCommand,
)
from recorder.live_tap import LiveFeeds, LiveTap
from recorder.preroll import KeepWindows
from recorder.run_index import SegmentIndexer
from recorder.run_watch import FLUSH, RunState, RunWatch
from recorder.segments import (
    make_run_dir,
    run_dir,
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
        self.indexer = SegmentIndexer(self)
        """Turns the run's segment-list lines into rows (recorder/run_index.py)."""

    @property
    def is_event(self) -> bool:
        return self.config.mode == "event"

    @property
    def keeps(self) -> KeepWindows:
        """Event mode's keep windows (also marks events in continuous mode)."""
        return self._keeps

    def lease_lost(self) -> None:
        """Indexing was fenced off (another node records this camera now): end the run."""
        self._stop_reason = self._stop_reason or "lease_lost"
        self._stop_event.set()

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
        await self.indexer.index_leftovers(state)
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
        indexer = asyncio.create_task(self.indexer.consume(state), name=f"{self.name}-indexer")
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
            await self.indexer.verify_recent(state)
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

    def _recording_reason(self) -> str:
        reason = "event mode: buffering pre-roll, keeping events" if self.is_event else "recording"
        return f"{reason} ({self._volume_note})" if self._volume_note else reason
