"""camsim's RTSP media against real clients on 127.0.0.1: what is streamed and when.

ffmpeg (the bundled static binary) records over RTSP/TCP and RTSP/UDP with ``-c copy`` into
fragmented MP4 segments; the capture-time SEI read back from the files must match the wall clock.
The tiny RTSP client (tests/camsim/rtsp_client.py) checks per-packet receive times and RTP
sequence/timestamp continuity across clip loops, the time offset, G.711 audio, a 1080p stream and a
fake clock's stamps.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import av
import pytest

from camsim.media import MAIN_SPEC
from camsim.rtsp import RtspServer
from camsim.sei import read_capture_times
from tests.camsim.rtsp_client import (
    FRAME_US,
    PASSWORD,
    SMALL,
    USER,
    MiniRtsp,
    _until,
    creds_url,
    run_ffmpeg,
    wall_us,
)


async def record_segments(url: str, out_dir: Path, transport: str, seconds: float) -> tuple[int, int]:
    """Record with ``-c copy`` into fMP4 segments; returns wall time (start, end) in µs."""
    start = wall_us()
    rc, err = await run_ffmpeg(
        "-rtsp_transport", transport, "-i", url, "-t", str(seconds), "-map", "0", "-c", "copy",
        "-f", "segment", "-segment_time", "2", "-reset_timestamps", "0",
        "-segment_format", "mp4",
        "-segment_format_options", "movflags=+frag_keyframe+empty_moov+default_base_moof",
        str(out_dir / "seg%03d.mp4"),
    )
    end = wall_us()
    assert rc == 0, err
    return start, end


def _span_s(path: Path, kind: str) -> float:
    """Duration of one stream of a file from its packets' PTS."""
    lo, hi = float("inf"), 0.0
    with av.open(str(path)) as c:
        stream = c.streams.video[0] if kind == "video" else c.streams.audio[0]
        for packet in c.demux(stream):
            if packet.pts is None or packet.time_base is None:
                continue
            t = float(packet.pts * packet.time_base)
            lo = min(lo, t)
            hi = max(hi, t + float((packet.duration or 0) * packet.time_base))
    return hi - lo


def check_recording(out_dir: Path, start_us: int, end_us: int, seconds: float) -> None:
    segments = sorted(out_dir.glob("seg*.mp4"))
    assert len(segments) >= 2
    stamps: list[tuple[float, int]] = []
    video_s = audio_s = 0.0
    for index, seg in enumerate(segments):
        with av.open(str(seg)) as c:
            assert c.streams.audio[0].codec_context.name == "aac"
        video_s += _span_s(seg, "video")
        audio_s += _span_s(seg, "audio")
        seg_stamps = read_capture_times(seg)
        # PTS restart in each fMP4 segment (as PyAV reads them); within a segment they advance one
        # frame at a time, monotonic, with no jump across the 2-second clip's loop boundaries.
        # The very first frame of a recording gets its PTS filled in by ffmpeg's muxer
        # ("Timestamps are unset"), so it is left out of the PTS checks.
        checked = seg_stamps[1 if index == 0 else 0 :]
        for (pa, _), (pb, _) in zip(checked, checked[1:], strict=False):
            assert abs((pb - pa) - 0.04) < 0.002, (seg.name, pa, pb)
        # Capture time tracks PTS: the stream does not drift against the wall clock.
        p0, c0 = checked[0]
        assert max(abs((c - c0) / 1e6 - (p - p0)) for p, c in checked) < 0.045
        stamps += seg_stamps
    n = len(stamps)
    assert abs(n - seconds * 25) <= 3, n
    caps = [c for _, c in stamps]
    # Consecutive capture times advance one frame (40 ms ± 1 frame), across segments too.
    for a, b in zip(caps, caps[1:], strict=False):
        assert abs((b - a) - FRAME_US) <= FRAME_US, (a, b)
    # Every frame was captured while ffmpeg ran; the last within ~a frame + slack of the end.
    assert start_us < caps[0] and caps[-1] < end_us
    assert end_us - caps[-1] < 1_000_000
    assert abs(video_s - seconds) < 0.2, video_s
    assert abs(audio_s - seconds) < 0.3, audio_s


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_ffmpeg_records_with_capture_sei(server: RtspServer, tmp_path: Path, transport: str) -> None:
    start, end = await record_segments(creds_url(server, "/main"), tmp_path, transport, 4.5)
    check_recording(tmp_path, start, end, 4.5)
    await _until(lambda: server.session_count == 0, 5)  # ffmpeg's TEARDOWN ended it


