"""Recordings on disk for the storage tests: real files on a volume, indexed as the recorder would
(``Run`` and ``Segment`` rows named by the camera and run uuids), and evidence holds."""

from __future__ import annotations

from dataclasses import dataclass

from recorder.segments import run_dir
from vms.config import Volume
from vms.db import models as m

S = 1_000_000


@dataclass(frozen=True)
class Seeded:
    segment_id: int
    path: str
    start_us: int
    end_us: int
    size_bytes: int


def record(volume: Volume, camera_id: int, spans: list[tuple[int, int, int]],
           stream: str = "main") -> list[Seeded]:
    """Index one run of ``camera_id`` with a segment per ``(start_us, end_us, size_bytes)`` and
    write each segment's file (``size_bytes`` bytes) on ``volume``. Run on the gateway writer."""
    cam = m.Camera.get_by_id(camera_id)
    run = m.Run.create(camera=cam, stream=stream, start_us=spans[0][0], end_us=spans[-1][1],
                       end_reason="shutdown")
    folder = run_dir(volume, cam.uuid, stream, spans[0][0])
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for seq, (start_us, end_us, size) in enumerate(spans):
        path = folder / f"{run.uuid}-{seq:06d}.mp4"
        path.write_bytes(bytes([seq % 251]) * size)
        rel = str(path.relative_to(volume.path))
        seg = m.Segment.create(camera=cam, stream=stream, run=run, volume=volume.name, path=rel,
                               start_us=start_us, end_us=end_us, duration_us=end_us - start_us,
                               size_bytes=size)
        out.append(Seeded(seg.id, rel, start_us, end_us, size))
    return out


def hold(camera_id: int, start_us: int, end_us: int, reason: str) -> int:
    return int(m.Hold.create(camera=camera_id, start_us=start_us, end_us=end_us, reason=reason,
                             created_us=start_us).id)
