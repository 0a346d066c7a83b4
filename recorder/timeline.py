"""The timeline of a camera over ``[from_us, to_us)``: recorded spans, gaps with reasons, events,
holds.

Answered from the segment index alone, in O(log n + k): segments never overlap within one camera
stream (the recorder chains them), so the rows that touch the range are the last one starting before
``from_us`` (an ``ORDER BY start_us DESC LIMIT 1`` probe of the ``(camera, stream, start_us)``
index) plus those starting inside the range (one index range scan), fetched in one query. Runs are
fetched by id for the spans found, events and holds by their ``(camera, start_us)`` indexes.

Speed: a camera-day is ~1,440 rows. Only the columns needed are selected, and rows are taken as the
driver returns them (no peewee model or per-value conversion); spans are built in one pass over
plain tuples.

A **span** is a maximal stretch of contiguous, playable segments of one run. A **gap** is every
part of the range not covered by a span, with a reason: the ``end_reason`` of the run that ended
before it (``camera_lost``, ``stall``, ``shutdown``, ``config_change``, ``crash``, ``error`` …; in a
cluster ``node_lost`` where a node died and another took its camera over, ``handover`` where a camera
moved between nodes, ``lease_lost`` where a node cut off from the database stopped — vms/cluster.py),
``missing`` where indexed files are gone, ``stall`` for a hole *inside* a continuous run (ffmpeg
kept running but the camera sent nothing: the segments are placed by the frames' own timestamps, so
the hole is where the frames stop and resume), ``recording`` for the still-open tail of a live run,
``not_recorded`` before the first recording, inside an event-mode run (kept only around events) or
where nothing explains it — and ``retention`` wherever recorded footage was deleted by the retention
policy (``PurgedRange`` rows, recorder/retention.py), so "recorded and deleted" is never confused
with "never recorded".

Each gap also has a **kind** (:func:`gap_kind`), what the drawing keys on: ``gap`` (recording was
meant to happen and did not: the camera was lost, stalled, the disk filled, the server stopped or
crashed …), ``not_recorded`` (nothing was ever meant to be there: before the camera's first footage,
outside its schedule, between events in event mode), ``purged`` (recorded, then deleted by
retention) and ``recording`` (the open tail of a live run). The future is no gap at all: the answer
stops at ``now_us``.

Plain synchronous functions for :meth:`vms.db.gateway.Gateway.read`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import peewee as pw
from peewee import fn

from vms.db.models import Event, Hold, PurgedRange, Run, Segment

log = logging.getLogger(__name__)

MAX_RANGE_US = 35 * 86_400 * 1_000_000
"""The longest range one timeline request may cover (the UI zooms out to a week)."""
MAX_EVENTS = 5_000
MAX_HOLDS = 1_000
HOLD_MAX_US = 31 * 86_400 * 1_000_000
"""The longest hold (the API refuses longer ones), so the holds overlapping a range are found
with one bounded range scan of the ``(camera, start_us)`` index: ``start_us`` in
``[from_us - HOLD_MAX_US, to_us)``, then ``end_us > from_us``."""
EVENT_LOOKBACK_US = 3_600 * 1_000_000
"""Events that started up to this long before ``from_us`` and are still open are included."""
CONTIGUOUS_US = 1_000
"""Segments closer than this (rounding) are one span."""
PLAYABLE_STATES = ("ok", "partial")


@dataclass(frozen=True)
class Span:
    start_us: int
    end_us: int
    run: int


GAP_KINDS = ("gap", "not_recorded", "purged", "recording")
NOT_RECORDED_REASONS = frozenset({"not_recorded", "schedule"})
"""Reasons that mean nothing was meant to be recorded (the rest are recording gaps)."""


def gap_kind(reason: str) -> str:
    """The kind of a gap of ``reason`` (one of :data:`GAP_KINDS`)."""
    if reason == "retention":
        return "purged"
    if reason == "recording":
        return "recording"
    return "not_recorded" if reason in NOT_RECORDED_REASONS else "gap"


@dataclass(frozen=True)
class Gap:
    start_us: int
    end_us: int
    reason: str

    @property
    def kind(self) -> str:
        return gap_kind(self.reason)


@dataclass
class Timeline:
    camera_id: int
    from_us: int
    to_us: int
    spans: list[Span] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    events_truncated: bool = False
    holds: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "camera_id": self.camera_id, "from_us": self.from_us, "to_us": self.to_us,
            "spans": [{"start_us": s.start_us, "end_us": s.end_us, "run": s.run}
                      for s in self.spans],
            "gaps": [{"start_us": g.start_us, "end_us": g.end_us, "reason": g.reason,
                      "kind": g.kind} for g in self.gaps],
            "events": self.events, "events_truncated": self.events_truncated,
            "holds": self.holds,
        }


class SegmentRef(NamedTuple):
    """What playback needs of one indexed segment (a named tuple: made straight from a row)."""

    id: int
    run: int
    volume: str
    path: str
    start_us: int
    end_us: int
    state: str


REF_COLUMNS = (Segment.id, Segment.run, Segment.volume, Segment.path, Segment.start_us,
               Segment.end_us, Segment.state)
SPAN_COLUMNS = (Segment.start_us, Segment.end_us, Segment.run, Segment.state)
"""What the timeline needs of a segment: no file names, no id."""


def _raw_rows(query: pw.SelectBase) -> list[tuple[Any, ...]]:
    """The driver's rows of ``query``, without peewee's per-value conversion (which costs more than
    the query itself for a camera-day): every column read here is an integer or a string, which
    both SQLite and psycopg already return as ``int``/``str``."""
    rows: list[tuple[Any, ...]] = query.model._meta.database.execute(query).fetchall()
    return rows


def range_query(columns: tuple[pw.Field, ...], camera_id: int, from_us: int, to_us: int,
                stream: str = "main", limit: int | None = None) -> pw.SelectQuery:
    """The query of :func:`range_rows` (also for ``EXPLAIN`` in tests)."""
    key = (Segment.camera == camera_id) & (Segment.stream == stream)
    before = (Segment.select(Segment.start_us).where(key & (Segment.start_us < from_us))
              .order_by(Segment.start_us.desc()).limit(1))
    query = (Segment.select(*columns)
             .where(key & (Segment.start_us >= fn.COALESCE(before, from_us))
                    & (Segment.start_us < to_us))
             .order_by(Segment.start_us))
    return query.limit(limit + 1) if limit is not None else query


def range_rows(columns: tuple[pw.Field, ...], camera_id: int, from_us: int, to_us: int,
               stream: str = "main", limit: int | None = None) -> list[tuple[Any, ...]]:
    """Raw rows (``columns``) of the last segment starting before ``from_us`` and of the segments
    starting in ``[from_us, to_us)``, ordered by start, in **one** query: the lower bound is a
    scalar subquery (``ORDER BY start_us DESC LIMIT 1`` on the segment index, falling back to
    ``from_us``), then one range scan of the same index. With the columns of :data:`SPAN_COLUMNS`
    or ``recorder.playback.PLAYLIST_COLUMNS`` both are index-only (the index covers them,
    migration 004). ``start_us`` must be among ``columns`` (callers tell the "before" rows by
    ``start_us < from_us``); ``limit`` counts only rows inside the range."""
    return _raw_rows(range_query(columns, camera_id, from_us, to_us, stream, limit))


def split_before(rows: list[tuple[Any, ...]], start_index: int, from_us: int,
                  limit: int | None) -> tuple[tuple[Any, ...] | None, list[tuple[Any, ...]]]:
    """(the last row starting before ``from_us``, the rows inside the range, at most ``limit``)."""
    first_inside = 0
    while first_inside < len(rows) and rows[first_inside][start_index] < from_us:
        first_inside += 1
    before = rows[first_inside - 1] if first_inside else None
    inside = rows[first_inside:] if first_inside else rows
    if limit is not None and len(inside) > limit:
        inside = inside[:limit]
    return before, inside


def segments_in_range(camera_id: int, from_us: int, to_us: int, stream: str = "main",
                      limit: int | None = None) -> tuple[SegmentRef | None, list[SegmentRef]]:
    """(the last segment starting before ``from_us``, segments starting in ``[from_us, to_us)``).

    One query on the ``(camera, stream, start_us)`` index (:func:`range_rows`); the first item may
    or may not reach into the range (callers check ``end_us``).
    """
    rows = range_rows(REF_COLUMNS, camera_id, from_us, to_us, stream, limit)
    before, inside = split_before(rows, 4, from_us, limit)
    return (SegmentRef._make(before) if before is not None else None,
            list(map(SegmentRef._make, inside)))


def segment_at(camera_id: int, at_us: int, stream: str = "main") -> SegmentRef | None:
    """The segment covering ``at_us`` (one index probe), or None."""
    rows = _raw_rows(Segment.select(*REF_COLUMNS)
                     .where((Segment.camera == camera_id) & (Segment.stream == stream)
                            & (Segment.start_us <= at_us))
                     .order_by(Segment.start_us.desc()).limit(1))
    if not rows:
        return None
    seg = SegmentRef._make(rows[0])
    return seg if seg.end_us > at_us else None


def _run_reasons(run_ids: set[int]) -> dict[int, tuple[str, int | None, str]]:
    """``{run id: (end reason, end_us, mode)}``."""
    if not run_ids:
        return {}
    rows = Run.select(Run.id, Run.end_reason, Run.end_us, Run.mode).where(
        Run.id.in_(sorted(run_ids))).tuples()
    return {rid: (reason or "", end_us, mode or "") for rid, reason, end_us, mode in rows}


def _events(camera_id: int, from_us: int, to_us: int) -> tuple[list[dict[str, Any]], bool]:
    query = (Event.select(Event.id, Event.type, Event.start_us, Event.end_us, Event.data)
             .where((Event.camera == camera_id)
                    & (Event.start_us >= from_us - EVENT_LOOKBACK_US) & (Event.start_us < to_us)
                    & ((Event.start_us >= from_us) | Event.end_us.is_null()
                       | (Event.end_us > from_us)))
             .order_by(Event.start_us).limit(MAX_EVENTS + 1).tuples())
    events = []
    for eid, etype, start_us, end_us, data in query:
        try:
            parsed = json.loads(data or "{}")
        except ValueError:
            parsed = {}
        events.append({"id": eid, "type": etype, "start_us": start_us, "end_us": end_us,
                       "data": parsed})
    truncated = len(events) > MAX_EVENTS
    return events[:MAX_EVENTS], truncated


def holds_in_range(camera_id: int, from_us: int, to_us: int,
                   limit: int = MAX_HOLDS) -> list[dict[str, Any]]:
    """Holds of ``camera_id`` overlapping ``[from_us, to_us)``, by start: one range scan of the
    ``(camera, start_us)`` index, bounded below by :data:`HOLD_MAX_US`."""
    query = (Hold.select(Hold.id, Hold.start_us, Hold.end_us, Hold.reason)
             .where((Hold.camera == camera_id) & (Hold.start_us >= from_us - HOLD_MAX_US)
                    & (Hold.start_us < to_us) & (Hold.end_us > from_us))
             .order_by(Hold.start_us, Hold.id).limit(limit))
    return [{"id": hid, "start_us": start_us, "end_us": end_us, "reason": reason}
            for hid, start_us, end_us, reason in _raw_rows(query)]


MAX_PURGED = 1_000


def purged_ranges(camera_id: int, from_us: int, to_us: int, stream: str = "main",
                  limit: int = MAX_PURGED) -> list[tuple[int, int]]:
    """Time of a camera stream deleted by retention overlapping ``[from_us, to_us)``, by end (one
    range scan of the ``(camera, stream, end_us)`` index)."""
    query = (PurgedRange.select(PurgedRange.start_us, PurgedRange.end_us)
             .where((PurgedRange.camera == camera_id) & (PurgedRange.stream == stream)
                    & (PurgedRange.end_us > from_us) & (PurgedRange.start_us < to_us))
             .order_by(PurgedRange.end_us).limit(limit))
    return [(s, e) for s, e in _raw_rows(query)]


def _mark_purged(gaps: list[Gap], purged: list[tuple[int, int]]) -> list[Gap]:
    """``gaps`` with the parts that lie in ``purged`` given the reason ``retention``."""
    if not purged:
        return gaps
    purged = sorted(purged)
    out: list[Gap] = []
    for gap in gaps:
        cursor = gap.start_us
        for p_start, p_end in purged:
            if p_end <= cursor or p_start >= gap.end_us:
                continue
            if p_start > cursor:
                out.append(Gap(cursor, p_start, gap.reason))
            cut_end = min(p_end, gap.end_us)
            if out and out[-1].reason == "retention" and out[-1].end_us == max(cursor, p_start):
                out[-1] = Gap(out[-1].start_us, cut_end, "retention")
            else:
                out.append(Gap(max(cursor, p_start), cut_end, "retention"))
            cursor = cut_end
            if cursor >= gap.end_us:
                break
        if cursor < gap.end_us:
            out.append(Gap(cursor, gap.end_us, gap.reason))
    return out


def build_timeline(camera_id: int, from_us: int, to_us: int, *, stream: str = "main",
                   now_us: int | None = None, with_events: bool = True,
                   with_holds: bool = True) -> Timeline:
    """The timeline of ``camera_id`` over ``[from_us, to_us)``; spans and gaps are clipped to it."""
    if to_us <= from_us:
        raise ValueError("'to' must be after 'from'")
    if to_us - from_us > MAX_RANGE_US:
        raise ValueError(f"a timeline covers at most {MAX_RANGE_US // 86_400_000_000} days")
    before, rows = split_before(range_rows(SPAN_COLUMNS, camera_id, from_us, to_us, stream), 0,
                                 from_us, None)
    timeline = Timeline(camera_id, from_us, to_us)
    # one pass: raw spans (unclipped) from playable segments, merged while contiguous within one
    # run, and the unplayable stretches
    raw: list[list[int]] = []  # [start, end, run]
    missing: list[tuple[int, int]] = []
    if before is not None and before[1] > from_us:
        rows.insert(0, before)
    for start_us, end_us, run, state in rows:
        if state not in PLAYABLE_STATES:
            missing.append((start_us, end_us))
            continue
        if end_us <= start_us:
            continue
        if raw:
            last = raw[-1]
            if last[2] == run and start_us - last[1] <= CONTIGUOUS_US:
                if end_us > last[1]:
                    last[1] = end_us
                continue
        raw.append([start_us, end_us, run])
    before_run: int | None = before[2] if before is not None else None
    runs = _run_reasons({r[2] for r in raw} | ({before_run} if before_run is not None else set()))

    def reason_between(prev_run: int | None, start_us: int, end_us: int, next_run: int | None) -> str:
        if any(ms < end_us and me > start_us for ms, me in missing):
            return "missing"
        if prev_run is None:
            return "not_recorded"
        reason, run_end_us, mode = runs.get(prev_run, ("", None, ""))
        if prev_run == next_run:
            # a hole inside one run: ffmpeg ran on, the camera sent nothing (in event mode: no
            # event asked for that stretch)
            return "not_recorded" if mode == "event" else "stall"
        if next_run is None and run_end_us is None:
            return "recording"  # the run is still open: its next segment is not indexed yet
        return reason or "not_recorded"

    cursor = from_us
    prev_run = before_run
    for start_us, end_us, run in raw:
        clipped = Span(max(start_us, from_us), min(end_us, to_us), run)
        if clipped.start_us > cursor:
            timeline.gaps.append(Gap(cursor, clipped.start_us,
                                     reason_between(prev_run, cursor, clipped.start_us, run)))
        if clipped.end_us > clipped.start_us:
            timeline.spans.append(clipped)
        cursor = max(cursor, clipped.end_us)
        prev_run = run
    if cursor < to_us:
        end = to_us if now_us is None else max(cursor, min(to_us, now_us))
        if end > cursor:
            timeline.gaps.append(Gap(cursor, end, reason_between(prev_run, cursor, end, None)))
    if timeline.gaps:
        timeline.gaps = _mark_purged(timeline.gaps, purged_ranges(camera_id, from_us, to_us,
                                                                   stream))
    if with_events:
        timeline.events, timeline.events_truncated = _events(camera_id, from_us, to_us)
    if with_holds:
        timeline.holds = holds_in_range(camera_id, from_us, to_us)
    return timeline
