"""The timeline of a camera over ``[from_us, to_us)``: recorded spans, gaps with reasons, events.

Answered from the segment index alone, in O(log n + k): segments never overlap within one camera
stream (the recorder chains them), so the rows that touch the range are the last one starting before
``from_us`` (one ``ORDER BY start_us DESC LIMIT 1`` probe of the ``(camera, stream, start_us)``
index) plus those starting inside the range (one index range scan). Runs are fetched by id for the
spans found, events by the ``(camera, start_us)`` index. No migration is needed for this.

A **span** is a maximal stretch of contiguous, playable segments of one run. A **gap** is every
part of the range not covered by a span, with a reason: the ``end_reason`` of the run that ended
before it (``camera_lost``, ``stall``, ``shutdown``, ``config_change``, ``crash``, ``error`` …),
``missing`` where indexed files are gone, ``recording`` for the still-open tail of a live run,
``not_recorded`` before the first recording or where nothing explains it.

Plain synchronous functions for :meth:`vms.db.gateway.Gateway.read`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from vms.db.models import Event, Run, Segment

log = logging.getLogger(__name__)

MAX_RANGE_US = 35 * 86_400 * 1_000_000
"""The longest range one timeline request may cover (the UI zooms out to a week)."""
MAX_EVENTS = 5_000
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


@dataclass(frozen=True)
class Gap:
    start_us: int
    end_us: int
    reason: str


@dataclass
class Timeline:
    camera_id: int
    from_us: int
    to_us: int
    spans: list[Span] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    events_truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "camera_id": self.camera_id, "from_us": self.from_us, "to_us": self.to_us,
            "spans": [asdict(s) for s in self.spans], "gaps": [asdict(g) for g in self.gaps],
            "events": self.events, "events_truncated": self.events_truncated,
        }


@dataclass(frozen=True)
class SegmentRef:
    """What playback needs of one indexed segment."""

    id: int
    run: int
    volume: str
    path: str
    start_us: int
    end_us: int
    state: str


def segments_in_range(camera_id: int, from_us: int, to_us: int, stream: str = "main",
                      limit: int | None = None) -> tuple[SegmentRef | None, list[SegmentRef]]:
    """(the last segment starting before ``from_us``, segments starting in ``[from_us, to_us)``).

    Two probes of the ``(camera, stream, start_us)`` index; the first item may or may not reach
    into the range (callers check ``end_us``).
    """
    fields = (Segment.id, Segment.run, Segment.volume, Segment.path, Segment.start_us,
              Segment.end_us, Segment.state)
    before_row = (Segment.select(*fields)
                  .where((Segment.camera == camera_id) & (Segment.stream == stream)
                         & (Segment.start_us < from_us))
                  .order_by(Segment.start_us.desc()).limit(1).tuples().first())
    query = (Segment.select(*fields)
             .where((Segment.camera == camera_id) & (Segment.stream == stream)
                    & (Segment.start_us >= from_us) & (Segment.start_us < to_us))
             .order_by(Segment.start_us))
    if limit is not None:
        query = query.limit(limit)
    before = SegmentRef(*before_row) if before_row else None
    return before, [SegmentRef(*row) for row in query.tuples()]


def segment_at(camera_id: int, at_us: int, stream: str = "main") -> SegmentRef | None:
    """The segment covering ``at_us`` (one index probe), or None."""
    row = (Segment.select(Segment.id, Segment.run, Segment.volume, Segment.path, Segment.start_us,
                          Segment.end_us, Segment.state)
           .where((Segment.camera == camera_id) & (Segment.stream == stream)
                  & (Segment.start_us <= at_us))
           .order_by(Segment.start_us.desc()).limit(1).tuples().first())
    if row is None:
        return None
    seg = SegmentRef(*row)
    return seg if seg.end_us > at_us else None


def _run_reasons(run_ids: set[int]) -> dict[int, tuple[str, int | None]]:
    if not run_ids:
        return {}
    rows = Run.select(Run.id, Run.end_reason, Run.end_us).where(Run.id.in_(sorted(run_ids))).tuples()
    return {rid: (reason or "", end_us) for rid, reason, end_us in rows}


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


def build_timeline(camera_id: int, from_us: int, to_us: int, *, stream: str = "main",
                   now_us: int | None = None, with_events: bool = True) -> Timeline:
    """The timeline of ``camera_id`` over ``[from_us, to_us)``; spans and gaps are clipped to it."""
    if to_us <= from_us:
        raise ValueError("'to' must be after 'from'")
    if to_us - from_us > MAX_RANGE_US:
        raise ValueError(f"a timeline covers at most {MAX_RANGE_US // 86_400_000_000} days")
    before, rows = segments_in_range(camera_id, from_us, to_us, stream)
    timeline = Timeline(camera_id, from_us, to_us)
    # raw spans (unclipped) from playable segments, merged while contiguous within one run
    raw: list[list[int]] = []  # [start, end, run]
    candidates = ([before] if before is not None and before.end_us > from_us else []) + rows
    for seg in candidates:
        if seg.state not in PLAYABLE_STATES or seg.end_us <= seg.start_us:
            continue
        if raw and raw[-1][2] == seg.run and seg.start_us - raw[-1][1] <= CONTIGUOUS_US:
            raw[-1][1] = max(raw[-1][1], seg.end_us)
        else:
            raw.append([seg.start_us, seg.end_us, seg.run])
    runs = _run_reasons({r[2] for r in raw} | ({before.run} if before is not None else set()))
    missing = [(s.start_us, s.end_us) for s in candidates if s.state not in PLAYABLE_STATES]

    def reason_between(prev_run: int | None, start_us: int, end_us: int, next_run: int | None) -> str:
        if any(ms < end_us and me > start_us for ms, me in missing):
            return "missing"
        if prev_run is None:
            return "not_recorded"
        reason, run_end_us = runs.get(prev_run, ("", None))
        if prev_run == next_run:
            return "missing"  # a hole inside one run: files deleted or lost
        if next_run is None and run_end_us is None:
            return "recording"  # the run is still open: its next segment is not indexed yet
        return reason or "not_recorded"

    cursor = from_us
    prev_run = before.run if before is not None else None
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
    if with_events:
        timeline.events, timeline.events_truncated = _events(camera_id, from_us, to_us)
    return timeline
