"""Event mode's pre-roll: which recorded time events want kept, and the ring of segments waiting.

This module owns the event bookkeeping of one stream. :class:`KeepWindows` holds the wall-clock
spans events want (``[event − pre_roll, event end + post_roll]``, merged; an event that opened with
state true and has not ended stays open, capped at ``event_max_s``) and answers "is a segment
spanning these instants wanted?". :class:`PreRollRing` holds one run's closed segments that no event
wanted yet (:class:`PendingSegment`: a file on the volume, no ``Segment`` row), oldest first; an
event takes the ones it now wants for indexing, and those ending before :func:`ring_horizon_us` are
deleted. It does no database writes and starts no tasks: :mod:`recorder.run` decides when to ask,
indexes what is taken and runs the file deletions off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vms.clock import Clock


@dataclass(frozen=True)
class PendingSegment:
    """A closed ring-buffer segment, not indexed (event mode)."""

    path: Path
    seq: int
    start_us: int
    end_us: int


class KeepWindows:
    """The spans of wall-clock time events want recorded, for one stream (across its runs)."""

    def __init__(self, clock: Clock, pre_roll_s: float, post_roll_s: float,
                 event_max_s: float) -> None:
        self._clock = clock
        self._pre_us = int(pre_roll_s * 1e6)
        self._post_us = int(post_roll_s * 1e6)
        self._max_us = int(event_max_s * 1e6)
        self._keeps: list[list[int]] = []
        """Keep windows ``[from_us, until_us]`` (wall clock), merged, oldest first."""
        self._active: dict[str, int] = {}
        """Events that started (state true) and have not ended: type → start instant."""

    def window(self, at_us: int) -> tuple[int, int]:
        """``(at − pre_roll, at + post_roll)``: the span a momentary event at ``at_us`` wants."""
        return at_us - self._pre_us, at_us + self._post_us

    def add_event(self, event_type: str, state: bool | None, at_us: int) -> None:
        """Keep ``[at − pre_roll, end + post_roll]`` for an event.

        ``state`` true opens an event that lasts until a false of the same type arrives (capped at
        ``event_max_s``); ``None`` is a momentary event; false ends one.
        """
        if state is False:
            started = self._active.pop(event_type, None)
            self._add(started - self._pre_us if started is not None else at_us - self._pre_us,
                      at_us + self._post_us)
        else:
            if state is True:
                started = self._active.get(event_type)
                if started is None or at_us - started > self._max_us:
                    # a new event, or one whose end never came (a camera that lost the false):
                    # the stale one is closed at its cap, and this one starts now
                    if started is not None:
                        self._add(started - self._pre_us, started + self._max_us + self._post_us)
                    self._active[event_type] = at_us
            self._add(at_us - self._pre_us, at_us + self._post_us)

    def _add(self, from_us: int, until_us: int) -> None:
        for keep in self._keeps:
            if from_us <= keep[1] and until_us >= keep[0]:
                keep[0] = min(keep[0], from_us)
                keep[1] = max(keep[1], until_us)
                break
        else:
            self._keeps.append([from_us, until_us])
            self._keeps.sort()

    def keeping(self, start_us: int, end_us: int) -> bool:
        """Whether a segment spanning ``[start_us, end_us]`` is wanted by an event."""
        now_us = self._clock.now_us()
        for started in self._active.values():
            if end_us > started - self._pre_us and \
                    start_us < min(now_us, started + self._max_us) + self._post_us:
                return True
        return any(end_us > k[0] and start_us < k[1] for k in self._keeps)

    def prune(self, before_us: int) -> None:
        """Forget the windows that ended before ``before_us`` (open events are kept)."""
        self._keeps = [k for k in self._keeps if k[1] >= before_us]

    def __len__(self) -> int:
        """Windows held (open events not counted): what :meth:`prune` keeps bounded."""
        return len(self._keeps)


def ring_horizon_us(latest_end_us: int, pre_roll_s: float, margin_s: float) -> int:
    """Ring segments ending before this instant are too old for any event's pre-roll."""
    return latest_end_us - int((pre_roll_s + margin_s) * 1e6)


@dataclass
class PreRollRing:
    """One run's closed segments that no event has wanted yet, oldest first."""

    segments: list[PendingSegment] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.segments)

    def add(self, segment: PendingSegment) -> None:
        self.segments.append(segment)

    def take_kept(self, keeps: KeepWindows) -> list[PendingSegment]:
        """Remove and return the segments ``keeps`` now wants (to be indexed), oldest first."""
        kept = [p for p in self.segments if keeps.keeping(p.start_us, p.end_us)]
        if kept:
            self.segments = [p for p in self.segments if p not in kept]
        return kept

    def count_ending_before(self, horizon_us: int) -> int:
        return sum(1 for p in self.segments if p.end_us < horizon_us)

    def drop_oldest(self, count: int) -> None:
        """Delete the ``count`` oldest files (no row was ever written for them). Blocking."""
        for p in self.segments[:count]:
            p.path.unlink(missing_ok=True)
        del self.segments[:count]
