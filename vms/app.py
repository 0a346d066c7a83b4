"""The composition root: builds the aiohttp application from settings.

Every long-lived resource lives in its own ``cleanup_ctx`` generator — database, password pool,
secrets, metrics, scheduler, onboarding and scan jobs, live view, talk-back, exports, recorder
supervisor, retention, event pumps, MQTT bridge — so each is torn down even when a later one
failed to start. A part that cannot be imported or started stops start-up with its error: a
server that records nothing must not look like one that does. Nothing imports this module but the
rest of the root; the CLI calls :func:`create_app`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import peewee as pw
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CollectorRegistry, Gauge

from recorder.metrics import ServerCollector
from vms.auth import Accounts
from vms.bus import CameraChanged, EventBus
from vms.clock import Clock, SystemClock
from vms.config import Settings
from vms.db import models as m
from vms.db.gateway import Gateway, redact_db_url
from vms.fsmode import private_dir
from vms.passwords import LoginThrottle, PasswordPool
from vms.secrets import SecretBox
from web.keys import (
    ACCOUNTS,
    BUS,
    CLOCK,
    GATEWAY,
    METRICS,
    PASSWORDS,
    SECRETS,
    SERVICES,
    SETTINGS,
    THROTTLE,
)
from web.setup import setup_web

log = logging.getLogger(__name__)

SCHEDULER = web.AppKey("scheduler", AsyncIOScheduler)


def create_app(settings: Settings, *, clock: Clock | None = None,
               start_recorder: bool = True) -> web.Application:
    """The whole server as an aiohttp app. ``start_recorder=False`` leaves cameras unrecorded
    and their events unread (for tests of the web layer alone)."""
    app = web.Application(client_max_size=2 * 1024 * 1024)
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[METRICS] = CollectorRegistry()
    app[ACCOUNTS] = Accounts(app[CLOCK], session_hours=settings.server.session_hours)
    app[THROTTLE] = LoginThrottle(app[CLOCK])
    app[SERVICES] = {}
    app[BUS] = EventBus()
    setup_web(app)
    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_passwords_ctx)
    app.cleanup_ctx.append(_secrets_ctx)
    app.cleanup_ctx.append(_metrics_ctx)
    app.cleanup_ctx.append(_scheduler_ctx)
    app.cleanup_ctx.append(_storage_ctx)
    app.cleanup_ctx.append(_event_store_ctx)
    app.on_shutdown.append(_event_feed_shutdown)
    app.cleanup_ctx.append(_onboarding_ctx)
    app.cleanup_ctx.append(_ptz_ctx)
    app.on_shutdown.append(_ptz_shutdown)
    app.cleanup_ctx.append(_doors_ctx)
    app.cleanup_ctx.append(_live_ctx)
    app.on_shutdown.append(_live_shutdown)
    app.cleanup_ctx.append(_talk_ctx)
    app.on_shutdown.append(_talk_shutdown)
    app.cleanup_ctx.append(_exports_ctx)
    if start_recorder and settings.clustered:
        app.cleanup_ctx.append(_cluster_ctx)
    if start_recorder:
        app.cleanup_ctx.append(_recorder_ctx)
        app.cleanup_ctx.append(_retention_ctx)
        app.cleanup_ctx.append(_events_ctx)
    if settings.mqtt.url:
        app.cleanup_ctx.append(_mqtt_ctx)
    return app


async def freeze_startup_objects(app: web.Application) -> None:
    """Move the ~85,000 objects made at start-up out of the garbage collector's sight: a full
    collection walking them took ~45 ms, which showed up as the p99 of timeline requests.

    For a server process (``vms serve``, ``vms demo``): append to ``app.on_startup`` after
    :func:`create_app`, so it runs once every resource has started. Not in tests, where many apps
    come and go in one process and frozen objects would never be freed."""
    import gc

    gc.collect()
    gc.freeze()


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    private_dir(settings.data_dir)
    for volume in settings.volumes:  # never created here: see recorder/volumes.py
        if await _in_thread(volume.path.is_dir):
            await _in_thread(lambda v=volume: private_dir(v.path))
    gateway = Gateway(settings.database_url)
    try:
        applied = await _in_thread(gateway.migrate)
        log.info("database %s ready%s", redact_db_url(settings.database_url),
                 f" (applied {', '.join(applied)})" if applied else "")
        app[GATEWAY] = gateway
        if await gateway.read(lambda: m.User.select().count()) == 0:
            log.warning("no users yet: create the first administrator with "
                        "`vms user add admin --admin --password-stdin` (there is no default password)")
        yield
    finally:
        gateway.close()


async def _passwords_ctx(app: web.Application) -> AsyncIterator[None]:
    """The password pool: every argon2 hash and check of the server runs there."""
    pool = PasswordPool(workers=app[SETTINGS].server.password_threads)
    app[PASSWORDS] = pool
    try:
        yield
    finally:
        await _in_thread(pool.close)


async def _secrets_ctx(app: web.Application) -> AsyncIterator[None]:
    app[SECRETS] = SecretBox.from_key_file(app[SETTINGS].key_file)
    yield


async def _metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    cameras = Gauge("vms_cameras", "Cameras by status", ["status"], registry=app[METRICS])

    def count() -> None:
        """Run on a reader thread (the scheduler below calls it through the gateway)."""
        query = (m.Camera.select(m.Camera.status, pw.fn.COUNT(m.Camera.id))
                 .group_by(m.Camera.status).tuples())
        totals = dict(query)
        cameras.clear()
        for status, n in totals.items():
            cameras.labels(status).set(n)

    app[SERVICES]["metrics_refresh"] = count
    collector = ServerCollector(app[SERVICES], app[CLOCK])
    app[METRICS].register(collector)
    try:
        yield
    finally:
        app[METRICS].unregister(collector)


async def _scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    scheduler = AsyncIOScheduler(timezone="UTC")
    refresh = app[SERVICES].get("metrics_refresh")
    if refresh is not None:
        gateway = app[GATEWAY]

        async def refresh_metrics() -> None:
            await gateway.read(refresh)

        scheduler.add_job(refresh_metrics, "interval", seconds=15, id="metrics",
                          max_instances=1, coalesce=True)
    scheduler.start()
    app[SCHEDULER] = scheduler
    try:
        yield
    finally:
        scheduler.shutdown(wait=False)


async def _storage_ctx(app: web.Application) -> AsyncIterator[None]:
    """Storage figures (vms/storage.py): the API and page, the ``vms_storage_*`` metrics (computed
    when scraped) and the hourly ``storage_history`` sample (also taken at start when the last is
    older than an hour). The default volume (``<data_dir>/recordings``, when none is configured)
    is created and marked first, so a fresh install's first sample and figures see it."""
    import asyncio
    from datetime import UTC, datetime

    from recorder.volumes import database_uuid, prepare_default_volume
    from vms.storage import SAMPLE_INTERVAL_S, StorageService
    from vms.storage_metrics import StorageCollector

    db_uuid = await app[GATEWAY].write(database_uuid)
    await asyncio.to_thread(prepare_default_volume, app[SETTINGS], db_uuid, app[CLOCK].now_us())
    scheduler = app[SCHEDULER]

    def next_purge_us() -> int | None:
        job = scheduler.get_job("retention")
        when = getattr(job, "next_run_time", None) if job is not None else None
        return int(when.timestamp() * 1_000_000) if when is not None else None

    async def volume_health() -> dict[str, tuple[str, str]]:
        recorder = app[SERVICES].get("recorder")
        if recorder is None:
            return {}
        return {h.volume: (h.state, h.message) for h in await recorder.volume_health()}

    service = StorageService(app[GATEWAY], app[SETTINGS], app[CLOCK], next_purge_us=next_purge_us,
                             volume_health=volume_health)
    collector = StorageCollector(service)
    app[METRICS].register(collector)
    app[SERVICES]["storage"] = service
    scheduler.add_job(service.sample, "interval", seconds=SAMPLE_INTERVAL_S, id="storage_history",
                      max_instances=1, coalesce=True, misfire_grace_time=SAMPLE_INTERVAL_S,
                      next_run_time=datetime.now(UTC))
    try:
        yield
    finally:
        if scheduler.get_job("storage_history") is not None:
            scheduler.remove_job("storage_history")
        app[METRICS].unregister(collector)
        service.close()


