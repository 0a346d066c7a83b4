"""Deleting a removed camera's recordings, crash-safely, when a person explicitly asks for it.

A removed camera is archived (``Camera.archived_us``) and its recordings are kept; this module is
the other, explicit path (``vms camera remove --delete-recordings``, ``DELETE
/api/v1/cameras/{id}?delete_recordings=true``). It refuses a camera that is still in service or
whose footage an evidence hold protects. Otherwise every segment gets a ``PendingDeletion`` row in
the same transaction that removes nothing else, then each file is unlinked and its rows deleted;
a crash anywhere leaves pending rows that start-up reconciliation finishes, and the camera row
(archived) stays until the end, so the request can simply be repeated. Last, the files no row
knew of in the camera's folders (``<volume>/<camera uuid>/``) are removed and the camera row is
deleted (its runs, streams and events go with it; its id is never handed out again). Synchronous:
call it from a thread.

The crash-safe steps themselves — pending rows written at once (:func:`insert_pending`), files
unlinked and their folders fsynced (:func:`unlink_files`), rows deleted by id (:func:`delete_ids`)
— are shared with retention (recorder/retention.py), which deletes in chunks the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import peewee as pw

from recorder.segments import UUID_RE, fsync_dir
from vms import audit
from vms.auth import Principal
from vms.clock import Clock
from vms.config import Settings
from vms.db.gateway import Gateway
from vms.db.models import Camera, Hold, PendingDeletion, Segment

log = logging.getLogger(__name__)

BATCH = 500
"""Segments deleted per write transaction (other writers are never held up for long)."""


class PurgeRefused(Exception):
    """The recordings may not be deleted; the message says why."""


@dataclass(frozen=True)
class PurgeResult:
    camera_id: int
    name: str
    segments_deleted: int
    bytes_deleted: int
    other_files_deleted: int

    def as_dict(self) -> dict[str, object]:
        return {"camera_id": self.camera_id, "name": self.name,
                "recordings_deleted": True, "segments_deleted": self.segments_deleted,
                "bytes_deleted": self.bytes_deleted,
                "other_files_deleted": self.other_files_deleted}


CLAIM_LOCK_KEY = 0x766D73_7075  # "vmspu": PostgreSQL advisory lock of deletion claims


def lock_claims() -> None:
    """Serialise deletion claims between processes (the scheduled pass runs in a child process,
    the space watchers in the server; several nodes may share one database). Inside a write, before
    choosing what to claim. SQLite needs nothing: its write transactions (``BEGIN IMMEDIATE``)
    already exclude each other across processes. On PostgreSQL a transaction-scoped advisory lock;
    the ``SELECT`` that follows sees the other claimant's committed ``PendingDeletion`` rows."""
    db = PendingDeletion._meta.database
    if isinstance(db, pw.PostgresqlDatabase):
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (CLAIM_LOCK_KEY,))


def insert_pending(rows: list[tuple[str, str, int, int]]) -> None:
    """``PendingDeletion`` rows (volume, path, segment id, created_us), in one ``executemany``
    (peewee's ``insert_many`` spends ~150 ms building the SQL of 1,000 rows). Inside a write."""
    if not rows:
        return
    db = PendingDeletion._meta.database
    p = db.param
    db.cursor().executemany(
        f"INSERT INTO pending_deletion (volume, path, segment_id, created_us) "  # noqa: S608
        f"VALUES ({p}, {p}, {p}, {p})", rows)


def delete_ids(table: str, column: str, ids: list[int]) -> None:
    """``DELETE FROM table WHERE column IN (ids)``, the SQL written once (not per value), 500 ids
    a statement. Inside a write."""
    db = Segment._meta.database
    for i in range(0, len(ids), 500):
        part = ids[i:i + 500]
        db.execute_sql(f'DELETE FROM "{table}" WHERE "{column}" IN '  # noqa: S608 - our names
                       f"({', '.join([db.param] * len(part))})", part)


