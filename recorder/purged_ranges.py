"""The time retention deleted, per camera stream: ``PurgedRange`` rows, which the timeline
answers as gaps with reason ``retention`` (recorder/timeline.py).

:func:`record_ranges` runs inside the transaction that marks a chunk of segments for deletion
(recorder/retention.py): runs of the chunk's segments with no surviving segment between them
become one range, merged with the stored range just before (or after) it when nothing survives
between those either — so a continuous camera's purged past stays a handful of rows.
"""

from __future__ import annotations

import bisect
from typing import NamedTuple

import peewee as pw

from vms.db import models as m

CONTIGUOUS_US = 1_000
"""Purged segments closer than this are one purged range."""


class _Row(NamedTuple):
    id: int
    start_us: int
    end_us: int


def record_ranges(rows: list[tuple[int, str, int, int, int]]) -> None:
    """Record the purged time of ``rows`` (inside the marking transaction): per camera stream,
    runs of rows with no surviving segment between them become one range, merged with the
    stored range just before (or after) it when no segment lies between those either."""
    by_stream: dict[tuple[int, str], list[_Row]] = {}
    for camera_id, stream, seg_id, start_us, end_us in rows:
        by_stream.setdefault((camera_id, stream), []).append(_Row(seg_id, start_us, end_us))
    for (camera_id, stream), items in by_stream.items():
        items.sort(key=lambda r: (r.start_us, r.id))
        ids = {r.id for r in items}
        key = (m.Segment.camera == camera_id) & (m.Segment.stream == stream)
        query = m.Segment.select(m.Segment.id, m.Segment.start_us).where(
            key & (m.Segment.start_us >= items[0].start_us)
            & (m.Segment.start_us < items[-1].end_us))
        survivors = sorted(start for sid, start in m.Segment._meta.database.execute(query)
                           if sid not in ids)
        ranges: list[list[int]] = []
        for r in items:
            if ranges and (r.start_us - ranges[-1][1] <= CONTIGUOUS_US
                           or not any_between(survivors, ranges[-1][1], r.start_us)):
                ranges[-1][1] = max(ranges[-1][1], r.end_us)
            else:
                ranges.append([r.start_us, r.end_us])
        for start, end in ranges:
            store_range(camera_id, stream, start, end)


def any_between(sorted_starts: list[int], after_us: int, before_us: int) -> bool:
    i = bisect.bisect_left(sorted_starts, after_us)
    return i < len(sorted_starts) and sorted_starts[i] < before_us


def store_range(camera_id: int, stream: str, start_us: int, end_us: int) -> None:
    PR = m.PurgedRange
    key = (PR.camera == camera_id) & (PR.stream == stream)
    seg_key = (m.Segment.camera == camera_id) & (m.Segment.stream == stream)

    def nothing_between(a_us: int, b_us: int) -> bool:
        if b_us - a_us <= CONTIGUOUS_US:
            return True
        return not (m.Segment.select(m.Segment.id).where(
            seg_key & (m.Segment.start_us >= a_us) & (m.Segment.start_us < b_us)
            & ~pw.fn.EXISTS(m.PendingDeletion.select(m.PendingDeletion.id).where(
                m.PendingDeletion.segment_id == m.Segment.id))).exists())

    before = PR.select().where(key & (PR.end_us <= end_us)).order_by(PR.end_us.desc()).first()
    after = PR.select().where(key & (PR.end_us > end_us)).order_by(PR.end_us).first()
    if before is not None and (before.end_us >= start_us
                               or nothing_between(before.end_us, start_us)):
        start_us = min(start_us, before.start_us)
        end_us = max(end_us, before.end_us)
        if after is not None and (after.start_us <= end_us
                                  or nothing_between(end_us, after.start_us)):
            PR.update(start_us=min(start_us, after.start_us)).where(PR.id == after.id).execute()
            PR.delete().where(PR.id == before.id).execute()
            return
        PR.update(start_us=start_us, end_us=end_us).where(PR.id == before.id).execute()
        return
    if after is not None and (after.start_us <= end_us or nothing_between(end_us, after.start_us)):
        PR.update(start_us=min(start_us, after.start_us)).where(PR.id == after.id).execute()
        return
    PR.create(camera=camera_id, stream=stream, start_us=start_us, end_us=end_us)