async def _event_store_ctx(app: web.Application) -> AsyncIterator[None]:
    """The event store (vms/events.py): camera events from the bus into ``Event`` rows, intervals
    closed after ``[events] max_open_seconds``, and the live feed's listeners."""
    from prometheus_client.core import CounterMetricFamily

    from vms.events import EventStore, collector

    store = EventStore(app[GATEWAY], app[BUS], app[CLOCK],
                       max_open_s=app[SETTINGS].events.max_open_seconds)
    await store.start()
    app[SERVICES]["events"] = store
    relay = None
    if app[SETTINGS].clustered:  # every node's live feed shows every node's events
        from vms.cluster_events import ClusterEvents

        relay = ClusterEvents(app[SETTINGS].database_url, app[SETTINGS].node_name, store)
        await relay.start()
    figures = collector(store)

    class _Collector:
        def collect(self):  # type: ignore[no-untyped-def]
            now = figures()
            stored = CounterMetricFamily("vms_events_stored", "Camera events stored")
            stored.add_metric([], now["stored"])
            dropped = CounterMetricFamily("vms_events_dropped",
                                          "Camera events dropped by a full queue",
                                          labels=["subscriber"])
            dropped.add_metric(["store"], now["bus_dropped"])
            dropped.add_metric(["feed"], now["feed_dropped"])
            bridge = app[SERVICES].get("mqtt")
            if bridge is not None:
                dropped.add_metric(["mqtt"], bridge.dropped)
            closed = CounterMetricFamily("vms_events_closed_max_open",
                                         "Interval events closed after max_open_seconds")
            closed.add_metric([], now["closed_max_open"])
            return [stored, dropped, closed]

    metrics = _Collector()
    app[METRICS].register(metrics)  # type: ignore[arg-type]
    try:
        yield
    finally:
        app[METRICS].unregister(metrics)  # type: ignore[arg-type]
        if relay is not None:
            await relay.stop()
        await store.stop()


