"""What an exported clip covers: its video frames' times, and the rule that finds holes in them.

An export never collapses time: media time *t* in the MP4 is the wall instant
``media_time_zero_us + t``, and the frame before a hole is held until the next one. So the holes
in a clip are where one frame is followed by the next much later than the clip's frames usually
follow each other. The exporter (recorder/export_coverage.py) applies :func:`frame_holes` to the
frames it wrote and lists each hole as a gap in the signed manifest; ``vms verify`` applies the
same rule to the frames it reads back with PyAV (:func:`probe_video`), so a manifest that claims
video where the file has none is caught. docs/design/export.md has the tolerances.

Times here are integer microseconds of media time (relative to the clip's media time zero).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO

HOLE_MIN_US = 250_000
"""The shortest hole: frames this close together are continuous video (the planner's in-run
tolerance between segments, docs/design/export.md)."""
HOLE_FRAMES = 3
"""...and a hole is also longer than this many ordinary frame intervals (a slow camera at 4 fps
has 250 ms between frames; one or two dropped frames are not a hole)."""
EDGE_TOLERANCE_US = 1_000
"""Rounding allowed per place where the clip's timing meets the index: each segment's start is
rounded once to the track's timescale (direct copy) or to µs in ffmpeg's concat script."""


class MediaProbeError(Exception):
    """The MP4 cannot be read back (no video track, or not a readable file)."""


@dataclass(frozen=True)
class VideoTimes:
    """The video frames of one MP4, in presentation order."""

    starts_us: list[int]
    """Presentation time of every frame (media time, µs), ascending."""
    end_us: int
    """Where the last frame ends (its start plus its duration)."""

    @property
    def nominal_us(self) -> int:
        """The clip's ordinary frame interval: the median of the intervals between frames."""
        steps = sorted(b - a for a, b in zip(self.starts_us, self.starts_us[1:], strict=False))
        if not steps:
            return max(1, self.end_us - self.starts_us[0])
        return max(1, steps[len(steps) // 2])

    @property
    def hole_limit_us(self) -> int:
        """Frames further apart than this have a hole between them."""
        return max(HOLE_MIN_US, HOLE_FRAMES * self.nominal_us)


def ticks_to_us(ticks: int, time_base: Fraction) -> int:
    """Media ticks → µs, rounded half up; the one conversion the exporter and verify share."""
    num = ticks * time_base.numerator * 1_000_000
    return (2 * num + time_base.denominator) // (2 * time_base.denominator)


def frame_holes(times: VideoTimes) -> list[tuple[int, int]]:
    """The holes (media µs): from where a frame would have ended at the ordinary interval to the
    next frame, wherever two frames are further apart than :attr:`VideoTimes.hole_limit_us`."""
    nominal, limit = times.nominal_us, times.hole_limit_us
    return [(a + nominal, b) for a, b in zip(times.starts_us, times.starts_us[1:], strict=False)
            if b - a > limit]


def probe_video(source: Path | IO[bytes]) -> VideoTimes:
    """Read the video frames' times of an MP4 (a path, or a seekable file such as a ZIP member)
    with PyAV: packet headers only, nothing is decoded."""
    import av

    try:
        container = av.open(str(source) if isinstance(source, Path) else source, mode="r",
                            metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise MediaProbeError(f"not a readable MP4: {exc}") from None
    starts: list[int] = []
    end = 0
    with container:
        if not container.streams.video:
            raise MediaProbeError("no video track")
        stream = container.streams.video[0]
        time_base = stream.time_base
        if time_base is None:
            raise MediaProbeError("video track without a time base")
        try:
            for packet in container.demux(stream):
                if packet.pts is None or packet.size == 0:
                    continue
                start = ticks_to_us(packet.pts, time_base)
                starts.append(start)
                end = max(end, start + ticks_to_us(packet.duration or 0, time_base))
        except av.FFmpegError as exc:
            raise MediaProbeError(f"video unreadable after {len(starts)} frames: {exc}") from None
    if not starts:
        raise MediaProbeError("no video frames")
    starts.sort()
    return VideoTimes(starts, max(end, starts[-1]))


# ------------------------------------------------------------------------------ interval sums


def merge(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping union of half-open intervals (empty ones dropped)."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(i for i in intervals if i[1] > i[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def subtract(start: int, end: int, intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of [start, end) that none of ``intervals`` covers."""
    out, at = [], start
    for a, b in merge(intervals):
        if b <= at or a >= end:
            continue
        if a > at:
            out.append((at, a))
        at = max(at, b)
    if at < end:
        out.append((at, end))
    return out


def total(intervals: Iterable[tuple[int, int]]) -> int:
    return sum(b - a for a, b in intervals)
