"""Retention: deleting expired and surplus footage, crash-safely, without touching evidence.

:class:`Purger` (synchronous: call it from a thread) decides and deletes:

- **age** — per camera stream, footage that ended more than the policy's days ago
  (:mod:`vms.retention`): ``continuous`` segments after ``continuous_days``, ``event`` segments
  (inside an event's keep window, marked by the recorder) after ``max(event_days,
  continuous_days)``;
- **byte_cap** — the oldest footage of a camera whose recordings exceed its ``max_bytes``;
- **space** — the oldest footage of a volume whose free space (or ``max_bytes`` cap) is short of
  its floor plus ~15 minutes of writing at its measured rate (:meth:`Purger.space_check`);
- **export_expired** — finished exports older than ``exports_days`` (file and manifest; the row
  becomes ``expired``).

Nothing is deleted that overlaps an evidence hold (``Hold``) of its camera, or lies in the range
of a finished, unexpired export of its camera; an export is not expired while a hold overlaps it.

Every deletion goes in chunks (:data:`CHUNK` segments): one short write transaction selects the
chunk, writes a ``PendingDeletion`` row per segment, records the purged time (``PurgedRange``,
which the timeline answers as a ``retention`` gap) and the audit record (``retention.purge``) —
the decision; then the files are unlinked and their folders fsynced; then a second short
transaction deletes the segment and pending rows. A crash anywhere rolls forward: the next pass
(or start-up reconciliation) finishes the pending rows, so no file outlives its row and no row
outlives its file. Day folders older than yesterday left empty are removed.

The protections (holds, exports) are query terms of recorder/retention_protect.py; the purged time
is recorded by recorder/purged_ranges.py; the threads that watch each volume's space and the
service the composition root holds are in recorder/retention_service.py.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import peewee as pw
from prometheus_client import CollectorRegistry, Counter

from recorder.purge import delete_ids, insert_pending, lock_claims, unlink_files
from recorder.purged_ranges import record_ranges
from recorder.retention_protect import export_held, export_ranges, not_exported, unprotected
from recorder.segments import fsync_dir, volume_by_name
from recorder.volumes import check_volume, database_uuid
from vms import audit
from vms.clock import Clock, us_to_datetime
from vms.config import Settings, Volume
from vms.db import models as m
from vms.db.gateway import Gateway
from vms.retention import US_PER_DAY, Policy, all_policies

log = logging.getLogger(__name__)

CHUNK = 1_000
"""Segments marked, unlinked and forgotten per step (each transaction stays short)."""
REASONS = ("age", "space", "byte_cap", "export_expired")
AUDIT_ACTION = "retention.purge"
STAGES = ("marked", "unlinked", "deleted")
"""Points of a chunk's deletion at which :attr:`Purger.checkpoint` is called."""


@dataclass(frozen=True)
class RetentionOptions:
    """Timing knobs (tests shorten them)."""

    interval_s: float = 600.0
    """The scheduled pass (APScheduler job ``retention``)."""
    first_run_s: float = 60.0
    """Delay of the first scheduled pass after start-up."""
    check_s: float = 5.0
    """How often each volume's watcher looks at its free space."""
    horizon_s: float = 900.0
    """Free space kept for this long of writing at the volume's measured rate."""
    rate_window_s: float = 600.0
    """The write rate is the bytes indexed on the volume over this window."""
    margin_fraction: float = 0.25
    """A space purge frees this much more than the shortfall (of the horizon), so it does not
    run again at the next check."""
    min_margin_bytes: int = 1024 * 1024
    pause_ratio: float = 1.0
    """After each chunk of a scheduled purge (not a space purge: that one is urgent), rest this
    many times as long as the chunk took, so a big purge leaves the CPU and the database to the
    server's requests half the time."""


@dataclass
class PurgeTotals:
    segments: int = 0
    bytes: int = 0


@dataclass
class PurgeReport:
    """What one pass (or one space purge) deleted, by reason."""

    by_reason: dict[str, PurgeTotals] = field(default_factory=dict)
    exports_expired: list[int] = field(default_factory=list)
    pending_finished: int = 0

    def add(self, reason: str, segments: int, size_bytes: int) -> None:
        totals = self.by_reason.setdefault(reason, PurgeTotals())
        totals.segments += segments
        totals.bytes += size_bytes

    def as_dict(self) -> dict[str, Any]:
        return {"deleted": {r: {"segments": t.segments, "bytes": t.bytes}
                            for r, t in sorted(self.by_reason.items())},
                "exports_expired": self.exports_expired,
                "pending_finished": self.pending_finished}