async def _event_feed_shutdown(app: web.Application) -> None:
    """Before the server waits for open requests: end every live event feed."""
    store = app[SERVICES].get("events")
    if store is not None:
        store.shutdown()


async def _onboarding_ctx(app: web.Application) -> AsyncIterator[None]:
    """Adoption of cameras and the discovery scans started from the web UI."""
    from onvif_bridge.adopt import Onboarding
    from onvif_bridge.drift import DRIFT_CHECK_INTERVAL_S, DriftChecker
    from onvif_bridge.scan_jobs import ScanJobs

    services = app[SERVICES]

    async def camera_changed(camera_id: int) -> None:
        recorder = services.get("recorder")
        if recorder is not None:  # told directly too: remove() returns once it has stopped
            await recorder.camera_changed(camera_id)
        if (cluster := services.get("cluster")) is not None:
            cluster.poke()  # a new camera gets its lease (and recorder) without waiting a tick
        app[BUS].publish(CameraChanged(camera_id))  # event pumps, MQTT discovery, the store

    onboarding = Onboarding(app[GATEWAY], app[SECRETS], app[CLOCK], on_change=camera_changed,
                            ffmpeg_exe=app[SETTINGS].ffmpeg_exe,
                            snapshot_hosts_allowed=app[SETTINGS].cameras.snapshot_hosts)
    jobs = ScanJobs(app[GATEWAY], app[CLOCK], onboarding)
    drift = DriftChecker(onboarding)
    services["onboarding"] = onboarding
    services["discovery_jobs"] = jobs
    services["drift"] = drift
    app[SCHEDULER].add_job(drift.run_scheduled, "interval", seconds=DRIFT_CHECK_INTERVAL_S,
                           id="encoder_drift", max_instances=1, coalesce=True)
    try:
        yield
    finally:
        app[SCHEDULER].remove_job("encoder_drift")
        await drift.stop()
        await jobs.stop()


async def _ptz_ctx(app: web.Application) -> AsyncIterator[None]:
    """PTZ control (onvif_bridge/ptz_control.py): move sessions with their dead-man timers; on
    shutdown every move in progress gets its Stop."""
    from onvif_bridge.ptz_control import PtzControl

    control = PtzControl(app[SERVICES]["onboarding"])
    await control.start()
    app[SERVICES]["ptz"] = control
    try:
        yield
    finally:
        app[SERVICES].pop("ptz", None)
        await control.close()


async def _ptz_shutdown(app: web.Application) -> None:
    """Before the server waits for open requests: end every PTZ control WebSocket."""
    control = app[SERVICES].get("ptz")
    if control is not None:
        control.shutdown()
async def _doors_ctx(app: web.Application) -> AsyncIterator[None]:
    """Door release (onvif_bridge/doors.py): relays and pulses; at shutdown every pulse in flight
    is cut short and its relay set inactive before the server goes."""
    from onvif_bridge.doors import DoorService

    settings = app[SETTINGS]
    doors = DoorService(app[SERVICES]["onboarding"], app[CLOCK],
                        pulse_s=settings.intercom.pulse_seconds,
                        ring_s=settings.intercom.ring_seconds,
                        pulses_per_minute=settings.intercom.pulses_per_minute)
    app[SERVICES]["doors"] = doors
    try:
        yield
    finally:
        await doors.stop()


