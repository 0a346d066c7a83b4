"""The time of one run: from ffmpeg's media time and the arrival of its reports to wall instants.

Pure bookkeeping (no I/O), fed by :mod:`recorder.run`. A segment of a run spans ``[anchor + start,
anchor + end]`` where ``start``/``end`` are the media times of ffmpeg's segment list (the frames'
own timestamps, cumulative within the run) and ``anchor`` is the wall-clock instant of media time 0.
The anchor is *checked against* the wall clock, never replaced by it:

* Each list line is printed when the keyframe that opens the next segment reaches the muxer. So the
  arrival of line *k−1* witnesses when segment *k*'s first frame arrived: ``W[k−1] − start[k]`` is
  an upper bound of the anchor (a frame is never received before it is captured) that is normally
  a frame or so above it. The anchor is the smallest such witness seen (a later, smaller one moves
  it back; delays never move it forward).
* Line *k*'s own arrival is **not** a witness of its end: after a camera stall the segment holding
  the frames captured before it is only closed when the first keyframe after the stall arrives, as
  late as the stall was long. Deriving its time from that arrival put those frames 8 s late after an
  8 s stall. The line's arrival only caps the end (no frame is captured after it arrived) and marks
  the segment ``late`` so the caller can check its end against the frames in the file.
* A real camera's capture clock keeps running through a network stall: its RTP timestamps, hence
  ffmpeg's media time, jump by the stall, and the hole appears between the segments exactly where
  the frames stop and resume. A source whose clock *paused* resumes with media time behind the wall
  clock: when both the arrival of a segment's first keyframe and that of its own line are more than
  :data:`BEHIND_THRESHOLD_US` behind the anchor, the anchor moves forward by the smaller of the two.
  A media clock that jumps *ahead* shows as a witness below the anchor and is followed at once.
* The first segment has no earlier line: its anchor is its line's arrival minus its end, capped by
  the progress reports (``now − out_time``, plus :data:`PROGRESS_SLACK_US`) in case a stall
  delayed that first line. If media time jumped far ahead *inside* the first segment (a camera
  whose clock was stepped back: its 32-bit RTP timestamps read as a wrap, ~13 h ahead), that end
  says nothing about the anchor: when it lies more than :data:`JUMP_US` before the progress
  bound taken before the jump, the progress bound is the anchor (the chaos benchmark placed such
  first segments 12–13 h in the past).
* Consecutive segments that meet within :data:`CHAIN_TOLERANCE_US` (or overlap after the anchor
  moved back) are chained exactly, so they never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

CHAIN_TOLERANCE_US = 50_000
"""A segment whose start is this close to the previous end (or before it) is chained to it exactly."""

BEHIND_THRESHOLD_US = 1_000_000
"""Media time is taken to have fallen behind the wall clock (a source whose clock paused during a
stall, or jumped back) when a segment's first keyframe *and* its list line both arrived this much
later than the anchor says. Two independent arrivals must agree, so one late line (a stall, a busy
event loop) never moves the anchor."""

AHEAD_LOG_US = 1_000_000
"""A media clock that jumps ahead by more than this is logged (it is followed whatever the size)."""

LATE_LINE_US = 1_000_000
"""A list line arriving this long after its segment's end closed the segment late (a stall): the
caller checks the segment's end against the frames in the file."""

JUMP_US = 10_000_000
"""A progress bound, or a first segment's end, this far below the progress bound already known is a
media clock that jumped ahead, not a smaller delay: a connect/probe burst (ffmpeg behind real time
at the start) is bounded by the start-up timeout, well under this."""

PROGRESS_SLACK_US = 500_000
"""``now − out_time`` of a progress report bounds the anchor from above, give or take the audio that
``out_time`` counts ahead of the video (up to an audio packet plus a frame, ~0.1 s); this slack keeps
the bound from ever moving the first anchor before the truth."""


