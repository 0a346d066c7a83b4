"""Discovery scans started from the web UI: each a background task with rows that fill in as answers
arrive.

:class:`ScanJobs` owns the scans of one server process: it starts one (:func:`onvif_bridge.scan.scan`
in a task), finds it again for the user who started it, fetches a found device's snapshot with the
scan's credentials, and cancels and awaits every task on shutdown. Jobs live in memory (a restart
forgets them) and keep the scan credentials only there; no view of a job carries a password. Its
refusals are domain errors (:class:`ScanJobNotFound`, :class:`TooManyScans`), which the web layer
(``web/views_discovery.py``) answers as 404 and 429.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from onvif_bridge.adopt import Onboarding, snapshot_of
from onvif_bridge.errors import DiscoveryTargetError
from onvif_bridge.models import DeviceReport, DiscoveredDevice
from onvif_bridge.scan import report_dict, scan
from vms.auth import Principal
from vms.clock import Clock
from vms.db.gateway import Gateway

log = logging.getLogger(__name__)

MAX_JOBS = 20
"""Scans kept at once (running and finished); finished ones make room first."""
JOB_TTL_US = 3600 * 1_000_000
"""A finished scan is forgotten this long after it ended."""


class ScanJobError(Exception):
    """A scan request refused; the message is for the person who made it."""


class ScanJobNotFound(ScanJobError):
    """No such scan for this user (or no such device in it yet)."""


class TooManyScans(ScanJobError):
    """:data:`MAX_JOBS` scans are running: wait for one to finish."""


@dataclass
class ScanRow:
    """One device of a scan: found, then (once its report is in) interrogated."""

    index: int
    device: DiscoveredDevice
    report: DeviceReport | None = None
    known_camera_id: int | None = None
    thumbnail: bytes | None = None

    def as_dict(self) -> dict[str, Any]:
        d = self.device
        base: dict[str, Any] = {
            "index": self.index, "endpoint": d.endpoint, "address": d.sender,
            "xaddr": next(iter(d.xaddrs), ""), "name": d.name, "hardware": d.hardware,
            "mac": None, "manufacturer": "", "model": d.hardware or "", "firmware": "",
            "serial": "", "status": "pending", "message": "", "profiles": [],
            "clock_offset_us": None, "known_camera_id": self.known_camera_id,
        }
        if self.report is not None:
            base.update(report_dict(self.report))
            base["address"] = self.report.address or d.sender
            base["name"] = self.report.name or d.name
            base["xaddr"] = self.report.xaddr or base["xaddr"]
            base["known_camera_id"] = self.known_camera_id
        return base


@dataclass
class ScanJob:
    """One scan: its targets, state and rows; the scan credentials stay in memory only."""

    id: str
    user_id: int
    targets: list[str]
    timeout_s: float
    started_us: int
    started_mono_us: int
    username: str
    password: str = field(repr=False)
    state: str = "discovering"  # discovering | interrogating | done | failed | cancelled
    error: str = ""
    finished_us: int | None = None
    rows: dict[str, ScanRow] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    def progress(self, clock: Clock) -> float:
        if self.state in ("done", "failed", "cancelled"):
            return 1.0
        elapsed_s = (clock.monotonic_us() - self.started_mono_us) / 1e6
        window = min(1.0, elapsed_s / self.timeout_s) if self.timeout_s > 0 else 1.0
        found = len(self.rows)
        reported = sum(1 for r in self.rows.values() if r.report is not None)
        examined = reported / found if found else window
        return round(min(0.99, 0.5 * window + 0.5 * examined * window), 3)

    def ready_xaddrs(self, indexes: set[int] | None = None) -> list[str]:
        """Device addresses of the rows that answered the scan's credentials with a usable
        stream (``ok``, or ``clock_skew`` for adoption with the clock set), in scan order;
        only those at ``indexes`` when given."""
        rows = sorted(self.rows.values(), key=lambda r: r.index)
        return [r.report.xaddr for r in rows
                if r.report is not None and r.report.xaddr
                and str(r.report.status) in ("ok", "clock_skew")
                and (indexes is None or r.index in indexes)]

    def as_dict(self, clock: Clock) -> dict[str, Any]:
        rows = sorted(self.rows.values(), key=lambda r: r.index)
        return {
            "id": self.id, "state": self.state, "progress": self.progress(clock),
            "error": self.error, "targets": self.targets, "timeout_s": self.timeout_s,
            "started_us": self.started_us, "finished_us": self.finished_us,
            "found": len(rows), "examined": sum(1 for r in rows if r.report is not None),
            "devices": [r.as_dict() for r in rows],
        }


class ScanJobs:
    """The running and recent scans of this server process."""

    def __init__(self, gateway: Gateway, clock: Clock, onboarding: Onboarding) -> None:
        self.gateway = gateway
        self.clock = clock
        self.onboarding = onboarding
        self.jobs: dict[str, ScanJob] = {}

    def start(self, principal: Principal, targets: list[str], username: str, password: str,
              timeout_s: float) -> ScanJob:
        self._prune()
        job = ScanJob(id=secrets.token_urlsafe(9), user_id=principal.user_id, targets=targets,
                      timeout_s=timeout_s, started_us=self.clock.now_us(),
                      started_mono_us=self.clock.monotonic_us(), username=username,
                      password=password)
        self.jobs[job.id] = job
        job.task = asyncio.create_task(self._run(job, principal), name=f"scan {job.id}")
        return job

    def get(self, principal: Principal, job_id: str) -> ScanJob:
        job = self.jobs.get(job_id)
        if job is None or (job.user_id != principal.user_id and principal.site_ids is not None):
            raise ScanJobNotFound("no such discovery job")
        return job

    def _prune(self) -> None:
        now = self.clock.now_us()
        for job_id, job in list(self.jobs.items()):
            if job.finished_us is not None and now - job.finished_us > JOB_TTL_US:
                del self.jobs[job_id]
        finished = [j for j in self.jobs.values() if j.finished_us is not None]
        while len(self.jobs) >= MAX_JOBS and finished:
            oldest = min(finished, key=lambda j: j.started_us)
            finished.remove(oldest)
            del self.jobs[oldest.id]
        if len(self.jobs) >= MAX_JOBS:
            raise TooManyScans("too many discovery scans running; wait for one to finish")

    async def _run(self, job: ScanJob, principal: Principal) -> None:
        try:
            async for update in scan(job.targets, job.username, job.password,
                                     timeout_s=job.timeout_s, clock=self.clock):
                endpoint = update.device.endpoint
                if update.kind == "found":
                    job.rows[endpoint] = ScanRow(len(job.rows), update.device)
                elif update.kind == "report" and update.report is not None:
                    row = job.rows.setdefault(endpoint, ScanRow(len(job.rows), update.device))
                    row.report = update.report
                    if update.report.mac:
                        known = await self.gateway.read(self.onboarding.known_cameras, principal,
                                                        [update.report.mac])
                        row.known_camera_id = known.get(update.report.mac)
                if job.state == "discovering" and (self.clock.monotonic_us()
                                                   - job.started_mono_us) > job.timeout_s * 1e6:
                    job.state = "interrogating"
            job.state = "done"
        except DiscoveryTargetError as exc:
            job.state, job.error = "failed", str(exc)
        except asyncio.CancelledError:
            job.state = "cancelled"
            raise
        except Exception as exc:  # a scan must end in a state the page can show
            log.exception("discovery job %s failed", job.id)
            job.state, job.error = "failed", f"the scan failed: {type(exc).__name__}: {exc}"
        finally:
            job.finished_us = self.clock.now_us()
            log.info("discovery job %s: %s, %d device(s)", job.id, job.state, len(job.rows))

    async def thumbnail(self, job: ScanJob, index: int | None) -> bytes:
        """A JPEG from the device at ``index`` in ``job``, fetched once with the scan's
        credentials (:class:`ScanJobNotFound` while that device has no report yet)."""
        row = next((r for r in job.rows.values() if r.index == index), None)
        if row is None or row.report is None:
            raise ScanJobNotFound("no such device in this scan (yet)")
        if row.thumbnail is None:
            row.thumbnail = await snapshot_of(
                row.report, job.username, job.password, timeout_s=5.0,
                allowed_hosts=self.onboarding.snapshot_hosts_allowed)
        return row.thumbnail

    async def stop(self) -> None:
        tasks = [j.task for j in self.jobs.values() if j.task is not None and not j.task.done()]
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