class RetentionMetrics:
    """``vms_retention_deleted_bytes_total{reason}`` and
    ``vms_retention_deleted_segments_total{reason}``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deleted_bytes = Counter("vms_retention_deleted_bytes",
                                     "Bytes of recordings and exports deleted by retention",
                                     ["reason"], registry=registry)
        self.deleted_segments = Counter("vms_retention_deleted_segments",
                                        "Recorded segments deleted by retention", ["reason"],
                                        registry=registry)
        for reason in REASONS:
            self.deleted_bytes.labels(reason)
            self.deleted_segments.labels(reason)

    def count(self, reason: str, segments: int, size_bytes: int) -> None:
        self.deleted_bytes.labels(reason).inc(size_bytes)
        self.deleted_segments.labels(reason).inc(segments)


@dataclass(frozen=True)
class _Claimed:
    id: int
    camera_id: int
    stream: str
    volume: str
    path: str
    start_us: int
    end_us: int
    size_bytes: int


_COLUMNS = (m.Segment.id, m.Segment.camera, m.Segment.stream, m.Segment.volume, m.Segment.path,
            m.Segment.start_us, m.Segment.end_us, m.Segment.size_bytes)


class Purger:
    """Deletes what retention says; see the module docstring. Thread-safe: several threads (the
    scheduled pass, the volume watchers) may purge at once; a segment is claimed once."""

    def __init__(self, gateway: Gateway, settings: Settings, clock: Clock, *,
                 metrics: RetentionMetrics | None = None, chunk: int = CHUNK,
                 options: RetentionOptions | None = None,
                 checkpoint: Callable[[str], None] | None = None) -> None:
        self.gw = gateway
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self.chunk = chunk
        self.options = options or RetentionOptions()
        self.checkpoint = checkpoint
        """Called with each of :data:`STAGES` after that step of a chunk (crash tests stop the
        process there); None in service."""
        self.stop_event = threading.Event()
        """Set at shutdown: the purge stops between chunks (a chunk is never left half done
        without its pending rows)."""
        self._blocked: set[str] = set()
        """Volumes short of space with nothing deletable left (logged once until it changes)."""
        self._db_uuid: str | None = None
        self._unusable: frozenset[str] = frozenset()
        """Volumes not usable at the last check (unmarked — e.g. a disk not mounted —, foreign,
        unreadable): nothing on them is deleted, no pending deletion there is finished, so a disk
        that is not mounted never loses its index rows (reconcile leaves them alone too)."""

    def refresh_volumes(self) -> frozenset[str]:
        """Check every configured volume's marker (blocking: a purge thread) and remember the
        ones not usable; returns them."""
        if self._db_uuid is None:
            self._db_uuid = self.gw.write_sync(database_uuid)
        bad = set()
        for volume in self.settings.volumes:
            health = check_volume(volume, self._db_uuid)
            if not health.ok:
                bad.add(volume.name)
                if volume.name not in self._unusable:
                    log.warning("retention: skipping %s", health.message)
        self._unusable = frozenset(bad)
        return self._unusable

    def _usable(self) -> pw.Node:
        """Segments on usable volumes only (see :attr:`_unusable`); in a cluster, only on this
        node's own volumes (another node's footage is that node's to delete)."""
        if self.settings.clustered:
            mine = [v.name for v in self.settings.volumes if v.name not in self._unusable]
            return m.Segment.volume.in_(mine or [""])
        if not self._unusable:
            return pw.SQL("1 = 1")
        return m.Segment.volume.not_in(sorted(self._unusable))

    # -- the scheduled pass ------------------------------------------------------------------

    def run_pass(self) -> PurgeReport:
        """Finish interrupted deletions, expire exports, then the age and byte-cap purges of
        every camera."""
        report = PurgeReport()
        self.refresh_volumes()
        report.pending_finished = self.finish_pending()
        report.exports_expired = self.expire_exports(report)
        policies = self.gw.read_sync(all_policies, self.settings.retention)
        streams: list[tuple[int, str]] = self.gw.read_sync(lambda: list(
            m.Run.select(m.Run.camera, m.Run.stream).distinct().tuples()))
        now_us = self.clock.now_us()
        for camera_id, stream in sorted(streams):
            policy = policies.get(camera_id)
            if self.stop_event.is_set():
                return report
            if policy is not None:
                self.purge_age(camera_id, stream, policy, now_us, report)
        for camera_id, policy in sorted(policies.items()):
            if policy.max_bytes is not None and not self.stop_event.is_set():
                self.purge_byte_cap(camera_id, policy.max_bytes, report)
        if report.by_reason or report.exports_expired:
            log.info("retention: %s", report.as_dict())
        return report

    def purge_age(self, camera_id: int, stream: str, policy: Policy, now_us: int,
                  report: PurgeReport) -> None:
        cont_cut = policy.continuous_cutoff_us(now_us)
        event_cut = policy.event_cutoff_us(now_us)
        if cont_cut is None:
            return
        expired = (m.Segment.kind != "event") & (m.Segment.end_us <= cont_cut)
        if event_cut is not None:
            expired = expired | (m.Segment.end_us <= event_cut)

        def select(limit: int) -> list[_Claimed]:
            exports = export_ranges(self.clock.now_us())
            where = ((m.Segment.camera == camera_id) & (m.Segment.stream == stream)
                     & (m.Segment.start_us < cont_cut) & expired & unprotected()
                     & self._usable())
            extra = not_exported(exports, camera_id)
            if extra is not None:
                where = where & extra
            return self._rows(m.Segment.select(*_COLUMNS).where(where)
                              .order_by(m.Segment.start_us).limit(limit))

        while not self.stop_event.is_set() and self._purge_chunk("age", select, report, None):
            pass

    def purge_byte_cap(self, camera_id: int, max_bytes: int, report: PurgeReport) -> None:
        used = int(self.gw.read_sync(lambda: m.Segment.select(
            pw.fn.COALESCE(pw.fn.SUM(m.Segment.size_bytes), 0))
            .where(m.Segment.camera == camera_id).scalar()) or 0)
        if used > max_bytes:
            self.free_bytes("byte_cap", used - max_bytes, report, camera_id=camera_id)

    def free_bytes(self, reason: str, need_bytes: int, report: PurgeReport, *,
                   camera_id: int | None = None, volume: str | None = None) -> int:
        """Delete the oldest unprotected footage of a camera or a volume until ``need_bytes``
        are freed (or nothing deletable is left); the bytes freed."""
        freed = 0
        while freed < need_bytes and not self.stop_event.is_set():
            remaining = need_bytes - freed

            def select(limit: int, remaining: int = remaining) -> list[_Claimed]:
                exports = export_ranges(self.clock.now_us())
                where = unprotected() & self._usable()
                if camera_id is not None:
                    where = where & (m.Segment.camera == camera_id)
                if volume is not None:
                    where = where & (m.Segment.volume == volume)
                extra = not_exported(exports)
                if extra is not None:
                    where = where & extra
                order = (m.Segment.start_us, m.Segment.id)
                rows = self._rows(m.Segment.select(*_COLUMNS).where(where)
                                  .order_by(*order).limit(limit))
                taken, total = [], 0
                for row in rows:
                    if total >= remaining:
                        break
                    taken.append(row)
                    total += row.size_bytes
                return taken

            got = self._purge_chunk(reason, select, report, volume)
            if not got:
                break
            freed += got
        return freed

    # -- one chunk ---------------------------------------------------------------------------

    @staticmethod
    def _rows(query: pw.SelectQuery) -> list[_Claimed]:
        """The driver's rows, without peewee's per-value conversion (all ints and strings)."""
        return [_Claimed(*row) for row in query.model._meta.database.execute(query).fetchall()]

    def _purge_chunk(self, reason: str, select: Callable[[int], list[_Claimed]],
                     report: PurgeReport, volume_label: str | None) -> int:
        """Mark → unlink → fsync → forget one chunk; the bytes deleted (0: nothing to do)."""

        def mark() -> list[_Claimed]:
            lock_claims()
            rows = select(self.chunk)
            if not rows:
                return []
            now_us = self.clock.now_us()
            insert_pending([(r.volume, r.path, r.id, now_us) for r in rows])
            record_ranges([(r.camera_id, r.stream, r.id, r.start_us, r.end_us) for r in rows])
            by_volume: dict[str, list[_Claimed]] = {}
            for r in rows:
                by_volume.setdefault(r.volume, []).append(r)
            for vol, items in sorted(by_volume.items()):
                audit.record(self.clock, AUDIT_ACTION, username="retention", target=vol,
                             detail={"reason": reason, "volume": vol, "segments": len(items),
                                     "bytes": sum(i.size_bytes for i in items),
                                     "cameras": sorted({i.camera_id for i in items})})
            return rows

        started = time.monotonic()
        rows = self.gw.write_blocking(mark)
        if not rows:
            return 0
        self._stage("marked")
        self._unlink([(r.volume, r.path) for r in rows])
        self._stage("unlinked")
        ids = [r.id for r in rows]

        def forget() -> None:
            delete_ids("segment", "id", ids)
            delete_ids("pending_deletion", "segment_id", ids)

        self.gw.write_blocking(forget)
        self._stage("deleted")
        size = sum(r.size_bytes for r in rows)
        report.add(reason, len(rows), size)
        if self.metrics is not None:
            self.metrics.count(reason, len(rows), size)
        self._remove_empty_days({(r.volume, os.path.dirname(r.path)) for r in rows})
        if reason != "space" and self.options.pause_ratio > 0:
            self.stop_event.wait((time.monotonic() - started) * self.options.pause_ratio)
        log.debug("retention (%s%s): %s segments, %s bytes deleted", reason,
                  f", volume {volume_label!r}" if volume_label else "", len(rows), size)
        return max(size, 1)

    def _stage(self, stage: str) -> None:
        if self.checkpoint is not None:
            self.checkpoint(stage)

    def _unlink(self, files: list[tuple[str, str]]) -> None:
        unlink_files(self.settings, files)

    def _remove_empty_days(self, folders: set[tuple[str, str]]) -> None:
        """Remove ``<camera>/<day>/<stream>`` folders (and their day folder) left empty, for days
        before yesterday (a live run may still be writing into today's or yesterday's)."""
        yesterday = us_to_datetime(self.clock.now_us() - US_PER_DAY).strftime("%Y-%m-%d")
        parents: set[Path] = set()
        for vol_name, rel_dir in folders:
            volume = volume_by_name(self.settings, vol_name)
            parts = Path(rel_dir).parts
            if volume is None or len(parts) != 3 or parts[1] >= yesterday:
                continue
            stream_dir = volume.path / rel_dir
            for folder in (stream_dir, stream_dir.parent):
                try:
                    folder.rmdir()
                except OSError:  # not empty (or gone): keep it
                    break
                parents.add(folder.parent)
        for parent in parents:
            with contextlib.suppress(OSError):
                fsync_dir(parent)

    # -- interrupted deletions ---------------------------------------------------------------

    def finish_pending(self) -> int:
        """Finish deletions a crash interrupted (their rows are marked): unlink, fsync, forget.
        The number finished."""
        done = 0
        last_id = 0
        while True:
            rows: list[tuple[int, str, str, int | None]] = self.gw.read_sync(lambda: list(
                m.PendingDeletion.select(m.PendingDeletion.id, m.PendingDeletion.volume,
                                         m.PendingDeletion.path, m.PendingDeletion.segment_id)
                .where(m.PendingDeletion.id > last_id)  # noqa: B023 - read at once
                .where(m.PendingDeletion.volume.not_in(sorted(self._unusable) or [""]))
                .where(m.PendingDeletion.volume.in_([v.name for v in self.settings.volumes])
                       if self.settings.clustered else pw.SQL("1 = 1"))
                .order_by(m.PendingDeletion.id).limit(self.chunk).tuples()))
            if not rows:
                return done
            self._unlink([(vol, rel) for _, vol, rel, _ in rows])
            pending_ids = [r[0] for r in rows]
            segment_ids = [r[3] for r in rows if r[3] is not None]

            def forget(pending_ids: list[int] = pending_ids,
                       segment_ids: list[int] = segment_ids) -> None:
                if segment_ids:
                    m.Segment.delete().where(m.Segment.id.in_(segment_ids)).execute()
                m.PendingDeletion.delete().where(m.PendingDeletion.id.in_(pending_ids)).execute()

            self.gw.write_blocking(forget)
            done += len(rows)
            last_id = pending_ids[-1]
            log.warning("retention: finished %s interrupted deletions", len(rows))

    # -- exports -----------------------------------------------------------------------------

    def expire_exports(self, report: PurgeReport) -> list[int]:
        """Finished exports older than ``exports_days`` and not held: their files and manifests
        deleted, their rows ``expired``. The ids expired."""
        days = self.settings.retention.exports_days
        folder = self.settings.data_dir / "exports"
        if days:
            cutoff = self.clock.now_us() - days * US_PER_DAY
            candidates = self.gw.read_sync(lambda: list(
                m.Export.select(m.Export.id).where((m.Export.state == "done")
                                                   & (m.Export.finished_us <= cutoff)).tuples()))
            sizes = {eid: sum(p.stat().st_size for p in _export_files(folder, eid) if p.exists())
                     for (eid,) in candidates}

            def mark() -> list[int]:
                expired = []
                for export in m.Export.select().where(m.Export.id.in_(list(sizes))
                                                      & (m.Export.state == "done")):
                    if export_held(export):
                        continue
                    m.Export.update(state="expired").where(m.Export.id == export.id).execute()
                    audit.record(self.clock, AUDIT_ACTION, username="retention",
                                 target=f"export {export.id}",
                                 detail={"reason": "export_expired", "volume": "exports",
                                         "segments": 0, "bytes": sizes[export.id],
                                         "export_id": export.id})
                    expired.append(export.id)
                return expired

            expired: list[int] = self.gw.write_blocking(mark) if sizes else []
            for eid in expired:
                report.add("export_expired", 0, sizes[eid])
                if self.metrics is not None:
                    self.metrics.count("export_expired", 0, sizes[eid])
        else:
            expired = []
        # files of expired exports still on disk (this pass's, or a pass that crashed)
        leftovers: list[int] = self.gw.read_sync(lambda: [eid for (eid,) in m.Export.select(
            m.Export.id).where((m.Export.state == "expired") & (m.Export.path != "")).tuples()])
        for eid in leftovers:
            for path in _export_files(folder, eid):
                path.unlink(missing_ok=True)
        if leftovers:
            with contextlib.suppress(OSError):
                fsync_dir(folder)
            self.gw.write_blocking(lambda: m.Export.update(path="").where(
                m.Export.id.in_(leftovers)).execute())
        return expired

    # -- space -------------------------------------------------------------------------------

    def write_rate(self, volume: Volume) -> float:
        """Bytes a second written to ``volume`` lately: the segments indexed there over
        ``rate_window_s`` (by their start)."""
        window_us = int(self.options.rate_window_s * 1e6)
        since = self.clock.now_us() - window_us
        total = self.gw.read_sync(lambda: m.Segment.select(
            pw.fn.COALESCE(pw.fn.SUM(m.Segment.size_bytes), 0))
            .where((m.Segment.volume == volume.name) & (m.Segment.start_us >= since)).scalar())
        return int(total or 0) / self.options.rate_window_s

    def space_check(self, volume: Volume) -> SpaceCheck:
        """How short ``volume`` is of its floor plus the write horizon (file system free space,
        and its ``max_bytes`` cap against the index). Blocking: reads the file system."""
        usage = shutil.disk_usage(volume.path)
        rate = self.write_rate(volume)
        horizon = int(rate * self.options.horizon_s)
        floor = volume.floor_bytes(usage.total)
        short = floor + horizon - usage.free
        used = None
        if volume.max_bytes:
            used = int(self.gw.read_sync(lambda: m.Segment.select(
                pw.fn.COALESCE(pw.fn.SUM(m.Segment.size_bytes), 0))
                .where(m.Segment.volume == volume.name).scalar()) or 0)
            short = max(short, used + horizon - volume.max_bytes)
        return SpaceCheck(volume.name, usage.free, usage.total, floor, rate, horizon, used,
                          max(0, short))

    def purge_space(self, volume: Volume, check: SpaceCheck | None = None) -> PurgeReport:
        """Free ``volume`` until it is no longer short (plus a margin): oldest footage first."""
        report = PurgeReport()
        if volume.name in self.refresh_volumes():
            return report
        check = check or self.space_check(volume)
        if check.short_bytes <= 0:
            return report
        margin = max(int(check.horizon_bytes * self.options.margin_fraction),
                     self.options.min_margin_bytes)
        freed = self.free_bytes("space", check.short_bytes + margin, report, volume=volume.name)
        if freed < check.short_bytes:
            if volume.name in self._blocked:
                return report
            self._blocked.add(volume.name)
            log.error("volume %r: %s bytes short of its floor and write horizon, but only %s "
                      "bytes could be deleted (the rest is held or exported)", volume.name,
                      check.short_bytes, freed)
        else:
            self._blocked.discard(volume.name)
            log.warning("volume %r: %s bytes free, %s needed (floor %s + %.0f s of writing at "
                        "%.0f B/s): deleted %s bytes of its oldest footage", volume.name,
                        check.free_bytes, check.floor_bytes + check.horizon_bytes,
                        check.floor_bytes, self.options.horizon_s, check.rate_bytes_s, freed)
        return report


@dataclass(frozen=True)
class SpaceCheck:
    volume: str
    free_bytes: int
    total_bytes: int
    floor_bytes: int
    rate_bytes_s: float
    horizon_bytes: int
    used_bytes: int | None
    """Bytes indexed on the volume (only computed when it has a ``max_bytes`` cap)."""
    short_bytes: int
    """How much must be freed (0: enough room)."""


def _export_files(folder: Path, export_id: int) -> list[Path]:
    return [folder / f"export-{export_id}.{ext}" for ext in ("mp4", "zip", "manifest.json")]
