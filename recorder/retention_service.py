"""Retention's long-lived parts: one space-watcher thread per volume and the service the
composition root holds (the scheduled pass, the watchers, the recorder's disk-full hook, the
Prometheus counters); also what blocks freeing space (the holds, with their bytes) for the storage
page. The deciding and deleting is recorder/retention.py.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import peewee as pw
from prometheus_client import CollectorRegistry

from recorder.retention import (
    Purger,
    PurgeReport,
    RetentionMetrics,
    RetentionOptions,
    SpaceCheck,
)
from recorder.retention_child import ChildPass
from recorder.timeline import HOLD_MAX_US
from vms.clock import Clock
from vms.config import Settings, Volume
from vms.db import models as m
from vms.db.gateway import Gateway

log = logging.getLogger(__name__)


def blocking_holds(volume: str) -> list[dict[str, Any]]:
    """The holds that keep footage on ``volume``, with the bytes of its segments each overlaps
    (for the storage page and API: "these holds keep N bytes"). A read."""
    out = []
    for hold_id, camera_id, start_us, end_us, reason in m.Hold.select(
            m.Hold.id, m.Hold.camera, m.Hold.start_us, m.Hold.end_us, m.Hold.reason).tuples():
        held = m.Segment.select(pw.fn.COALESCE(pw.fn.SUM(m.Segment.size_bytes), 0)).where(
            (m.Segment.camera == camera_id) & (m.Segment.volume == volume)
            & (m.Segment.start_us < end_us) & (m.Segment.end_us > start_us)
            & (m.Segment.start_us >= start_us - HOLD_MAX_US)).scalar()
        if held:
            out.append({"id": hold_id, "camera_id": camera_id, "start_us": start_us,
                        "end_us": end_us, "reason": reason, "bytes": int(held)})
    return out


class SpaceWatcher:
    """One thread per volume: every ``check_s`` (or at once when woken) it checks the volume's
    space and purges when short. A volume whose file system hangs blocks only its own thread."""

    def __init__(self, purger: Purger, volumes: Iterable[Volume],
                 on_purge: Callable[[Volume, PurgeReport], None] | None = None) -> None:
        self.purger = purger
        self.volumes = list(volumes)
        self.on_purge = on_purge
        self._stop = threading.Event()
        self._wake = {v.name: threading.Event() for v in self.volumes}
        self._threads: list[threading.Thread] = []
        self.last_check: dict[str, SpaceCheck] = {}
        self.errors: dict[str, str] = {}

    def start(self) -> None:
        for volume in self.volumes:
            thread = threading.Thread(target=self._loop, args=(volume,), daemon=True,
                                      name=f"retention-space-{volume.name}")
            thread.start()
            self._threads.append(thread)

    def wake(self, volume_name: str) -> None:
        """Check ``volume_name`` now (e.g. the recorder found it full). Non-blocking."""
        event = self._wake.get(volume_name)
        if event is not None:
            event.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        for event in self._wake.values():
            event.set()
        for thread in self._threads:
            thread.join(timeout_s)
            if thread.is_alive():
                log.error("retention: the space watcher %s did not stop (a hung file system?)",
                          thread.name)
        self._threads.clear()

    def _loop(self, volume: Volume) -> None:
        wake = self._wake[volume.name]
        while not self._stop.is_set():
            try:
                check = self.purger.space_check(volume)
                self.last_check[volume.name] = check
                self.errors.pop(volume.name, None)
                if check.short_bytes > 0:
                    report = self.purger.purge_space(volume, check)
                    if self.on_purge is not None:
                        self.on_purge(volume, report)
            except OSError as exc:
                message = f"volume {volume.name!r} ({volume.path}): {exc.strerror or exc}"
                if self.errors.get(volume.name) != message:
                    log.error("retention: cannot check %s", message)
                self.errors[volume.name] = message
            except Exception:  # a bug must not end the watcher: log it, try again later
                log.exception("retention: space check of volume %r failed", volume.name)
            wake.wait(self.purger.options.check_s)
            wake.clear()


class RetentionService:
    """What the composition root holds: the scheduled pass, the space watchers, the metrics."""

    def __init__(self, gateway: Gateway, settings: Settings, clock: Clock, *,
                 registry: CollectorRegistry | None = None,
                 options: RetentionOptions | None = None) -> None:
        self.options = options or RetentionOptions()
        self.metrics = RetentionMetrics(registry) if registry is not None else None
        self.purger = Purger(gateway, settings, clock, metrics=self.metrics, options=self.options)
        self.watcher = SpaceWatcher(self.purger, settings.volumes)
        self.child = ChildPass(settings, clock, self.options)
        self.last_report: PurgeReport | None = None
        self._running: asyncio.Future[PurgeReport] | None = None

    def start(self) -> None:
        self.watcher.start()

    async def run_scheduled(self) -> PurgeReport:
        """One scheduled pass (the APScheduler job ``retention``), in a child process
        (recorder/retention_child.py: the server's requests do not wait for its Python work);
        its deletions are counted here when it ends."""
        self._running = asyncio.ensure_future(asyncio.to_thread(self.child.run))
        try:
            report = await asyncio.shield(self._running)
        finally:
            if self._running.done():
                self._running = None
        if self.metrics is not None:
            for reason, totals in report.by_reason.items():
                self.metrics.count(reason, totals.segments, totals.bytes)
        self.last_report = report
        return report

    def volume_full(self, volume: Volume, reason: str) -> None:
        """The recorder's disk-full hook: purge that volume now (its watcher thread does)."""
        log.warning("retention: %s; purging volume %r now", reason, volume.name)
        self.watcher.wake(volume.name)

    async def stop(self) -> None:
        """Stop the watchers and a running pass (between two chunks) and wait for them."""
        self.purger.stop_event.set()
        self.child.stop()
        await asyncio.to_thread(self.watcher.stop)
        running = self._running
        if running is not None:
            await asyncio.wait([running], timeout=30)