async def _recorder_ctx(app: web.Application) -> AsyncIterator[None]:
    """The recorder supervisor: one ffmpeg per recorded stream. An ImportError here (a broken
    install) stops start-up: it is never turned into a server that records nothing."""
    from recorder.live import LiveService
    from recorder.supervisor import RecorderSupervisor

    live = app[SERVICES].get("live")  # live view shares each recorded stream's camera session
    supervisor = RecorderSupervisor(app[GATEWAY], app[SETTINGS], app[CLOCK], app[SECRETS],
                                    bus=app[BUS],
                                    live_feeds=live.feeds if isinstance(live, LiveService) else None,
                                    leases=app[SERVICES].get("cluster"))
    await supervisor.start()
    app[SERVICES]["recorder"] = supervisor
    try:
        yield
    finally:
        await supervisor.stop()


async def _cluster_ctx(app: web.Application) -> AsyncIterator[None]:
    """A node of a cluster (vms/cluster.py; PostgreSQL): registered, its first lease tick done
    before the recorder starts (which then records only the cameras this node holds); stopped
    after the recorder, freeing its leases for the other nodes."""
    from vms.cluster import ClusterCollector, NodeConfig, cluster_secret
    from vms.cluster_node import ClusterNode

    settings = app[SETTINGS]
    services = app[SERVICES]
    cfg = NodeConfig(name=settings.node_name, advertise_url=settings.advertise_url,
                     max_cameras=settings.cluster.max_cameras,
                     lease_s=float(settings.cluster.lease_seconds),
                     volumes=tuple(v.name for v in settings.volumes),
                     database_url=settings.database_url)

    async def pumps(ids: list[int]) -> None:  # a camera's ONVIF events follow its lease
        if (event_pumps := services.get("event_pumps")) is not None:
            for cid in ids:
                await event_pumps.sync(cid)

    async def taken(ids: list[int]) -> None:
        if (recorder := services.get("recorder")) is not None:
            await recorder.leases_taken(ids)
        await pumps(ids)

    async def lost(ids: list[int]) -> None:
        if (recorder := services.get("recorder")) is not None:
            await recorder.leases_lost(ids)
        await pumps(ids)

    async def release(ids: list[int]) -> None:
        if (recorder := services.get("recorder")) is not None:
            await recorder.hand_over(ids)
        await pumps(ids)

    node = ClusterNode(cfg, on_taken=taken, on_lost=lost, on_release=release)
    services["cluster_secret"] = await app[GATEWAY].write(cluster_secret)
    await node.start()
    services["cluster"] = node
    collector = ClusterCollector(node)
    app[METRICS].register(collector)  # type: ignore[arg-type]
    log.info("cluster: node %s (%s) holds cameras %s", cfg.name, cfg.advertise_url,
             sorted(node.held))
    try:
        yield
    finally:
        app[METRICS].unregister(collector)  # type: ignore[arg-type]
        services.pop("cluster", None)
        await node.stop()


async def _retention_ctx(app: web.Application) -> AsyncIterator[None]:
    """Retention (recorder/retention.py, recorder/retention_service.py): the scheduled purge
    (job ``retention``), one space-watcher thread per volume, and the recorder's disk-full hook
    wired to an immediate purge."""
    from datetime import UTC, datetime, timedelta

    from recorder.retention_service import RetentionService

    service = RetentionService(app[GATEWAY], app[SETTINGS], app[CLOCK], registry=app[METRICS])
    app[SERVICES]["retention"] = service
    recorder = app[SERVICES].get("recorder")
    if recorder is not None:
        recorder.volume_full_hooks.append(service.volume_full)
    service.start()
    options = service.options
    app[SCHEDULER].add_job(
        service.run_scheduled, "interval", seconds=options.interval_s, id="retention",
        max_instances=1, coalesce=True, misfire_grace_time=int(options.interval_s),
        next_run_time=datetime.now(UTC) + timedelta(seconds=options.first_run_s))
    try:
        yield
    finally:
        app[SCHEDULER].remove_job("retention")
        if recorder is not None:
            with contextlib.suppress(ValueError):
                recorder.volume_full_hooks.remove(service.volume_full)
        await service.stop()