def unlink_files(settings: Settings, files: list[tuple[str, str]]) -> None:
    """Unlink each ``(volume name, relative path)`` (gone already: fine), then fsync each folder
    once, so the unlinks are durable before any row is forgotten. A volume no longer configured
    is skipped (only its rows go)."""
    roots = {v.name: str(v.path) for v in settings.volumes}
    folders: set[str] = set()
    for vol_name, rel in files:
        root = roots.get(vol_name)
        if root is None:
            continue
        path = os.path.join(root, rel)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        folders.add(os.path.dirname(path))
    for folder in sorted(folders):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            fsync_dir(Path(folder))


def held_footage_problem(camera_id: int) -> str | None:
    """Why the camera's recordings may not be deleted (evidence holds), or None; run it in a
    read before archiving, so a refused request changes nothing."""
    holds = Hold.select().where(Hold.camera == camera_id).count()
    if holds:
        return (f"camera {camera_id} has {holds} evidence hold(s): its recordings may not be "
                "deleted until they are released")
    return None


def delete_camera_recordings(gateway: Gateway, settings: Settings, clock: Clock, camera_id: int,
                             *, principal: Principal | None = None, username: str = "",
                             address: str = "") -> PurgeResult:
    """Delete every recording of archived camera ``camera_id`` and then the camera; audited."""
    camera = gateway.read_sync(lambda: Camera.get_or_none(Camera.id == camera_id))
    if camera is None:
        raise PurgeRefused(f"no camera {camera_id}")
    if camera.archived_us is None:
        raise PurgeRefused(f"camera {camera.name!r} is in service: remove (archive) it first, "
                           "which stops its recording")
    problem = gateway.read_sync(held_footage_problem, camera_id)
    if problem is not None:
        raise PurgeRefused(problem)
    if not UUID_RE.match(camera.uuid):  # pragma: no cover - the schema guarantees it
        raise PurgeRefused(f"camera {camera.name!r} has no valid uuid")

    segments = bytes_deleted = 0
    while True:
        def claim() -> list[tuple[int, str, str, int]]:
            rows = [(int(seg.id), seg.volume, seg.path, int(seg.size_bytes)) for seg in
                    Segment.select(Segment.id, Segment.volume, Segment.path, Segment.size_bytes)
                    .where(Segment.camera == camera_id).order_by(Segment.id).limit(BATCH)]
            now = clock.now_us()
            insert_pending([(vol, rel, seg_id, now) for seg_id, vol, rel, _ in rows])
            return rows

        batch = gateway.write_sync(claim)
        if not batch:
            break
        unlink_files(settings, [(vol, rel) for _, vol, rel, _ in batch])
        bytes_deleted += sum(size for *_, size in batch)
        ids = [b[0] for b in batch]

        def forget(ids: list[int] = ids) -> None:
            delete_ids("segment", "id", ids)
            delete_ids("pending_deletion", "segment_id", ids)

        gateway.write_sync(forget)
        segments += len(batch)

    others = 0
    for volume in settings.volumes:
        folder = volume.path / camera.uuid
        if not folder.is_dir():
            continue
        others += sum(len(files) for _, _, files in os.walk(folder))
        shutil.rmtree(folder)
        with contextlib.suppress(OSError):
            fsync_dir(volume.path)

    def finish() -> None:
        Camera.delete().where(Camera.id == camera_id).execute()
        audit.record(clock, "camera_recordings_delete", principal=principal, username=username,
                     target=camera.name, site_id=camera.site_id, address=address,
                     detail={"camera_id": camera_id, "uuid": camera.uuid,
                             "segments_deleted": segments, "bytes_deleted": bytes_deleted,
                             "other_files_deleted": others})

    gateway.write_sync(finish)
    log.warning("camera %r (%s): recordings deleted on request (%s segments, %s bytes, %s other "
                "files) and the camera with them", camera.name, camera_id, segments,
                bytes_deleted, others)
    return PurgeResult(camera_id, camera.name, segments, bytes_deleted, others)
