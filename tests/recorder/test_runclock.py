"""The run clock's rules on made-up arrivals (what ffmpeg printed when), and the timeline's reason
for a hole inside a run. The camsim end-to-end checks are in test_recorder_stall_time.py."""

from __future__ import annotations

from recorder.runclock import BEHIND_THRESHOLD_US, JUMP_US, PROGRESS_SLACK_US, RunClock
from recorder.timeline import build_timeline
from vms.db.gateway import Gateway
from vms.db.models import Camera, Run, Segment, Site

S = 1_000_000
T0 = 1_800_000_000 * S
"""Wall time of media time 0."""
LAG = 42_000
"""A list line is printed when the next segment's first keyframe leaves the muxer: ~1 frame late."""


def steady(clock: RunClock, segments: list[tuple[float, float]]) -> list[tuple[int, int]]:
    """Place ``segments`` (media seconds) whose lines arrive as ffmpeg prints them: when the next
    segment's first keyframe arrives (its media start, on a camera whose clock runs); placements
    are returned relative to ``T0 + LAG``."""
    placed = []
    for i, (start, end) in enumerate(segments):
        nxt = segments[i + 1][0] if i + 1 < len(segments) else end
        seen = T0 + round(nxt * S) + LAG
        p = clock.place(seen, round(start * S), round(end * S))
        placed.append((p.start_us - T0 - LAG, p.end_us - T0 - LAG))
    return placed


def test_steady_segments_are_chained_at_the_smallest_delay() -> None:
    clock = RunClock()
    placed = steady(clock, [(0, 2), (2, 4), (4, 6)])
    assert placed == [(0, 2 * S), (2 * S, 4 * S), (4 * S, 6 * S)]
    assert clock.anchor_us == T0 + LAG  # the systematic ~1 frame, as documented


def test_the_segment_closed_after_a_stall_keeps_its_frames_time() -> None:
    """A real camera: its clock runs through the stall, so media time jumps 8 s; the segment holding
    the frames before the stall is listed only when the keyframe after it arrives."""
    clock = RunClock()
    # segment 2 holds 8.00-9.32 (frames stop at 9.32), the next keyframe is media 17.32
    placed = steady(clock, [(0, 4), (4, 8), (8, 9.32), (17.32, 18), (18, 22)])
    assert [p[0] for p in placed] == [0, 4 * S, 8 * S, 17_320_000, 18 * S]
    assert placed[2][1] == 9_320_000, "ends at its last frame, not when it was closed"
    assert placed[3][0] - placed[2][1] == 8 * S, "the hole is where frames stop and resume"


def test_a_media_jump_inside_the_first_segment_does_not_move_it() -> None:
    """Found by bench/chaos.py: a camera whose clock was stepped back at the start of a run gave
    ffmpeg RTP timestamps that read as a 32-bit wrap (~13 h ahead) inside the first segment; its
    end then put the anchor, and the segment, 12-13 h in the past."""
    clock = RunClock()
    wrap = 47_721 * S
    clock.progress(T0 + 1 * S + LAG, 1 * S)  # before the jump: the anchor's bound
    clock.progress(T0 + 1_500_000 + LAG, 1_500_000 + wrap)  # after it: not a smaller delay
    assert clock.progress_bound_us == T0 + LAG
    p = clock.place(T0 + 2 * S + LAG, 0, 2 * S + wrap)
    assert p.start_us == T0 + LAG and p.end_us == T0 + 2 * S + LAG
    assert p.shift_us < -JUMP_US
    # the next segment (after the jump) is placed by its witness, chained to the first
    p = clock.place(T0 + 4 * S + LAG, 2 * S + wrap, 4 * S + wrap)
    assert p.start_us == T0 + 2 * S + LAG and p.end_us == T0 + 4 * S + LAG


def test_one_late_witness_does_not_move_the_anchor() -> None:
    clock = RunClock()
    steady(clock, [(0, 2), (2, 4)])
    anchor = clock.anchor_us
    # segment 2's line is 3 s late (the event loop was blocked): it must not shift segment 3
    p = clock.place(T0 + 6 * S + LAG + 3 * S, 4 * S, 6 * S)
    assert (p.start_us, p.late) == (T0 + LAG + 4 * S, True)
    p = clock.place(T0 + 8 * S + LAG, 6 * S, 8 * S)
    assert clock.anchor_us == anchor and p.start_us == T0 + LAG + 6 * S and p.shift_us == 0


