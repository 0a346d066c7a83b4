"""Reconciliation of the segment index with the files on the storage volumes, both ways.

Run at recorder start-up (before any ffmpeg starts) and by ``vms check [--repair]``. It finishes
interrupted deletions (``PendingDeletion`` rows), indexes segment files that have no row — the file
a killed ffmpeg was writing is probed and indexed with its true playable duration as ``partial``, an
unplayable one is moved to ``<volume>/lost+found/``; in a cluster, one whose time another node's
lease or indexed footage already covers is refused and moved there too
(:func:`recorder.index.adoption_problem`: no time range of a camera is ever indexed twice) — marks
rows whose file vanished ``missing`` (and back to ``ok`` when it reappears), and closes runs left
open by a crash with end reason ``crash_recovered`` at the end of their last segment. A volume that
is not usable (no marker of this database: not mounted, foreign, unreadable —
:mod:`recorder.volumes`) is skipped and named in the report: its rows are not marked missing and its
pending deletions wait (the default volume inside ``data_dir`` is marked by the server's first
start, and is walked before that). A file is attached to a run only when its path proves it: the
camera uuid and run uuid it is named by must both match one ``Run`` row (of that stream). Anything
else — a name in another layout (the id-based one of old releases included), a run or camera no row
knows, or one whose uuids disagree — is moved to ``<volume>/quarantine/`` and reported; quarantined
files are never indexed nor served, and every check lists them until a person deals with them.
Unindexed files of an event-mode run are ring-buffer leftovers no event asked for: they are deleted.
Without ``repair`` it only reports.
Synchronous: call it from a thread (it uses the gateway's ``*_sync`` helpers).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import peewee as pw

from recorder import index
from recorder.segments import (
    fsync_path,
    iter_quarantined,
    iter_segment_files,
    move_to_lost_and_found,
    move_to_quarantine,
    parse_segment_path,
    probe_segment,
    volume_by_name,
)
from recorder.volumes import check_volume, database_uuid
from vms.clock import Clock
from vms.config import Settings
from vms.db.gateway import Gateway
from vms.db.models import Camera, PendingDeletion, Run, Segment

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    """What reconciliation found (and, with ``repair``, did). Paths are ``volume:relative``."""

    repair: bool
    adopted: list[str] = field(default_factory=list)
    """Files without a row that were (or would be) indexed."""
    lost_and_found: list[str] = field(default_factory=list)
    """Unplayable or refused files moved (or to be moved) aside."""
    refused: list[str] = field(default_factory=list)
    """A cluster: unindexed files not adopted because their time is another node's (its lease
    was taken before the file's end, or footage of another run covers it), with the reason; they
    are in ``lost_and_found`` too."""
    quarantined: list[str] = field(default_factory=list)
    """Files no row can be proven to own (unknown or mismatched uuids, another layout): moved
    (or to be moved) to ``<volume>/quarantine/``."""
    in_quarantine: list[str] = field(default_factory=list)
    """Every file in a quarantine folder after this pass (not a problem in itself: a person
    decides what they are)."""
    missing: list[str] = field(default_factory=list)
    """Rows whose file is gone (marked ``missing``)."""
    restored: list[str] = field(default_factory=list)
    """Rows marked ``missing`` whose file is back (marked ``ok``)."""
    deletions_completed: int = 0
    runs_closed: list[int] = field(default_factory=list)
    ring_discarded: list[str] = field(default_factory=list)
    """Unindexed ring-buffer files of event-mode runs (deleted)."""
    excluded_runs: list[int] = field(default_factory=list)
    """Open runs left alone because a running server is recording them."""
    volumes_skipped: list[str] = field(default_factory=list)
    """Volumes not usable (unmarked — e.g. not mounted —, foreign, unreadable): why. Their files
    are not walked and their rows are not marked ``missing``: a disk that is not mounted has not
    lost its recordings."""
    volumes: list[dict[str, object]] = field(default_factory=list)
    """Per volume, after this pass: ``index_bytes`` (the indexed segments whose file should be
    there), ``disk_bytes`` (the segment files found) and ``drift_bytes`` (disk − index); files and
    rows of excluded runs left out. Drift is reported, not counted as a problem: the findings
    above explain it."""

    @property
    def problems(self) -> int:
        return (len(self.adopted) + len(self.lost_and_found) + len(self.quarantined)
                + len(self.missing) + len(self.restored) + self.deletions_completed
                + len(self.runs_closed) + len(self.ring_discarded))

    def summary(self) -> str:
        return (f"{len(self.adopted)} adopted, {len(self.lost_and_found)} moved to lost+found, "
                f"{len(self.quarantined)} quarantined, {len(self.missing)} missing, "
                f"{len(self.restored)} restored, {self.deletions_completed} deletions completed, "
                f"{len(self.runs_closed)} open runs closed, "
                f"{len(self.ring_discarded)} ring-buffer files discarded")

    def as_dict(self) -> dict[str, object]:
        return {
            "repair": self.repair, "adopted": self.adopted, "lost_and_found": self.lost_and_found,
            "refused": self.refused, "quarantined": self.quarantined, "in_quarantine": self.in_quarantine,
            "missing": self.missing, "restored": self.restored,
            "deletions_completed": self.deletions_completed, "runs_closed": self.runs_closed,
            "ring_discarded": self.ring_discarded, "excluded_runs": self.excluded_runs,
            "volumes_skipped": self.volumes_skipped, "volumes": self.volumes,
            "problems": self.problems,
        }


def reconcile(gateway: Gateway, settings: Settings, clock: Clock, repair: bool, *,
              exclude_run_ids: frozenset[int] = frozenset()) -> ReconcileReport:
    """Compare index and disk; fix what can be fixed when ``repair``. See the module docstring.

    ``exclude_run_ids``: runs being recorded right now (their files are in flux); leave them alone.
    """
    report = ReconcileReport(repair=repair, excluded_runs=sorted(exclude_run_ids))
    db_uuid = gateway.write_sync(database_uuid)
    skipped: set[str] = set()
    for volume in settings.volumes:
        health = check_volume(volume, db_uuid)
        if not health.ok and not (volume.implicit and health.state == "unmarked"):
            skipped.add(volume.name)
            report.volumes_skipped.append(health.message)
            log.warning("reconcile: skipping %s", health.message)
    _finish_deletions(gateway, settings, report, skipped)

    rows: dict[tuple[str, str], tuple[int, str]] = dict(gateway.read_sync(lambda: {
        (s.volume, s.path): (s.id, s.state)
        for s in Segment.select(Segment.id, Segment.volume, Segment.path, Segment.state)}))

    seen: set[tuple[str, str]] = set()
    for volume in settings.volumes:
        if volume.name in skipped:
            continue
        for rel in iter_segment_files(volume):
            key = (volume.name, rel)
            seen.add(key)
            if key in rows:
                seg_id, state = rows[key]
                if state == "missing":
                    report.restored.append(f"{volume.name}:{rel}")
                    if repair:
                        gateway.write_sync(lambda i=seg_id: Segment.update(state="ok").where(
                            Segment.id == i).execute())
                continue
            _adopt(gateway, settings, volume.name, rel, repair, report, exclude_run_ids)

    for (vol_name, rel), (seg_id, state) in rows.items():
        if (vol_name, rel) in seen or state == "missing" or vol_name in skipped:
            continue
        vol = volume_by_name(settings, vol_name)
        if vol is None and settings.clustered:
            continue  # another node's volume: its files are that node's to check
        if vol is not None and (vol.path / rel).exists():
            continue
        report.missing.append(f"{vol_name}:{rel}")
        if repair:
            gateway.write_sync(lambda i=seg_id: Segment.update(state="missing").where(
                Segment.id == i).execute())

    _close_open_runs(gateway, repair, report, exclude_run_ids,
                     settings.node_name if settings.clustered else None)
    for volume in settings.volumes:
        if volume.name in skipped:
            continue
        report.in_quarantine += [f"{volume.name}:{rel}" for rel in iter_quarantined(volume)]
    report.volumes = volume_drift(gateway, settings, exclude_run_ids, skipped)
    refused = {line.split(": ", 1)[0] for line in report.refused}
    for line in report.lost_and_found:
        if line in refused:
            continue  # logged with its reason
        log.warning("reconcile: unplayable segment %s %s", line,
                    "moved to lost+found" if repair else "(would be moved to lost+found)")
    for line in report.quarantined:
        log.warning("reconcile: file %s belongs to no known camera and run %s", line,
                    "; moved to quarantine" if repair else "(would be moved to quarantine)")
    if report.problems:
        log.info("reconcile (%s): %s", "repair" if repair else "check only", report.summary())
    return report


def volume_drift(gateway: Gateway, settings: Settings,
                 exclude_run_ids: frozenset[int] = frozenset(),
                 skipped: set[str] | frozenset[str] = frozenset()) -> list[dict[str, object]]:
    """Bytes per volume as the index counts them (rows not ``missing``) against the bytes of the
    segment files on disk, leaving out the runs in ``exclude_run_ids`` (being written now) and the
    volumes in ``skipped`` (not usable: not walked)."""

    def load() -> tuple[dict[str, int], set[str]]:
        query = (Segment.select(Segment.volume, pw.fn.SUM(Segment.size_bytes))
                 .where((Segment.state != "missing")
                        & Segment.run.not_in(list(exclude_run_ids) or [0]))
                 .group_by(Segment.volume).tuples())
        excluded = {r.uuid for r in Run.select(Run.uuid).where(Run.id.in_(list(exclude_run_ids)))}
        return {name: int(total or 0) for name, total in query}, excluded

    indexed, excluded_uuids = gateway.read_sync(load)
    out: list[dict[str, object]] = []
    for volume in settings.volumes:
        if volume.name in skipped:
            continue
        disk = 0
        for rel in iter_segment_files(volume):
            place = parse_segment_path(rel)
            if place is not None and place.run_uuid in excluded_uuids:
                continue
            try:
                disk += (volume.path / rel).stat().st_size
            except FileNotFoundError:  # deleted while we looked
                continue
        index_bytes = indexed.get(volume.name, 0)
        out.append({"name": volume.name, "index_bytes": index_bytes, "disk_bytes": disk,
                    "drift_bytes": disk - index_bytes})
    return out


def _finish_deletions(gateway: Gateway, settings: Settings, report: ReconcileReport,
                      skipped: set[str]) -> None:
    pending = gateway.read_sync(lambda: list(PendingDeletion.select().order_by(PendingDeletion.id)))
    for item in pending:
        if item.volume in skipped:  # finished once the disk is back
            continue
        report.deletions_completed += 1
        if not report.repair:
            continue
        vol = volume_by_name(settings, item.volume)
        if vol is not None:
            (vol.path / item.path).unlink(missing_ok=True)

        def finish(item: PendingDeletion = item) -> None:
            if item.segment_id is not None:
                Segment.delete().where(Segment.id == item.segment_id).execute()
            PendingDeletion.delete().where(PendingDeletion.id == item.id).execute()

        gateway.write_sync(finish)


def _adopt(gateway: Gateway, settings: Settings, vol_name: str, rel: str, repair: bool,
           report: ReconcileReport, exclude_run_ids: frozenset[int]) -> None:
    label = f"{vol_name}:{rel}"
    volume = volume_by_name(settings, vol_name)
    assert volume is not None
    place = parse_segment_path(rel)
    run: Run | None = None
    if place is not None:
        run = gateway.read_sync(lambda: Run.select(Run, Camera).join(Camera)
                                .where(Run.uuid == place.run_uuid).first())
        if run is not None and run.id in exclude_run_ids:
            return
    if place is None or run is None or run.camera.uuid != place.camera_uuid \
            or run.stream != place.stream:
        # Nothing proves whose footage this is: never index it under a guess.
        report.quarantined.append(label)
        if repair:
            move_to_quarantine(volume, rel)
        return
    if run.mode == "event":
        report.ring_discarded.append(label)
        if repair:
            (volume.path / rel).unlink(missing_ok=True)
        return
    probe = probe_segment(volume.path / rel)
    if not probe.playable:
        report.lost_and_found.append(label)
        if repair:
            move_to_lost_and_found(volume, rel)
        return

    def previous_end() -> int:
        """End of the run's indexed segment just before this file's sequence number."""
        best_seq, best_end = -1, run.start_us
        for seg in Segment.select(Segment.path, Segment.end_us).where(Segment.run == run.id):
            other = parse_segment_path(seg.path)
            if other is not None and best_seq < other.seq < place.seq:
                best_seq, best_end = other.seq, seg.end_us
        return int(best_end)

    start_us = gateway.read_sync(previous_end)  # (a guess for a check-only pass, too)
    row = index.SegmentRow(
        camera_id=run.camera_id, stream=place.stream, run_id=run.id, volume=vol_name, path=rel,
        start_us=start_us, end_us=start_us + probe.duration_us, size_bytes=probe.size_bytes,
        video_codec=probe.video_codec, audio_codec=probe.audio_codec, width=probe.width,
        height=probe.height, state="partial",
    )
    if settings.clustered:  # no fence for a dead run's files: the index itself is checked
        problem = gateway.write_sync(index.adoption_problem, row, run.node) if not repair \
            else None
        if repair:
            fsync_path(Path(volume.path / rel))
            try:
                outcome = gateway.write_sync(index.adopt_segment, row, run.node)
            except pw.IntegrityError as exc:
                outcome = f"it could not be indexed ({exc})"
            problem = outcome if isinstance(outcome, str) else None
        if problem is not None:
            report.refused.append(f"{label}: {problem}")
            report.lost_and_found.append(label)
            log.warning("reconcile: segment %s of run %s (node %s) refused: %s; %s", label,
                        run.id, run.node or "-", problem,
                        "moved to lost+found" if repair else "(would be moved to lost+found)")
            if repair:
                move_to_lost_and_found(volume, rel)
            return
        report.adopted.append(label)
        return
    report.adopted.append(label)
    if not repair:
        return
    fsync_path(Path(volume.path / rel))
    try:
        gateway.write_sync(index.insert_segment, row)
    except pw.IntegrityError as exc:  # e.g. the run's camera was deleted meanwhile
        log.warning("reconcile: %s could not be indexed (%s); quarantined", label, exc)
        report.adopted.remove(label)
        report.quarantined.append(label)
        move_to_quarantine(volume, rel)


def _close_open_runs(gateway: Gateway, repair: bool, report: ReconcileReport,
                     exclude_run_ids: frozenset[int], node: str | None = None) -> None:
    """Close runs left open by a crash; in a cluster (``node``), only this node's runs."""
    def load() -> list[tuple[int, int, int | None]]:
        last_end = pw.fn.MAX(Segment.end_us)
        # a run of '' predates the cluster (or a recorder without leases): anyone may close it
        mine = Run.node.in_([node, ""]) if node is not None else pw.SQL("1 = 1")
        query = (Run.select(Run.id, Run.start_us, last_end.alias("last_end"))
                 .join(Segment, pw.JOIN.LEFT_OUTER, on=(Segment.run == Run.id))
                 .where(Run.end_us.is_null() & mine).group_by(Run.id, Run.start_us))
        return [(r.id, r.start_us, r.last_end) for r in query]

    for run_id, start_us, last_end in gateway.read_sync(load):
        if run_id in exclude_run_ids:
            continue
        report.runs_closed.append(run_id)
        if repair:
            gateway.write_sync(index.close_run, run_id, last_end if last_end is not None
                               else start_us, "crash_recovered")
