"""Event keep windows (recorder/preroll.py) without a recording: an open event whose end never
comes is capped at event_max_s and the next one starts afresh; old windows are pruned."""

from __future__ import annotations

from recorder.preroll import KeepWindows
from vms.clock import FakeClock

S = 1_000_000


def test_an_event_whose_end_never_came_is_capped_and_the_next_starts_afresh() -> None:
    clock = FakeClock()
    t0 = clock.now_us()
    keeps = KeepWindows(clock, pre_roll_s=5, post_roll_s=10, event_max_s=60)
    keeps.add_event("motion", True, t0)  # the camera never sends the false
    clock.advance(600)
    later = clock.now_us()
    keeps.add_event("motion", True, later)  # a new motion, ten minutes on
    clock.advance(120)
    keeps.add_event("motion", False, clock.now_us())
    # the new event is kept whole, from its own start: not capped at the stale one's start + 60 s
    assert keeps.keeping(later + 100 * S, later + 110 * S)
    # the stale event was kept up to its cap and no further
    assert keeps.keeping(t0 + 50 * S, t0 + 55 * S)
    assert not keeps.keeping(t0 + 200 * S, t0 + 210 * S)


def test_prune_forgets_only_windows_that_ended() -> None:
    clock = FakeClock()
    keeps = KeepWindows(clock, pre_roll_s=1, post_roll_s=1, event_max_s=60)
    start = clock.now_us()
    for i in range(1000):  # a busy courtyard: a momentary event every 10 s
        keeps.add_event("motion", None, start + i * 10 * S)
    assert len(keeps) == 1000
    keeps.prune(start + 5000 * S)
    assert len(keeps) == 500
    assert keeps.keeping(start + 5000 * S, start + 5001 * S)
    assert not keeps.keeping(start + 4000 * S, start + 4000 * S + 500_000)