async def _events_ctx(app: web.Application) -> AsyncIterator[None]:
    """ONVIF events (onvif_bridge/event_pumps.py): one PullPoint pump per camera in service,
    publishing ``vms.bus.CameraEvent``; follows ``CameraChanged`` (adds, edits, removals)."""
    from onvif_bridge.event_pumps import EventPumps

    cluster = app[SERVICES].get("cluster")  # a cluster: only the cameras this node records
    pumps = EventPumps(app[GATEWAY], app[SECRETS], app[BUS], app[CLOCK],
                       owns=(lambda cid: cluster.epoch_of(cid) is not None) if cluster else None)
    await pumps.start()
    app[SERVICES]["event_pumps"] = pumps
    try:
        yield
    finally:
        app[SERVICES].pop("event_pumps", None)
        await pumps.stop()


async def _exports_ctx(app: web.Application) -> AsyncIterator[None]:
    """Evidence export jobs (recorder/export.py): unfinished ones are resumed on start."""
    from recorder.export import ExportService

    service = ExportService(app[GATEWAY], app[SETTINGS], app[CLOCK])
    if app[SETTINGS].clustered:  # footage on other nodes' volumes is fetched from them
        from vms.cluster import fetch_segment

        async def fetch(camera_id: int, segment_id: int, dest: Path) -> None:
            secret = app[SERVICES].get("cluster_secret")
            if secret is None:
                raise OSError("this node does not record: it holds no cluster credential")
            await fetch_segment(app[GATEWAY], secret, app[SETTINGS].node_name, camera_id,
                                segment_id, dest)

        service.fetch_remote = fetch
    await service.start()
    if app[SETTINGS].clustered:  # a dead node's unfinished exports are made here, once this
        # node heart-beats (recorder/export.py)
        service.adopt_every(float(app[SETTINGS].cluster.lease_seconds))
    app[SERVICES]["exports"] = service
    try:
        yield
    finally:
        await service.stop()


async def _live_ctx(app: web.Application) -> AsyncIterator[None]:
    """Live view (recorder/live.py): one ffmpeg per watched stream, started on demand."""
    from recorder.live import LiveService

    service = LiveService(app[GATEWAY], app[SETTINGS], app[SECRETS], clock=app[CLOCK])
    app[SERVICES]["live"] = service
    try:
        yield
    finally:
        await service.stop()


async def _live_shutdown(app: web.Application) -> None:
    """Before the server waits for open requests: end every live WebSocket (and its ffmpeg)."""
    service = app[SERVICES].get("live")
    if service is not None:
        await service.stop()


async def _talk_ctx(app: web.Application) -> AsyncIterator[None]:
    """Talk-back (recorder/backchannel.py): at most one RTSP backchannel session per camera; and
    listening (recorder/listen.py): a camera's sound as AAC, one ffmpeg per camera listened to."""
    from recorder.backchannel import TalkService
    from recorder.listen import ListenService

    service = TalkService()
    app[SERVICES]["talk"] = service
    listen = ListenService(app[SERVICES]["live"].resolve, app[SETTINGS])
    app[SERVICES]["listen"] = listen
    try:
        yield
    finally:
        await listen.stop()
        await service.stop()


async def _talk_shutdown(app: web.Application) -> None:
    """Before the server waits for open requests: end every talk session and every listening
    stream (and their sockets)."""
    for name in ("listen", "talk"):
        service = app[SERVICES].get(name)
        if service is not None:
            await service.stop()


async def _mqtt_ctx(app: web.Application) -> AsyncIterator[None]:
    """The MQTT bridge (vms/mqtt.py): camera events from the bus to the broker, availability,
    Home Assistant discovery. It connects in the background and keeps retrying: a broker that is
    down never stops the server (``vms_mqtt_connected`` in /metrics says so). A bad ``[mqtt] url``
    stops start-up with its error."""
    from vms.mqtt import MqttBridge, MqttCollector

    bridge = MqttBridge(app[GATEWAY], app[SETTINGS].mqtt, app[BUS])
    await bridge.start()
    collector = MqttCollector(bridge)
    app[METRICS].register(collector)
    app[SERVICES]["mqtt"] = bridge
    try:
        yield
    finally:
        app[METRICS].unregister(collector)
        await bridge.stop()


async def _in_thread(fn):  # type: ignore[no-untyped-def]
    import asyncio

    return await asyncio.get_running_loop().run_in_executor(None, fn)
