"""The recorder's writes to the segment index: runs, segments and camera status rows.

Plain synchronous functions meant to be passed to ``Gateway.write`` (one transaction each, on the
single writer thread). Only the recorder writes runs and segments; everything else reads them.

**Fencing** (a cluster, vms/cluster.py): a recorder of a node holds its camera's lease under an
epoch; :func:`insert_run` and :func:`insert_segment` given a :class:`Fence` first read the lease row
``FOR SHARE`` in the same transaction and refuse (:class:`LeaseLost`) unless this node still holds
it at that epoch, so a node whose lease was taken while it was cut off never indexes a second copy
of the same time. The row lock makes a concurrent take wait for the insert's commit.

Reconciliation adopts a crashed run's unindexed files without a fence (the run's epoch is gone
with the process); in a cluster it calls :func:`adoption_problem` in the insert's transaction
instead: a file is refused when another node has taken the camera's lease since before the file's
end, or when its time overlaps footage of another run already indexed, so no time range of a
camera is ever indexed twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from vms.db.models import Camera, CameraLease, Run, Segment


@dataclass(frozen=True)
class Fence:
    """The lease a recorder writes under: its node and the epoch it took it at."""

    node: str
    epoch: int


class LeaseLost(Exception):
    """The camera's lease is no longer this node's at this epoch: nothing is indexed."""


def check_fence(camera_id: int, fence: Fence | None) -> None:
    """Inside a write transaction: raise :class:`LeaseLost` unless ``fence`` is current."""
    if fence is None:
        return
    row = (CameraLease.select(CameraLease.node, CameraLease.epoch)
           .where(CameraLease.camera == camera_id).for_update("FOR SHARE").tuples().first())
    if row is None or (row[0], row[1]) != (fence.node, fence.epoch):
        held = f"{row[0] or 'nobody'} at epoch {row[1]}" if row else "no lease row"
        raise LeaseLost(f"camera {camera_id}: lease is {held}, not {fence.node} at epoch "
                        f"{fence.epoch}")


@dataclass(frozen=True)
class SegmentRow:
    camera_id: int
    stream: str
    run_id: int
    volume: str
    path: str
    start_us: int
    end_us: int
    size_bytes: int
    video_codec: str
    audio_codec: str
    width: int
    height: int
    state: str = "ok"
    kind: str = "continuous"


def insert_run(camera_id: int, stream: str, start_us: int, mode: str = "continuous",
               fence: Fence | None = None) -> tuple[int, str]:
    """A new run row: its id and its uuid (which names its files, recorder/segments.py)."""
    check_fence(camera_id, fence)
    run = Run.create(camera=camera_id, stream=stream, start_us=start_us, mode=mode,
                     node=fence.node if fence else "")
    return int(run.id), str(run.uuid)


def update_run_start(run_id: int, start_us: int) -> None:
    Run.update(start_us=start_us).where(Run.id == run_id).execute()


def close_run(run_id: int, end_us: int, end_reason: str) -> None:
    Run.update(end_us=end_us, end_reason=end_reason).where(Run.id == run_id).execute()


def delete_run_if_empty(run_id: int) -> bool:
    """Delete a run that indexed nothing (e.g. it never connected); True if deleted."""
    if Segment.select().where(Segment.run == run_id).exists():
        return False
    Run.delete().where(Run.id == run_id).execute()
    return True


def adoption_problem(row: SegmentRow, run_node: str) -> str | None:
    """Inside a write transaction (PostgreSQL, a cluster): why the unindexed file ``row`` of a
    run recorded by ``run_node`` must not be indexed, or None. Reads the camera's lease row
    ``FOR SHARE`` (a take waits, or skips it, until the adoption commits), then one index probe
    for the latest segment of another run starting before the file's end."""
    lease = (CameraLease.select(CameraLease.node, CameraLease.epoch, CameraLease.taken_us)
             .where(CameraLease.camera == row.camera_id).for_update("FOR SHARE").tuples().first())
    if lease is not None and lease[0] not in ("", run_node) and lease[2] < row.end_us:
        return (f"node {lease[0]!r} took the camera's lease (epoch {lease[1]}) at {lease[2]} µs, "
                f"before this file's end ({row.end_us} µs)")
    other = (Segment.select(Segment.path, Segment.start_us, Segment.end_us, Run.node)
             .join(Run, on=(Segment.run == Run.id))
             .where((Segment.camera == row.camera_id) & (Segment.stream == row.stream)
                    & (Segment.run != row.run_id) & (Segment.start_us < row.end_us))
             .order_by(Segment.start_us.desc()).limit(1).tuples().first())
    if other is not None and other[2] > row.start_us:
        return (f"its time [{row.start_us}, {row.end_us}) µs overlaps {other[0]} "
                f"[{other[1]}, {other[2]}) µs, already indexed (node {other[3] or 'none'!r})")
    return None


def adopt_segment(row: SegmentRow, run_node: str) -> int | str:
    """Index a reconciled file of a cluster node (see :func:`adoption_problem`): its new id, or
    the reason it was refused (nothing written)."""
    problem = adoption_problem(row, run_node)
    return problem if problem is not None else insert_segment(row)


def insert_segment(row: SegmentRow, fence: Fence | None = None) -> int:
    check_fence(row.camera_id, fence)
    seg = Segment.create(
        camera=row.camera_id, stream=row.stream, run=row.run_id, volume=row.volume,
        path=row.path, start_us=row.start_us, end_us=row.end_us,
        duration_us=row.end_us - row.start_us, size_bytes=row.size_bytes,
        video_codec=row.video_codec[:16], audio_codec=row.audio_codec[:16],
        width=row.width, height=row.height, state=row.state, kind=row.kind,
    )
    return int(seg.id)


def truncate_segment(segment_id: int, start_us: int, end_us: int, size_bytes: int) -> None:
    """A segment found shorter than indexed (ffmpeg listed it, then failed to finish it, e.g. on a
    full disk): its true end, and ``partial``."""
    Segment.update(end_us=end_us, duration_us=end_us - start_us, size_bytes=size_bytes,
                   state="partial").where(
        Segment.id == segment_id).execute()


def delete_segment(segment_id: int) -> None:
    """Remove the row of a segment the recorder itself found unplayable (its file goes to
    lost+found)."""
    Segment.delete().where(Segment.id == segment_id).execute()


def mark_event_segments(camera_id: int, stream: str, from_us: int, to_us: int) -> int:
    """Mark indexed segments of one stream overlapping ``[from_us, to_us)`` as kept by an event
    (retention keeps them for ``event_days``); the number marked."""
    return int(Segment.update(kind="event").where(
        (Segment.camera == camera_id) & (Segment.stream == stream) & (Segment.end_us > from_us)
        & (Segment.start_us < to_us) & (Segment.kind != "event")).execute())


def set_camera_status(camera_id: int, status: str, reason: str, since_us: int) -> None:
    """Record the recorder's view of a camera; an archived camera keeps its ``archived`` status
    (its last recorder stopping is not news)."""
    Camera.update(status=status, status_reason=reason, status_since_us=since_us).where(
        Camera.id == camera_id, Camera.archived_us.is_null()).execute()
