"""Plain counters of the recorder and of exports, read at scrape time.

The recorder keeps no global metric state: each recorded stream owns a :class:`StreamStats` (held by
the supervisor per camera and stream, so it outlives a restart of the stream's task and is dropped
with the camera), the export service an :class:`ExportStats`. The composition root registers a
collector (``recorder/metrics.py``) that turns them into Prometheus metrics when ``/metrics`` is read.
Time spans are seconds (Prometheus' base unit), instants monotonic microseconds.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

INDEX_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Bounds of the index insert latency histogram (one segment row through the writer)."""
JOB_BUCKETS_S = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
"""Bounds of the duration histograms of exports and discovery scans."""


@dataclass
class Buckets:
    """A histogram without a metrics library: counts per upper bound (not cumulative), and the
    sum of the observed values."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    sum: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """``[(le, count of values <= le)]`` ending with ``+Inf``, as Prometheus wants them."""
        out, running = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


@dataclass
class StreamStats:
    """What one recorded stream has done since the server started."""

    segments: int = 0
    """Segments indexed (in event mode: those an event kept)."""
    bytes: int = 0
    """Bytes of the indexed segments."""
    last_segment_mono_us: int | None = None
    """Monotonic instant the last segment was indexed."""
    runs_started: int = 0
    exits: dict[str, int] = field(default_factory=dict)
    """Runs (ffmpeg sessions) ended, by end reason (``camera_lost``, ``stall``, ``shutdown`` …)."""
    index_seconds: Buckets = field(default_factory=lambda: Buckets(INDEX_BUCKETS_S))
    """Latency of the segment row insert (queued behind other writes included)."""

    def segment_indexed(self, size_bytes: int, index_s: float, mono_us: int) -> None:
        self.segments += 1
        self.bytes += size_bytes
        self.last_segment_mono_us = mono_us
        self.index_seconds.observe(index_s)

    def run_ended(self, reason: str) -> None:
        self.exits[reason] = self.exits.get(reason, 0) + 1


@dataclass
class ExportStats:
    """Exports finished since the server started."""

    written_bytes: int = 0
    """Bytes of the finished export files (MP4 or ZIP)."""
    finished: dict[str, int] = field(default_factory=dict)
    """Jobs ended, by final state (``done``, ``failed``, ``cancelled``)."""
    seconds: Buckets = field(default_factory=lambda: Buckets(JOB_BUCKETS_S))
    """Duration of the jobs that ended ``done``, from the start of their work."""

    def ended(self, state: str) -> None:
        self.finished[state] = self.finished.get(state, 0) + 1

    def done(self, size_bytes: int, seconds: float) -> None:
        self.written_bytes += size_bytes
        self.seconds.observe(seconds)