def test_a_paused_clock_is_followed_when_two_arrivals_agree() -> None:
    """The source's clock stood still for 5 s: media time resumes where it stopped."""
    clock = RunClock()
    steady(clock, [(0, 2), (2, 4)])
    pause = 5 * S
    # segment 2 (4-6) straddles the pause: its line comes 5 s late, its start was on time
    p2 = clock.place(T0 + LAG + 6 * S + pause, 4 * S, 6 * S)
    assert p2.start_us == T0 + LAG + 4 * S and p2.shift_us == 0
    # segment 3: its first keyframe (media 6) arrived with segment 2's line, 5 s late, and so
    # does its own line: media time fell behind the wall clock
    p3 = clock.place(T0 + LAG + 8 * S + pause, 6 * S, 8 * S)
    assert p3.shift_us == pause and p3.start_us == T0 + LAG + 6 * S + pause
    assert p3.start_us - p2.end_us == pause


def test_a_clock_jumping_ahead_is_followed_at_once_and_the_segment_is_capped() -> None:
    clock = RunClock()
    steady(clock, [(0, 2), (2, 4)])
    # inside segment 2 the camera's timestamps jumped 60 s ahead: its end (media 66) arrives at 6 s
    p2 = clock.place(T0 + LAG + 6 * S, 4 * S, 66 * S)
    assert p2.end_us == T0 + LAG + 6 * S, "no frame is captured after it arrived"
    p3 = clock.place(T0 + LAG + 8 * S, 66 * S, 68 * S)
    assert p3.shift_us == -60 * S and p3.start_us == p2.end_us


def test_first_segment_closed_after_a_stall_is_capped_by_progress() -> None:
    clock = RunClock()
    clock.progress(T0 + 1 * S + 80_000, 1 * S)  # out_time counts audio a little ahead
    # frames stop at media 1.5; the stall of 6 s delays the first line
    p = clock.place(T0 + 7_500_000 + LAG, 0, 1_500_000)
    assert p.late
    assert 0 <= p.start_us - T0 <= 80_000 + PROGRESS_SLACK_US
    assert BEHIND_THRESHOLD_US > PROGRESS_SLACK_US


def test_next_start_without_a_line() -> None:
    clock = RunClock()
    assert clock.next_start_us(123) == 123
    steady(clock, [(0, 2)])
    assert clock.next_start_us(0) == T0 + LAG + 2 * S
    clock.place(T0 + LAG + 10 * S, 2 * S, 3 * S)  # closed late: a stall followed it
    assert clock.next_start_us(0) == T0 + LAG + 10 * S


def test_hole_inside_a_run_is_a_stall_except_in_event_mode(db_url: str) -> None:
    gw = Gateway(db_url)
    gw.migrate()

    def seed() -> int:
        site = Site.create(name="s", created_us=0)
        cam = Camera.create(site=site, name="c", status_since_us=0, created_us=0, updated_us=0)
        for mode, base in (("continuous", 0), ("event", 100 * S)):
            run = Run.create(camera=cam, start_us=base, end_us=base + 10 * S, end_reason="shutdown",
                             mode=mode)
            for start, end in ((0, 2), (2, 4), (7, 10)):
                Segment.create(camera=cam, run=run, volume="main", path=f"{mode}{start}.mp4",
                               start_us=base + start * S, end_us=base + end * S,
                               duration_us=(end - start) * S, size_bytes=1)
        return int(cam.id)

    try:
        cam = gw.write_sync(seed)
        gaps = gw.read_sync(lambda: build_timeline(cam, 0, 110 * S).gaps)
    finally:
        gw.close()
    assert [(g.start_us, g.end_us, g.reason) for g in gaps] == [
        (4 * S, 7 * S, "stall"), (10 * S, 100 * S, "shutdown"),
        (104 * S, 107 * S, "not_recorded")]