async def test_sei_matches_receive_time_and_rtp_is_continuous_across_loops(
    server: RtspServer,
) -> None:
    server.time_offset_us = 0
    client = MiniRtsp(server.url("/main"), USER, PASSWORD)
    await client.connect()
    sdp, play = await client.play_tcp()
    assert "packetization-mode=1" in sdp and "sprop-parameter-sets=" in sdp
    assert "profile-level-id=" in sdp and "mpeg4-generic" in sdp.lower()
    assert "rtp-info" in play
    sessions = server.sessions()
    assert server.session_count == 1 and sessions[0]["path"] == "/main"
    assert sessions[0]["transport"] == "tcp" and str(sessions[0]["client"]).startswith("127.0.0.1:")
    await client.read_for(4.6)  # crosses two loop boundaries of the 2-second clip
    await client.close()
    video = client.rtp(0)
    audio = client.rtp(2)
    assert len(client.rtp(1)) >= 1, "RTCP sender report"
    first_seq = int(re.search(r"seq=(\d+)", play["rtp-info"]).group(1))  # type: ignore[union-attr]
    assert video[0].seq == first_seq
    for pkts in (video, audio):
        seqs = [p.seq for p in pkts]
        assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    stamped = [(p.recv_us, p.capture_us(), p.ts) for p in video if p.capture_us() is not None]
    assert 110 <= len(stamped) <= 118
    for (_, ca, ta), (_, cb, tb) in zip(stamped, stamped[1:], strict=False):
        assert (tb - ta) & 0xFFFFFFFF == 3600  # exact across loops
        assert abs((cb - ca) - FRAME_US) < 15_000  # type: ignore[operator]
    lag = [recv - cap for recv, cap, _ in stamped]  # type: ignore[operator]
    assert min(lag) > -5_000 and max(lag) < FRAME_US + 20_000, (min(lag), max(lag))
    a_ts = [p.ts for p in audio]
    assert all((b - a) & 0xFFFFFFFF == 1024 for a, b in zip(a_ts, a_ts[1:], strict=False))
    # Video and audio are paced together: audio covers the same span of time.
    assert abs(len(audio) * 1024 / 16_000 - len(stamped) * 0.04) < 0.2


async def test_time_offset_shifts_sei(server: RtspServer) -> None:
    server.time_offset_us = -3_600_000_000
    client = MiniRtsp(server.url("/main"), USER, PASSWORD)
    await client.connect()
    await client.play_tcp()
    await client.read_for(0.5)
    await client.close()
    caps = [(p.recv_us, p.capture_us()) for p in client.rtp(0) if p.capture_us() is not None]
    assert caps
    for recv, cap in caps:
        assert abs(recv - cap - 3_600_000_000) < 100_000  # type: ignore[operator]


async def test_pcmu_is_offered_and_readable(server: RtspServer, tmp_path: Path) -> None:
    client = MiniRtsp(server.url("/pcmu"), USER, PASSWORD)
    await client.connect()
    status, _, body = await client.request("DESCRIBE")
    await client.close()
    assert status == 200
    assert "m=audio 0 RTP/AVP 0" in body.decode() and "a=rtpmap:0 PCMU/8000" in body.decode()
    out = tmp_path / "pcmu.mp4"
    rc, err = await run_ffmpeg(
        "-rtsp_transport", "tcp", "-i", creds_url(server, "/pcmu"), "-t", "2",
        "-c:v", "copy", "-c:a", "aac", str(out),
    )
    assert rc == 0, err
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
        assert c.streams.video[0].codec_context.name == "h264"
    assert len(read_capture_times(out)) >= 45


@pytest.mark.slow
async def test_1080p_stream_and_slow_reader_is_dropped(tmp_path: Path) -> None:
    srv = RtspServer()
    srv.add_stream("/main", MAIN_SPEC)
    await srv.start()
    try:
        client = MiniRtsp(srv.url("/main"))
        await client.connect(rcvbuf=16 * 1024)
        sdp, _ = await client.play_tcp()
        assert "a=x-dimensions:1920,1080" in sdp
        await client.read_for(1.0)
        video_bytes = sum(len(p.data) for p in client.rtp(0))
        assert 300_000 < video_bytes < 900_000  # ~4 Mbps (the first second has the IDR)
        # Now stop reading: the server must drop us once we are > 2 s behind.
        for _ in range(120):
            await asyncio.sleep(0.1)
            if srv.session_count == 0:
                break
        assert srv.session_count == 0
        await client.close()
    finally:
        await srv.stop()


async def test_fake_clock_stamps_its_wall_time_but_pacing_stays_real() -> None:
    from vms.clock import FakeClock

    clock = FakeClock(start_us=1_000_000_000_000_000)
    srv = RtspServer(clock=clock)
    srv.add_stream("/main", SMALL)
    await srv.start()
    try:
        client = MiniRtsp(srv.url("/main"))
        await client.connect()
        await client.play_tcp()
        await client.read_for(0.5)
        await client.close()
    finally:
        await srv.stop()
    caps = [p.capture_us() for p in client.rtp(0) if p.capture_us() is not None]
    assert 11 <= len(caps) <= 15  # real-time pacing: a fake clock cannot make the sender spin
    # the fake wall time, less how late the real-time sender was (up to a second on a busy
    # machine), never the real wall time (years away)
    assert all(abs(c - 1_000_000_000_000_000) < 1_000_000 for c in caps)  # type: ignore[operator]