@dataclass(frozen=True)
class Placement:
    """Where one segment lies in wall time."""

    start_us: int
    end_us: int
    late: bool
    """The list line came late (more than :data:`LATE_LINE_US` after the end): a stall ended it."""
    shift_us: int
    """How far the anchor moved because media time jumped (ahead by more than
    :data:`AHEAD_LOG_US`, or fell behind); 0 otherwise (e.g. it only took a smaller delay)."""


class RunClock:
    """The anchor of one run and the chaining of its segments."""

    def __init__(self) -> None:
        self.anchor_us: int | None = None
        """Wall-clock instant of media time 0 (set when the first segment is placed)."""
        self.last_seen_us: int | None = None
        """Arrival of the previous list line: when the next segment's first keyframe arrived."""
        self.last_end_us: int | None = None
        """End of the last placed segment: what the next one chains to."""
        self.last_late = False
        self.progress_bound_us: int | None = None
        """Smallest ``now − out_time`` of the progress reports (an early, loose anchor bound)."""

    def progress(self, now_us: int, out_time_us: int) -> None:
        """A progress report: ffmpeg has muxed media up to ``out_time_us`` at ``now_us``."""
        if out_time_us <= 0:
            return
        bound = now_us - out_time_us
        if self.progress_bound_us is None:
            self.progress_bound_us = bound
        elif self.progress_bound_us - JUMP_US <= bound < self.progress_bound_us:
            self.progress_bound_us = bound  # a smaller delay; a far smaller one is a media jump

    def place(self, seen_us: int, start_media_us: int, end_media_us: int) -> Placement:
        """Place the segment ``[start_media_us, end_media_us]`` whose list line arrived at
        ``seen_us``; updates the anchor and the chain."""
        end_bound = seen_us - end_media_us
        shift = 0
        if self.anchor_us is None:
            anchor = end_bound
            if self.progress_bound_us is not None:
                if end_bound < self.progress_bound_us - JUMP_US:
                    anchor = self.progress_bound_us  # media jumped ahead inside this segment
                    shift = end_bound - anchor
                else:
                    anchor = min(anchor, self.progress_bound_us + PROGRESS_SLACK_US)
        else:
            anchor = self.anchor_us
            witness = (self.last_seen_us - start_media_us if self.last_seen_us is not None
                       else end_bound)
            if witness < anchor:
                shift = witness - anchor if witness - anchor < -AHEAD_LOG_US else 0
                anchor = witness
            elif witness - anchor > BEHIND_THRESHOLD_US and end_bound - anchor > BEHIND_THRESHOLD_US:
                shift = min(witness, end_bound) - anchor
                anchor += shift
        self.anchor_us = anchor
        start_us = anchor + start_media_us
        end_us = anchor + end_media_us
        if end_us > seen_us + CHAIN_TOLERANCE_US:
            end_us = seen_us  # no frame is captured after it arrived (media jumped ahead inside)
        prev = self.last_end_us
        if prev is not None and start_us < prev + CHAIN_TOLERANCE_US:
            start_us = prev  # contiguous (or overlapping by rounding or a smaller delay): chain
        end_us = max(end_us, start_us)
        late = seen_us - end_us > LATE_LINE_US
        self.last_seen_us = seen_us
        self.last_end_us = end_us
        self.last_late = late
        return Placement(start_us, end_us, late, shift)

    def truncate_last(self, end_us: int) -> None:
        """The last placed segment holds less than its list line said: it ends at ``end_us``."""
        if self.last_end_us is not None and end_us < self.last_end_us:
            self.last_end_us = end_us

    def next_start_us(self, fallback_us: int) -> int:
        """Where a segment without a list line (ffmpeg died while writing it) starts: the previous
        end when that line was timely, else the line's arrival (its first keyframe arrived then)."""
        if self.last_end_us is None:
            return self.anchor_us if self.anchor_us is not None else fallback_us
        if self.last_late and self.last_seen_us is not None:
            return max(self.last_end_us, self.last_seen_us)
        return self.last_end_us
