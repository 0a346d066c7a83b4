"""The recorder supervisor: one recording task per recorded camera stream, started and stopped here.

:class:`RecorderSupervisor` is what the composition root holds (in an aiohttp ``cleanup_ctx``).
``start()`` takes the server lock (``<data_dir>/server.lock``, :mod:`recorder.lock`), reconciles
the index with the disk (:mod:`recorder.reconcile`), then starts a
:class:`recorder.run.StreamRecorder` task for each stream marked ``record`` of every enabled camera
that should record now: mode ``continuous``; ``scheduled`` inside one of its windows (site time
zone, re-evaluated every ``schedule_tick_s`` with the injected clock; end reason ``schedule``);
``event`` as a ring buffer that events from the core bus (:class:`vms.bus.CameraEvent`) turn into
kept segments. ``camera_changed()`` brings one camera's tasks in line with the database (config
change → restart with end reason ``config_change``; also on :class:`vms.bus.CameraChanged`),
``stop()`` stops them all (end reason ``shutdown``), awaits every task and releases the lock.
Camera status rows are written from here. It owns the :class:`recorder.volumes.VolumeMonitor`
(volume health, per-volume threads) its streams share; a stream records on its camera's volume
(``Camera.volume``) or, when that one is not healthy, on another. A stream whose volume is full
reports it through :attr:`RecorderSupervisor.volume_full_hooks` (retention registers there:
recorder/retention_service.py). In a cluster (``leases``: vms/cluster.py) it records only the
cameras whose lease this node holds, each under its lease's epoch (a :class:`recorder.index.Fence`),
and neither records nor writes the status of any other camera; :meth:`leases_taken`,
:meth:`leases_lost` and :meth:`hand_over` follow the lease loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from recorder import index
from recorder.index import Fence
from recorder.live_tap import LiveFeeds
from recorder.lock import ServerLock, lock_path
from recorder.reconcile import ReconcileReport, reconcile
from recorder.run import RecorderOptions, StreamConfig, StreamRecorder
from recorder.schedule import ScheduleError, Window, in_window, parse_schedule
from recorder.stats import StreamStats
from recorder.status import StreamStatus, worst
from recorder.volumes import (
    VolumeError,
    VolumeHealth,
    VolumeMonitor,
    database_uuid,
    prepare_default_volume,
)
from vms.bus import CameraChanged, CameraEvent, EventBus, StatusChanged, Subscription
from vms.clock import Clock
from vms.config import Settings, Volume
from vms.db.gateway import Gateway
from vms.db.models import EVENT_TYPES_RECORDED, Camera, CameraStream, Site
from vms.secrets import SecretBox, SecretError

log = logging.getLogger(__name__)

_DEFAULT_RECORDED = frozenset(EVENT_TYPES_RECORDED.split(","))
HANDOVER_WAIT_S = 60.0
"""How long a hand-over waits for a stopped recorder to index its last segments."""


class LeaseView(Protocol):
    """What the supervisor needs of a cluster node (vms.cluster.ClusterNode)."""

    @property
    def name(self) -> str: ...

    def epoch_of(self, camera_id: int) -> int | None: ...

    def releasing(self, camera_id: int) -> bool: ...


@dataclass
class _Task:
    recorder: StreamRecorder
    task: asyncio.Task[None]


class RecorderSupervisor:
    """Owns every recording task of this server."""

    def __init__(self, gateway: Gateway, settings: Settings, clock: Clock, secrets: SecretBox,
                 options: RecorderOptions | None = None, bus: EventBus | None = None,
                 live_feeds: LiveFeeds | None = None, leases: LeaseView | None = None) -> None:
        self.gw = gateway
        self.live_feeds = live_feeds
        """Where each recording run's live output goes (recorder/live_tap.py); None: none."""
        self.leases = leases
        self._elsewhere: set[int] = set()
        """Cameras another node records (a cluster): no status of ours is written for them."""
        self.settings = settings
        self.clock = clock
        self.secrets = secrets
        self.options = options or RecorderOptions()
        self._tasks: dict[tuple[int, str], _Task] = {}
        self._camera_status: dict[int, StreamStatus] = {}
        self.stats: dict[tuple[int, str], StreamStats] = {}
        """Counters per (camera id, stream) for /metrics: kept across restarts of a stream's
        task, dropped when its camera is removed (deleted or archived)."""
        self._status_writes: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._started = False
        self.last_reconcile: ReconcileReport | None = None
        self.bus = bus
        self._server_lock = ServerLock(lock_path(settings.data_dir))
        self._schedules: dict[int, tuple[list[Window], str]] = {}
        """Scheduled cameras: windows and site time zone."""
        self._in_window: dict[int, bool] = {}
        self._modes: dict[int, str] = {}
        self._recorded_types: dict[int, frozenset[str]] = {}  # camera → types that trigger
        self._background: list[asyncio.Task[None]] = []
        self._changes: set[asyncio.Task[None]] = set()
        self._updated_us: dict[int, int] | None = None
        self.volumes: VolumeMonitor | None = None
        """Health and threads of the storage volumes (made by :meth:`start`, which also creates
        and marks the default volume when none is configured)."""
        self.volume_full_hooks: list[Callable[[Volume, str], None]] = []
        """Called (volume, reason) when a stream finds its volume full (on the event loop: a hook
        must not block). Retention's hook wakes the volume's space watcher, which deletes its
        oldest unprotected footage; the stream retries after its backoff delay and records again
        once the floor + the resume margin is free."""

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Take the server lock, reconcile the index with the disk, then record every camera that
        should be. Raises :class:`recorder.lock.LockHeld` when another server uses the data dir."""
        self._server_lock.acquire()
        try:
            db_uuid = await self.gw.write(database_uuid)
            try:
                await asyncio.to_thread(prepare_default_volume, self.settings, db_uuid,
                                        self.clock.now_us())
            except VolumeError as exc:  # its streams say so in their status
                log.error("recorder: %s", exc)
            self.volumes = VolumeMonitor(self.settings, db_uuid, self.clock,
                                         probe_timeout_s=self.options.volume_probe_timeout_s)
            self.last_reconcile = await asyncio.to_thread(
                reconcile, self.gw, self.settings, self.clock, True)
        except BaseException:
            self._server_lock.release()
            raise
        if self.last_reconcile.problems:
            log.warning("recorder: start-up reconciliation: %s", self.last_reconcile.summary())
        self._started = True
        updated: dict[int, int] = await self.gw.read(lambda: dict(
            Camera.select(Camera.id, Camera.updated_us).tuples()))
        self._updated_us = updated
        camera_ids = sorted(updated)
        for camera_id in camera_ids:
            await self.camera_changed(camera_id)
        self._background.append(asyncio.create_task(self._schedule_loop(),
                                                    name="recorder-schedule"))
        if self.bus is not None:
            sub = self.bus.subscribe(CameraEvent, CameraChanged)
            self._background.append(asyncio.create_task(self._bus_loop(sub), name="recorder-bus"))

    async def stop(self) -> None:
        """Stop every task (ffmpeg terminated, then killed after a timeout) and await them."""
        self._started = False
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, *self._changes, return_exceptions=True)
        self._background.clear()
        async with self._lock:
            items = list(self._tasks.items())
            self._tasks.clear()
        await asyncio.gather(*(t.recorder.stop("shutdown") for _, t in items),
                             return_exceptions=True)
        results = await asyncio.gather(*(t.task for _, t in items), return_exceptions=True)
        for (key, _), result in zip(items, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("recorder: task for camera %s/%s failed: %r", key[0], key[1], result)
        if self._status_writes:
            await asyncio.gather(*self._status_writes, return_exceptions=True)
        if self.volumes is not None:
            self.volumes.close()
        self._server_lock.release()

    async def camera_changed(self, camera_id: int, reason: str = "config_change") -> None:
        """Start, stop or restart ``camera_id``'s tasks so they match the database; stopped runs
        end with ``reason``."""
        async with self._lock:
            wanted = await self._wanted_streams(camera_id)
            current = {k: t for k, t in self._tasks.items() if k[0] == camera_id}
            to_stop = [k for k, t in current.items()
                       if k not in wanted or t.recorder.config != wanted[k] or t.task.done()]
            if to_stop:
                stoppers = [self._tasks[k].recorder.stop(reason) for k in to_stop]
                await asyncio.gather(*stoppers, return_exceptions=True)
                await asyncio.gather(*(self._tasks[k].task for k in to_stop),
                                     return_exceptions=True)
                for k in to_stop:
                    del self._tasks[k]
            if self._modes.get(camera_id, "archived") == "archived":
                for key in [k for k in self.stats if k[0] == camera_id]:
                    del self.stats[key]
            if not self._started:
                return
            for key, config in wanted.items():
                if key in self._tasks:
                    continue
                assert self.volumes is not None  # made by start()
                stats = self.stats.setdefault(key, StreamStats())
                rec = StreamRecorder(self.gw, self.settings, self.clock, config, self.options,
                                     self.volumes, on_status=self._stream_status_changed,
                                     stats=stats)
                rec.on_disk_full = self._volume_full
                rec.live_feeds = self.live_feeds
                task = asyncio.create_task(rec.run(), name=f"recorder-{key[0]}-{key[1]}")
                self._tasks[key] = _Task(rec, task)
            if not wanted and self._modes.get(camera_id) != "archived" \
                    and camera_id not in self._elsewhere:
                self._publish(camera_id, StreamStatus("stopped", self._idle_reason(camera_id),
                                                      self.clock.now_us()))

    def _idle_reason(self, camera_id: int) -> str:
        mode = self._modes.get(camera_id, "")
        if mode == "scheduled":
            return "scheduled: outside the recording window"
        if mode == "off":
            return "recording is off"
        return "not recording"

    # -- scheduled and event modes -----------------------------------------------------------

    async def _schedule_loop(self) -> None:
        polled_us = self.clock.monotonic_us()
        while True:
            await asyncio.sleep(self.options.schedule_tick_s)
            if self.clock.monotonic_us() - polled_us >= self.options.config_poll_s * 1e6:
                polled_us = self.clock.monotonic_us()
                await self._poll_camera_rows()
            await self._converge_leases()
            now_us = self.clock.now_us()
            for camera_id, (windows, tz) in list(self._schedules.items()):
                inside = in_window(windows, tz, now_us)
                if inside != self._in_window.get(camera_id):
                    log.info("recorder: camera %s %s its recording window", camera_id,
                             "entered" if inside else "left")
                    await self.camera_changed(camera_id, "schedule")

    async def _poll_camera_rows(self) -> None:
        """Catch camera edits made without telling us (the CLI, another process): any camera whose
        ``updated_us`` changed since the last poll is brought in line with the database."""
        rows: dict[int, int] = await self.gw.read(lambda: dict(
            Camera.select(Camera.id, Camera.updated_us).tuples()))
        if self._updated_us is None:
            self._updated_us = rows
            return
        changed = [cid for cid, upd in rows.items() if self._updated_us.get(cid) != upd]
        changed += [cid for cid in self._updated_us if cid not in rows]
        self._updated_us = rows
        for camera_id in changed:
            log.info("recorder: camera %s changed in the database; applying", camera_id)
            await self.camera_changed(camera_id)

    async def _bus_loop(self, sub: Subscription) -> None:
        try:
            async for message in sub:
                if isinstance(message, CameraEvent):
                    self.camera_event(message)
                elif isinstance(message, CameraChanged):
                    task = asyncio.create_task(self.camera_changed(message.camera_id))
                    self._changes.add(task)
                    task.add_done_callback(self._changes.discard)
        finally:
            sub.close()

    def camera_event(self, event: CameraEvent) -> None:
        """Tell every recorder of the event's camera (event mode keeps pre/post-roll; continuous
        mode marks the segments ``event`` for retention)."""
        if event.type not in self._recorded_types.get(event.camera_id, _DEFAULT_RECORDED):
            return  # not a type this camera records on (Camera.event_types_recorded)
        for key, t in self._tasks.items():
            if key[0] == event.camera_id:
                t.recorder.trigger(event.type, event.state, event.at_us)

    async def _wanted_streams(self, camera_id: int) -> dict[tuple[int, str], StreamConfig]:
        def load() -> tuple[Camera | None, list[CameraStream]]:
            cam = (Camera.select(Camera, Site).join(Site).where(Camera.id == camera_id)
                   .first())
            if cam is None:
                return None, []
            return cam, list(CameraStream.select().where(CameraStream.camera == camera_id))

        cam, streams = await self.gw.read(load)
        self._schedules.pop(camera_id, None)
        self._in_window.pop(camera_id, None)
        if cam is None:
            self._modes.pop(camera_id, None)
            return {}
        mode = cam.recording_mode if cam.archived_us is None else "archived"
        self._modes[camera_id] = mode
        fence = None
        self._elsewhere.discard(camera_id)
        if self.leases is not None and mode != "archived":
            epoch = self.leases.epoch_of(camera_id)
            if epoch is None:
                self._elsewhere.add(camera_id)
                return {}
            fence = Fence(self.leases.name, epoch)
        self._recorded_types[camera_id] = frozenset(
            t.strip() for t in cam.event_types_recorded.split(",") if t.strip())
        if mode == "archived":
            return {}
        if not cam.enabled or mode not in ("continuous", "scheduled", "event"):
            return {}
        if mode == "scheduled":
            try:
                windows = parse_schedule(cam.schedule)
            except ScheduleError as exc:
                self._publish(camera_id, StreamStatus("error", f"schedule: {exc}",
                                                      self.clock.now_us()))
                return {}
            self._schedules[camera_id] = (windows, cam.site.timezone)
            inside = in_window(windows, cam.site.timezone, self.clock.now_us())
            self._in_window[camera_id] = inside
            if not inside:
                return {}
        try:
            password = self.secrets.decrypt(cam.password_enc)
        except SecretError as exc:
            self._publish(camera_id, StreamStatus("error", str(exc), self.clock.now_us()))
            return {}
        wanted: dict[tuple[int, str], StreamConfig] = {}
        for stream in streams:
            if not stream.record or not stream.rtsp_url:
                continue
            wanted[(camera_id, stream.kind)] = StreamConfig(
                camera_id=camera_id, camera_uuid=cam.uuid, camera_name=cam.name,
                kind=stream.kind,
                url=stream.rtsp_url, username=cam.username, password=password,
                rtsp_transport=stream.rtsp_transport or self.settings.recording.rtsp_transport,
                mode="event" if mode == "event" else "continuous",
                pre_roll_s=float(cam.event_pre_s), post_roll_s=float(cam.event_post_s),
                volume=cam.volume, fence=fence,
            )
        return wanted

    # -- a cluster's leases (vms/cluster.py) ---------------------------------------------------

    async def leases_taken(self, camera_ids: list[int]) -> None:
        """This node now holds these cameras' leases: record them (in the background)."""
        for camera_id in camera_ids:
            self._in_background(self.camera_changed(camera_id))

    async def leases_lost(self, camera_ids: list[int]) -> None:
        """These leases are gone (taken, or not renewed in time): stop their ffmpeg now, without
        waiting for the supervisor's lock or the database (which may be unreachable)."""
        tasks = [t for k, t in self._tasks.items() if k[0] in set(camera_ids)]
        await asyncio.gather(*(t.recorder.stop("lease_lost") for t in tasks),
                             return_exceptions=True)
        for camera_id in camera_ids:
            self._in_background(self.camera_changed(camera_id, "lease_lost"))

    async def _converge_leases(self) -> None:
        """Every schedule tick: bring in line any camera whose recorders do not match the leases
        (a recorder under an old epoch, a finished one, a held camera not recorded) — the
        callbacks above act at once; this makes the outcome independent of their order."""
        if self.leases is None:
            return
        stale = {k[0] for k, t in self._tasks.items()
                 if not self.leases.releasing(k[0]) and (
                     t.task.done() or t.recorder.config.fence is None
                     or self.leases.epoch_of(k[0]) != t.recorder.config.fence.epoch)}
        stale |= {cid for cid in self._elsewhere if self.leases.epoch_of(cid) is not None}
        for camera_id in sorted(stale):
            await self.camera_changed(camera_id, "lease_lost")

    async def hand_over(self, camera_ids: list[int]) -> None:
        """Stop recording these cameras (end reason ``handover``) and wait until their last
        segments are indexed, before their leases are freed for another node: never two nodes
        recording one camera."""
        async with self._lock:  # no camera_changed() may start one of them meanwhile
            keys = [k for k in self._tasks if k[0] in set(camera_ids)]
            tasks = [self._tasks[k] for k in keys]
            await asyncio.gather(*(t.recorder.stop("handover") for t in tasks),
                                 return_exceptions=True)
            if tasks:
                # its listed segments indexed (a busy writer can lag): the lease is renewed
                # meanwhile, so nothing recorded before the hand-over is refused by the fence
                await asyncio.wait([t.task for t in tasks], timeout=HANDOVER_WAIT_S)
            for key, t in zip(keys, tasks, strict=True):
                if t.task.done():
                    del self._tasks[key]
        for camera_id in camera_ids:
            self._in_background(self.camera_changed(camera_id, "handover"))

    def _in_background(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.create_task(coro)
        self._changes.add(task)
        task.add_done_callback(self._changes.discard)

    def _volume_full(self, volume: Volume, reason: str) -> None:
        for hook in self.volume_full_hooks:
            hook(volume, reason)

    # -- status ------------------------------------------------------------------------------

    def status(self, camera_id: int) -> dict[str, object]:
        """``{"state", "reason", "since_us", "streams": {kind: {...}}}`` for one camera."""
        streams = {k[1]: t.recorder.status for k, t in self._tasks.items() if k[0] == camera_id}
        overall = worst(list(streams.items())) or self._camera_status.get(camera_id) or \
            StreamStatus("stopped", "not recording", 0)
        out = overall.as_dict()
        out["mode"] = self._modes.get(camera_id, "")
        if camera_id in self._in_window:
            out["in_window"] = self._in_window[camera_id]
        out["streams"] = {kind: s.as_dict() for kind, s in streams.items()}
        return out

    def stream_metrics(self) -> list[tuple[int, str, str, StreamStats]]:
        """(camera id, stream, state, counters) of every stream recorded since start-up whose
        camera still exists: a stream without a task now is ``stopped``."""
        out: list[tuple[int, str, str, StreamStats]] = []
        for key, stats in sorted(self.stats.items()):
            task = self._tasks.get(key)
            out.append((key[0], key[1], task.recorder.status.state if task else "stopped", stats))
        return out

    async def volume_health(self) -> list[VolumeHealth]:
        """Each configured volume's health (for the storage page and ``/api/v1/storage``)."""
        if self.volumes is None:
            return []
        return await self.volumes.all_health()

    def recorders(self) -> list[StreamRecorder]:
        return [t.recorder for t in self._tasks.values()]

    def _stream_status_changed(self, rec: StreamRecorder) -> None:
        camera_id = rec.config.camera_id
        streams = [(k[1], t.recorder.status) for k, t in self._tasks.items() if k[0] == camera_id]
        if not any(t.recorder is rec for t in self._tasks.values()):
            streams.append((rec.config.kind, rec.status))
        overall = worst(streams)
        if overall is not None:
            self._publish(camera_id, overall)

    def _publish(self, camera_id: int, status: StreamStatus) -> None:
        if self._camera_status.get(camera_id) == status:
            return
        self._camera_status[camera_id] = status
        if self.bus is not None:
            self.bus.publish(StatusChanged(camera_id, status.state, status.reason,
                                           status.since_us))
        task = asyncio.get_running_loop().create_task(self.gw.write(
            index.set_camera_status, camera_id, status.state, status.reason, status.since_us))
        self._status_writes.add(task)
        task.add_done_callback(self._status_writes.discard)
