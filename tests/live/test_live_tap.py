"""The recorder's live output pipe (recorder/live_tap.py): polled while nobody watches, read at
once while watched, and never left to fill up.

ffmpeg writes a tiny H.264 stream as fragmented MP4 (one fragment a frame, a keyframe every 5
frames) into a file once; the test then plays ffmpeg's part on a real :class:`LiveTap` pipe,
writing those bytes frame by frame, and checks what the feed holds and when.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from recorder.fmp4 import Fmp4Splitter, FragmentBacklog, fragment_is_keyframe
from recorder.live_tap import POLL_S, FeedItem, LiveFeeds, LiveTap
from vms.config import load_settings

KEY = (7, "main")


@pytest.fixture(scope="module")
def units(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """The init segment, then 40 fragments (keyframes at 0, 5, 10, …)."""
    out = tmp_path_factory.mktemp("tap") / "live.mp4"
    ffmpeg = load_settings(None, env={}, overrides={"data_dir": str(out.parent)}).ffmpeg_exe()
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=160x90:rate=25", "-frames:v", "40", "-c:v", "libx264",
                    "-g", "5", "-bf", "0", "-f", "mp4", "-movflags",
                    "+frag_every_frame+empty_moov+default_base_moof", str(out)],
                   check=True, timeout=60)
    got = [unit for _, unit in Fmp4Splitter().feed(Path(out).read_bytes())]
    assert len(got) == 41 and [fragment_is_keyframe(u) for u in got[1:6]] == [
        True, False, False, False, False]
    return got


async def until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_unwatched_tap_polls_watched_tap_reads_every_frame(units: list[bytes]) -> None:
    feeds = LiveFeeds()
    tap = LiveTap(feeds, KEY, "camera 'tap'")
    wfd = os.dup(tap.open())  # the test's copy plays ffmpeg's; the tap closes its own
    feed = feeds.get(KEY)
    assert feed is not None and tap.pipe_bytes >= 256 * 1024 and not tap.reading
    try:
        for unit in units[:8]:  # init, keyframe 0, 1…4, keyframe 5, 6
            os.write(wfd, unit)
        assert feed.init is None  # nobody watches: nothing read until the next poll
        await until(lambda: feed.init is not None)
        assert feed.gop == units[6:8] and tap.drains == 1  # all of it in one read

        os.write(wfd, units[8])
        queue: asyncio.Queue[FeedItem] = feed.attach()
        # the viewer gets the newest GOP at once: the pipe was drained when it attached
        got = [queue.get_nowait() for _ in range(queue.qsize())]
        assert got == [("init", units[0])] + [("fragment", u) for u in units[6:9]]
        assert tap.reading
        for unit in units[9:12]:  # watched: each frame is read as soon as it is written
            drains = tap.drains
            os.write(wfd, unit)
            assert await asyncio.wait_for(queue.get(), 2) == ("fragment", unit)
            assert tap.drains == drains + 1

        feed.detach(queue)  # the last viewer left: back to polling
        assert not tap.reading
        drains, started = tap.drains, time.monotonic()
        for unit in units[12:20]:
            os.write(wfd, unit)
            await asyncio.sleep(POLL_S / 8)
        await until(lambda: feed.gop[-1] == units[19])
        # 8 frames, but at most a read each POLL_S
        assert tap.drains - drains <= (time.monotonic() - started) / POLL_S + 1

        for unit in units[20:]:
            os.write(wfd, unit)
        tap.started()  # the test's copy of the write end is the only one left
        os.close(wfd)  # ... and "ffmpeg" exits
        await tap.close()
        assert feed.gop == units[36:] and not feed.live and feeds.get(KEY) is None
    finally:
        with contextlib.suppress(OSError):
            os.close(wfd)
        await tap.close()


async def test_a_high_bit_rate_polls_sooner_a_late_poll_does_not(units: list[bytes]) -> None:
    feeds = LiveFeeds()
    tap = LiveTap(feeds, KEY, "camera 'fast'")
    wfd = os.dup(tap.open())
    try:
        os.write(wfd, units[0])
        written, i = 0, 0
        while written < tap.pipe_bytes // 2:  # a high bit rate: half the pipe in one period
            unit = units[1 + i % 40]
            os.write(wfd, unit)
            written += len(unit)
            i += 1
        await until(lambda: tap.drains == 1)
        assert tap.poll_s < POLL_S / 1.5 and not tap.reading
        feed = feeds.get(KEY)
        assert feed is not None and feed.gop[0] == units[1 + (i - 1) % 40 // 5 * 5]

        time.sleep(POLL_S)  # noqa: ASYNC251 - a busy loop: the next poll comes late
        os.write(wfd, units[1])
        await until(lambda: tap.drains == 2, 2)
        assert tap.poll_s == POLL_S  # a normal rate again: a few bytes over a long time
        assert feed.gop == [units[1]]
    finally:
        os.close(wfd)
        await tap.close()


def test_backlog_keeps_the_latest_gop_and_cuts_fragments_on_demand(units: list[bytes]) -> None:
    frags = units[1:]  # keyframes at 0, 5, 10, ...
    stream = b"".join(frags[:13])
    backlog = FragmentBacklog()
    for i in range(0, len(stream), 1000):  # reads end anywhere, mid-box included
        backlog.add(memoryview(stream)[i:i + 1000])
    backlog.trim()
    assert len(backlog) == len(b"".join(frags[10:13]))  # only the GOP since keyframe 10
    backlog.add(frags[13][:50])  # half a box: not a fragment yet
    assert backlog.take() == frags[10:13]
    backlog.add(frags[13][50:])
    backlog.add(frags[14])
    backlog.trim()  # no keyframe among 13, 14: nothing dropped
    assert backlog.take() == frags[13:15] and not backlog.lost

    long_gop = FragmentBacklog(max_fragments=3)
    for frag in frags[1:5]:  # four fragments, no keyframe: more than a GOP may hold
        long_gop.add(frag)
    long_gop.trim()
    assert long_gop.lost and long_gop.take() == []
