"""What retention never deletes: footage under an evidence hold, footage in the range of a
finished export (until the export expires), and an export a hold overlaps.

Each rule is a query term the purge (recorder/retention.py) puts into the select of the same
write transaction that marks a chunk for deletion, so a hold placed or an export finished meanwhile
is seen: :func:`unprotected` (no hold of the segment's camera overlaps it, and no other deletion
has claimed it), :func:`not_exported` over :func:`export_ranges` (outside every finished export's
range of its camera), and :func:`export_held` for expiring an export.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import peewee as pw

from vms.db import models as m


def _all_of(terms: list[pw.Expression]) -> pw.Expression | None:
    """``terms`` joined by AND as a balanced tree (a long left-deep chain would pass SQLite's
    expression depth limit)."""
    if not terms:
        return None
    while len(terms) > 1:
        terms = [terms[i] & terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


def export_ranges(now_us: int) -> dict[int, list[tuple[int, int]]]:
    """Per camera, the merged ranges of finished exports not yet expired (read inside the
    transaction that marks segments, so an export finishing meanwhile is seen)."""
    ranges: dict[int, list[tuple[int, int]]] = {}
    rows = (m.Export.select(m.Export.camera_ids, m.Export.from_us, m.Export.to_us)
            .where(m.Export.state == "done").tuples())
    for camera_ids, from_us, to_us in rows:
        try:
            ids = json.loads(camera_ids or "[]")
        except ValueError:
            ids = []
        for cid in ids:
            if isinstance(cid, int):
                ranges.setdefault(cid, []).append((from_us, to_us))
    return {cid: _merge(r) for cid, r in ranges.items()}


def unprotected() -> pw.Expression:
    """Segments no hold of their camera overlaps and no other deletion has claimed."""
    held = m.Hold.select(m.Hold.id).where(
        (m.Hold.camera == m.Segment.camera) & (m.Hold.start_us < m.Segment.end_us)
        & (m.Hold.end_us > m.Segment.start_us))
    claimed = m.PendingDeletion.select(m.PendingDeletion.id).where(
        m.PendingDeletion.segment_id == m.Segment.id)
    return ~pw.fn.EXISTS(held) & ~pw.fn.EXISTS(claimed)


def not_exported(exports: dict[int, list[tuple[int, int]]],
                 camera_id: int | None = None) -> pw.Expression | None:
    """Segments outside every finished export's range of their camera (one camera's, or all)."""
    terms: list[pw.Expression] = []
    for cid, ranges in exports.items():
        if camera_id is not None and cid != camera_id:
            continue
        for start, end in ranges:
            overlap = (m.Segment.start_us < end) & (m.Segment.end_us > start)
            terms.append(~overlap if camera_id is not None else
                         ~((m.Segment.camera == cid) & overlap))
    return _all_of(terms)


def export_held(export: m.Export) -> bool:
    """Whether a hold of one of the export's cameras overlaps its range (it does not expire)."""
    try:
        ids = [i for i in json.loads(export.camera_ids or "[]") if isinstance(i, int)]
    except ValueError:
        ids = []
    if not ids:
        return False
    return bool(m.Hold.select().where(m.Hold.camera.in_(ids) & (m.Hold.start_us < export.to_us)
                                      & (m.Hold.end_us > export.from_us)).exists())
