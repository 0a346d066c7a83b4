"""camsim's RTSP faults against real clients on 127.0.0.1: dropped sessions (ffmpeg's input ends),
refused connections, stalls (with the clock running or paused) and timestamp jumps, read by ffmpeg
and by the tiny RTSP client of tests/camsim/rtsp_client.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import av

from camsim.rtsp import RtspServer
from camsim.sei import read_capture_times
from tests.camsim.rtsp_client import PASSWORD, USER, MiniRtsp, _until, creds_url, run_ffmpeg, wall_us


def _stamped_frames(path: Path) -> int:
    """SEI-stamped video frames in the file ffmpeg is still writing (0 while it cannot be read)."""
    try:
        return len(read_capture_times(path))
    except (OSError, av.error.FFmpegError, IndexError):
        return 0


# ----------------------------------------------------------------------------- tests


async def test_drop_sessions_ends_ffmpeg(server: RtspServer, tmp_path: Path) -> None:
    task = asyncio.create_task(
        run_ffmpeg(
            "-rtsp_transport", "tcp", "-timeout", "3000000", "-i", creds_url(server, "/main"),
            "-c", "copy", "-flush_packets", "1", "-f", "mpegts", str(tmp_path / "dropped.ts"),
        )
    )
    for _ in range(100):
        await asyncio.sleep(0.05)
        if server.session_count and server.sessions()[0]["playing"]:
            break
    await _until(lambda: _stamped_frames(tmp_path / "dropped.ts") > 10, 10)
    server.drop_sessions()
    assert server.session_count == 0
    await asyncio.wait_for(task, 10)  # ffmpeg's input ended: it exits by itself
    assert len(read_capture_times(tmp_path / "dropped.ts")) > 10


async def test_refuse_makes_new_connections_fail(server: RtspServer) -> None:
    server.refuse(1.5)
    rc, err = await run_ffmpeg(
        "-rtsp_transport", "tcp", "-i", creds_url(server, "/main"), "-t", "0.5", "-f", "null", "-"
    )
    assert rc != 0 and "503" in err
    await asyncio.sleep(1.6)
    client = MiniRtsp(server.url("/main"), USER, PASSWORD)
    await client.connect()
    await client.play_tcp()
    await client.close()


async def test_stall_stops_packets_then_resumes_with_jumped_timestamps(server: RtspServer) -> None:
    client = MiniRtsp(server.url("/main"), USER, PASSWORD)
    await client.connect()
    await client.play_tcp()
    await client.read_for(0.6)
    server.stall(1.2)
    stall_at = wall_us()
    await client.read_for(2.4)
    await client.close()
    video = client.rtp(0)
    gap_start = max(p.recv_us for p in video if p.recv_us < stall_at + 50_000)
    after = [p for p in video if p.recv_us > stall_at + 50_000]
    assert after, "media resumed"
    assert after[0].recv_us - gap_start > 1_150_000, "no packets during the stall"
    before = [p for p in video if p.recv_us <= gap_start]
    jump_s = ((after[0].ts - before[-1].ts) & 0xFFFFFFFF) / 90_000
    assert 1.15 < jump_s < 2.3, jump_s  # like a real camera: timestamps moved on in the stall
    assert after[0].capture_us() is not None
    assert after[0].payload[0] & 0x1F == 24, "resumes on an IDR (STAP-A with SPS/PPS)"
    seqs = [p.seq for p in video]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))


async def test_stall_with_paused_clock_resumes_timestamps_where_they_stopped(
        server: RtspServer) -> None:
    client = MiniRtsp(server.url("/main"), USER, PASSWORD)
    await client.connect()
    await client.play_tcp()
    await client.read_for(0.6)
    server.stall(1.2, clock_runs=False)
    stall_at = wall_us()
    await client.read_for(2.4)
    await client.close()
    video = client.rtp(0)
    gap_start = max(p.recv_us for p in video if p.recv_us < stall_at + 50_000)
    before = [p for p in video if p.recv_us <= gap_start]
    after = [p for p in video if p.recv_us > stall_at + 50_000]
    assert after[0].recv_us - gap_start > 1_150_000, "no packets during the stall"
    step = ((after[0].ts - before[-1].ts) & 0xFFFFFFFF) / 90_000
    assert step == 0.04, step  # one frame on: the clock stood still while nothing was sent
    last_capture = [c for c in (p.capture_us() for p in before) if c is not None][-1]
    assert after[0].capture_us() - last_capture > 1_150_000, "captured after the stall"
    assert after[0].payload[0] & 0x1F == 24, "resumes on an IDR (STAP-A with SPS/PPS)"


async def test_jump_timestamps(server: RtspServer) -> None:
    client = MiniRtsp(server.url("/main"), USER, PASSWORD)
    await client.connect()
    await client.play_tcp()
    await client.read_for(0.4)
    server.jump_timestamps(10)
    await client.read_for(0.4)
    await client.close()
    stamps = sorted({p.ts for p in client.rtp(0)}, key=lambda t: t)
    ts = []
    for p in client.rtp(0):
        if not ts or ts[-1] != p.ts:
            ts.append(p.ts)
    deltas = [(b - a) & 0xFFFFFFFF for a, b in zip(ts, ts[1:], strict=False)]
    assert deltas.count(3600) == len(deltas) - 1 and stamps
    assert [d for d in deltas if d != 3600] == [3600 + 900_000]
