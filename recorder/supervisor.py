"""The recorder supervisor: one recording task per recorded camera stream, started and stopped here.

:class:`RecorderSupervisor` is what the composition root holds (in an aiohttp ``cleanup_ctx``).
``start()`` reconciles the index with the disk (:mod:`recorder.reconcile`), then starts a
:class:`recorder.run.StreamRecorder` task for every enabled camera in continuous mode and each of
its streams marked ``record``. ``camera_changed()`` brings one camera's tasks in line with the
database (config change → restart with end reason ``config_change``), ``stop()`` stops them all
(end reason ``shutdown``) and awaits every task. Camera status rows are written from here.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from recorder import index
from recorder.reconcile import ReconcileReport, reconcile
from recorder.run import RecorderOptions, StreamConfig, StreamRecorder
from recorder.status import StreamStatus, worst
from vms.clock import Clock
from vms.config import Settings
from vms.db.gateway import Gateway
from vms.db.models import Camera, CameraStream
from vms.secrets import SecretBox, SecretError

log = logging.getLogger(__name__)


@dataclass
class _Task:
    recorder: StreamRecorder
    task: asyncio.Task[None]


class RecorderSupervisor:
    """Owns every recording task of this server."""

    def __init__(self, gateway: Gateway, settings: Settings, clock: Clock, secrets: SecretBox,
                 options: RecorderOptions | None = None) -> None:
        self.gw = gateway
        self.settings = settings
        self.clock = clock
        self.secrets = secrets
        self.options = options or RecorderOptions()
        self._tasks: dict[tuple[int, str], _Task] = {}
        self._camera_status: dict[int, StreamStatus] = {}
        self._status_writes: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._started = False
        self.last_reconcile: ReconcileReport | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Reconcile the index with the disk, then record every camera that should be."""
        self.last_reconcile = await asyncio.to_thread(
            reconcile, self.gw, self.settings, self.clock, True)
        if self.last_reconcile.problems:
            log.warning("recorder: start-up reconciliation: %s", self.last_reconcile.summary())
        self._started = True
        camera_ids = await self.gw.read(
            lambda: [c.id for c in Camera.select(Camera.id).order_by(Camera.id)])
        for camera_id in camera_ids:
            await self.camera_changed(camera_id)

    async def stop(self) -> None:
        """Stop every task (ffmpeg terminated, then killed after a timeout) and await them."""
        self._started = False
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

    async def camera_changed(self, camera_id: int) -> None:
        """Start, stop or restart ``camera_id``'s tasks so they match the database."""
        async with self._lock:
            wanted = await self._wanted_streams(camera_id)
            current = {k: t for k, t in self._tasks.items() if k[0] == camera_id}
            to_stop = [k for k, t in current.items()
                       if k not in wanted or t.recorder.config != wanted[k]]
            if to_stop:
                stoppers = [self._tasks[k].recorder.stop("config_change") for k in to_stop]
                await asyncio.gather(*stoppers, return_exceptions=True)
                await asyncio.gather(*(self._tasks[k].task for k in to_stop),
                                     return_exceptions=True)
                for k in to_stop:
                    del self._tasks[k]
            if not self._started:
                return
            for key, config in wanted.items():
                if key in self._tasks:
                    continue
                rec = StreamRecorder(self.gw, self.settings, self.clock, config, self.options,
                                     on_status=self._stream_status_changed)
                task = asyncio.create_task(rec.run(), name=f"recorder-{key[0]}-{key[1]}")
                self._tasks[key] = _Task(rec, task)
            if not wanted:
                self._publish(camera_id, StreamStatus("stopped", "not recording",
                                                      self.clock.now_us()))

    async def _wanted_streams(self, camera_id: int) -> dict[tuple[int, str], StreamConfig]:
        def load() -> tuple[Camera | None, list[CameraStream]]:
            cam = Camera.get_or_none(Camera.id == camera_id)
            if cam is None:
                return None, []
            return cam, list(CameraStream.select().where(CameraStream.camera == camera_id))

        cam, streams = await self.gw.read(load)
        if cam is None or not cam.enabled or cam.recording_mode != "continuous":
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
                camera_id=camera_id, camera_name=cam.name, kind=stream.kind,
                url=stream.rtsp_url, username=cam.username, password=password,
                rtsp_transport=self.settings.recording.rtsp_transport,
            )
        return wanted

    # -- status ------------------------------------------------------------------------------

    def status(self, camera_id: int) -> dict[str, object]:
        """``{"state", "reason", "since_us", "streams": {kind: {...}}}`` for one camera."""
        streams = {k[1]: t.recorder.status for k, t in self._tasks.items() if k[0] == camera_id}
        overall = worst(list(streams.items())) or self._camera_status.get(camera_id) or \
            StreamStatus("stopped", "not recording", 0)
        out = overall.as_dict()
        out["streams"] = {kind: s.as_dict() for kind, s in streams.items()}
        return out

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
        task = asyncio.get_running_loop().create_task(self.gw.write(
            index.set_camera_status, camera_id, status.state, status.reason, status.since_us))
        self._status_writes.add(task)
        task.add_done_callback(self._status_writes.discard)
