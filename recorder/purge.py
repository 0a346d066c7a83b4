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
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from dataclasses import dataclass

from recorder.segments import UUID_RE, fsync_dir, volume_by_name
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
        def claim() -> list[tuple[int, int, str, str, int]]:
            rows = list(Segment.select(Segment.id, Segment.volume, Segment.path, Segment.size_bytes)
                        .where(Segment.camera == camera_id).order_by(Segment.id).limit(BATCH))
            claimed = []
            now = clock.now_us()
            for seg in rows:
                pending = PendingDeletion.create(volume=seg.volume, path=seg.path,
                                                 segment_id=seg.id, created_us=now)
                claimed.append((pending.id, seg.id, seg.volume, seg.path, seg.size_bytes))
            return claimed

        batch = gateway.write_sync(claim)
        if not batch:
            break
        for _pending_id, _seg_id, vol_name, rel, size in batch:
            volume = volume_by_name(settings, vol_name)
            if volume is not None:
                (volume.path / rel).unlink(missing_ok=True)
            bytes_deleted += size
        dirs = {(volume_by_name(settings, v), os.path.dirname(rel)) for _, _, v, rel, _ in batch}
        for volume, folder in dirs:
            if volume is not None and (volume.path / folder).is_dir():
                fsync_dir(volume.path / folder)

        def forget(batch: list[tuple[int, int, str, str, int]] = batch) -> None:
            Segment.delete().where(Segment.id.in_([b[1] for b in batch])).execute()
            PendingDeletion.delete().where(PendingDeletion.id.in_([b[0] for b in batch])).execute()

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
