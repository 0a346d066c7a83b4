"""What one camera's part of an export covers, and why the rest of the range is missing.

The index says what was recorded; the manifest must say what was *written*. So once the frames of
a camera's clip are known — the direct copy's chosen samples (recorder/clip.py), or ffmpeg's
output read back with PyAV — :func:`describe` derives from them the covered ranges, the end of
the clip, and the gaps: the index's own gaps (edges not recorded, recording stopped, segments
missing from the index) with their reasons, plus every hole in the frames the index does not
explain — ``unreadable`` where a segment file could not be read (damaged, cut short, or not
opened at all), ``no frames recorded`` where its file is whole but holds no frames there. The hole
rule is :mod:`vms.coverage`'s, which ``vms verify`` applies to the file it is given.
"""

from __future__ import annotations

import logging

from recorder.export_plan import CameraPlan, Gap
from recorder.mp4 import Mp4Error, read_fragmented
from vms.coverage import VideoTimes, frame_holes, merge, subtract
from vms.db import models as m

log = logging.getLogger(__name__)

UNREADABLE = "unreadable"
"""Recorded, but the segment file's frames there could not be read (damaged, cut short, or
not opened at all)."""
NO_FRAMES = "no frames recorded"
"""The segment file reads whole but holds no frames there (the camera sent none)."""
NOT_RECORDED = "not recorded"


class _Files:
    """Video frame times (wall µs) of the segment files under a hole, read from their boxes
    (recorder/mp4.py) once each; None for a file that cannot be read whole."""

    def __init__(self, plan: CameraPlan) -> None:
        self.plan = plan
        self._frames: dict[int, list[int] | None] = {}

    def frames(self, seg: m.Segment) -> list[int] | None:
        if seg.id not in self._frames:
            self._frames[seg.id] = None if seg.id in self.plan.unreadable_ids else _read(seg)
        return self._frames[seg.id]

    def reason(self, seg: m.Segment, start_us: int, end_us: int, slack_us: int) -> str:
        """Why ``seg``'s part [start_us, end_us) has no video in the clip."""
        frames = self.frames(seg)
        if frames is None:
            return UNREADABLE
        # a file read whole without frames there: the camera sent none; frames there that the
        # clip lacks were in the file but could not be read (ffmpeg skipped them)
        inside = any(start_us + slack_us < t < end_us - slack_us for t in frames)
        return UNREADABLE if inside else NO_FRAMES


def _read(seg: m.Segment) -> list[int] | None:
    try:
        f = read_fragmented(seg.abs_path)  # type: ignore[attr-defined]
    except (Mp4Error, OSError):
        return None
    video = f.track(b"vide")
    if f.truncated or f.stray_boxes or video is None:
        return None
    out = []
    for run in f.runs:
        if run.track_id != video.track_id:
            continue
        dts = run.dts
        for k, duration in enumerate(run.durations):
            cts = run.cts[k] if run.cts is not None else 0
            ticks = dts + cts - video.edit_media_time
            out.append(seg.start_us + (ticks * 1_000_000 + video.timescale // 2) // video.timescale)
            dts += duration
    return out


def describe(plan: CameraPlan, times: VideoTimes, zero_us: int) -> None:
    """Set ``plan.actual_to_us``, ``plan.covered`` and ``plan.gaps`` from the frames written.

    ``times`` are the clip's video frames in media time; media time 0 is the wall instant
    ``zero_us``. Segment files are read (boxes only) just for the holes the index does not
    explain, to name their reason.
    """
    from_us, to_us = plan.requested_from_us, plan.requested_to_us
    first = zero_us + times.starts_us[0]
    actual_to = min(to_us, zero_us + times.end_us)
    missing = [(zero_us + a, zero_us + b) for a, b in frame_holes(times)]
    if from_us < first:
        missing.append((from_us, first))
    if actual_to < to_us:
        missing.append((actual_to, to_us))
    planned = [(g.start_us, g.end_us) for g in plan.gaps]
    files = _Files(plan)
    found: list[Gap] = []
    for a, b in merge(missing):
        for piece_a, piece_b in subtract(a, b, planned):
            found += _labelled(plan, files, piece_a, piece_b, times.nominal_us)
    # where a hole's edge (placed from the frames) meets an index gap's edge, a sliver shorter
    # than a frame can be left over: not a gap
    found = [g for g in found if g.end_us - g.start_us >= times.nominal_us]
    for gap in found:
        log.warning("camera %r: no video from %s to %s in the export: %s", plan.camera_name,
                    gap.start_us, gap.end_us, gap.reason)
    plan.gaps = sorted([*plan.gaps, *found], key=lambda g: (g.start_us, g.end_us))
    plan.actual_to_us = actual_to
    plan.covered = subtract(first, actual_to, [(g.start_us, g.end_us) for g in plan.gaps])


def _labelled(plan: CameraPlan, files: _Files, start_us: int, end_us: int,
              slack_us: int) -> list[Gap]:
    """[start_us, end_us) cut at segment boundaries, each piece with its reason; pieces between
    segments (closer than the planner's gap tolerance) join their neighbour."""
    cuts = sorted({start_us, end_us, *(t for s in plan.segments for t in (s.start_us, s.end_us)
                                       if start_us < t < end_us)})
    pieces: list[tuple[int, int, str | None]] = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        mid = (a + b) // 2
        seg = next((s for s in plan.segments if s.start_us <= mid < s.end_us), None)
        pieces.append((a, b, None if seg is None else files.reason(seg, a, b, slack_us)))
    known = [r for _, _, r in pieces if r is not None]
    out: list[Gap] = []
    last = known[0] if known else NOT_RECORDED
    for a, b, reason in pieces:
        reason = reason or last
        last = reason
        if out and out[-1].reason == reason and out[-1].end_us == a:
            out[-1] = Gap(out[-1].start_us, b, reason)
        else:
            out.append(Gap(a, b, reason))
    return out
