"""camsim's RTSP server against real clients on 127.0.0.1: ffmpeg recordings and a tiny RTSP reader.

ffmpeg (the bundled static binary) records over RTSP/TCP and RTSP/UDP with ``-c copy`` into
fragmented MP4 segments; the capture-time SEI read back from the files must match the wall clock.
A minimal asyncio RTSP client (below) checks what ffmpeg hides: per-packet receive times, RTP
sequence/timestamp continuity across clip loops, auth status codes, faults.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import imageio_ffmpeg
import pytest

from camsim.media import MAIN_SPEC, ClipSpec
from camsim.rtsp import RtspServer
from camsim.sei import parse_sei_nal, read_capture_times

SMALL = ClipSpec(width=320, height=180, bitrate_kbps=300, seconds=2)
SMALL_PCMU = ClipSpec(width=320, height=180, bitrate_kbps=300, seconds=2, audio="pcmu")
FRAME_US = 40_000
USER, PASSWORD = "admin", "s3cret"
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def wall_us() -> int:
    return time.time_ns() // 1_000


# ----------------------------------------------------------------------------- a tiny RTSP client


@dataclass
class Packet:
    recv_us: int
    channel: int
    data: bytes

    @property
    def seq(self) -> int:
        return int(struct.unpack(">H", self.data[2:4])[0])

    @property
    def ts(self) -> int:
        return int(struct.unpack(">I", self.data[4:8])[0])

    @property
    def payload(self) -> bytes:
        return self.data[12:]

    def capture_us(self) -> int | None:
        payload = self.payload
        kind = payload[0] & 0x1F
        if kind == 6:
            return parse_sei_nal(payload)
        if kind == 24:
            pos = 1
            while pos + 2 <= len(payload):
                size = struct.unpack(">H", payload[pos : pos + 2])[0]
                value = parse_sei_nal(payload[pos + 2 : pos + 2 + size])
                if value is not None:
                    return value
                pos += 2 + size
        return None


@dataclass
class MiniRtsp:
    """Just enough RTSP for the tests: Digest auth, TCP-interleaved or UDP, packet capture."""

    url: str
    username: str | None = None
    password: str | None = None
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    cseq: int = 0
    session: str | None = None
    auth: str | None = None
    packets: list[Packet] = field(default_factory=list)

    async def connect(self, rcvbuf: int | None = None) -> None:
        m = re.match(r"rtsp://([^:/]+):(\d+)", self.url)
        assert m
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (m.group(1), int(m.group(2))))
        self.reader, self.writer = await asyncio.open_connection(sock=sock)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    async def _read_response(self) -> tuple[int, dict[str, str], bytes]:
        assert self.reader is not None
        while True:
            first = await self.reader.readexactly(1)
            if first == b"$":
                head = await self.reader.readexactly(3)
                data = await self.reader.readexactly(struct.unpack(">H", head[1:])[0])
                self.packets.append(Packet(wall_us(), head[0], data))
                continue
            break
        head = (first + await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        body = await self.reader.readexactly(length) if length else b""
        return status, headers, body

    async def request(
        self, method: str, url: str | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        assert self.writer is not None
        url = url or self.url
        for _ in range(2):
            self.cseq += 1
            lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}"]
            if self.session:
                lines.append(f"Session: {self.session}")
            if self.auth:
                lines.append(f"Authorization: {self.auth_header(method, url)}")
            lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
            self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            status, rheaders, body = await self._read_response()
            if status == 401 and self.username is not None and self.auth is None:
                self.auth = rheaders["www-authenticate"]
                continue
            return status, rheaders, body
        return status, rheaders, body

    def auth_header(self, method: str, uri: str) -> str:
        assert self.auth and self.username is not None and self.password is not None
        realm = re.search(r'realm="([^"]*)"', self.auth)
        nonce = re.search(r'nonce="([^"]*)"', self.auth)
        assert realm and nonce

        def md5(s: str) -> str:
            return hashlib.md5(s.encode()).hexdigest()

        ha1 = md5(f"{self.username}:{realm.group(1)}:{self.password}")
        response = md5(f"{ha1}:{nonce.group(1)}:{md5(f'{method}:{uri}')}")
        return (
            f'Digest username="{self.username}", realm="{realm.group(1)}", '
            f'nonce="{nonce.group(1)}", uri="{uri}", response="{response}"'
        )

    async def play_tcp(self) -> tuple[str, dict[str, str]]:
        status, headers, body = await self.request("DESCRIBE", headers={"Accept": "application/sdp"})
        assert status == 200, status
        sdp = body.decode()
        base = headers["content-base"]
        tracks = re.findall(r"a=control:(trackID=\d+)", sdp)
        for i, track in enumerate(tracks):
            status, headers, _ = await self.request(
                "SETUP", base + track,
                {"Transport": f"RTP/AVP/TCP;unicast;interleaved={2 * i}-{2 * i + 1}"},
            )
            assert status == 200, status
            self.session = headers["session"].split(";")[0]
        status, headers, _ = await self.request("PLAY", base)
        assert status == 200, status
        return sdp, headers

    async def read_for(self, seconds: float) -> None:
        assert self.reader is not None
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                head = await asyncio.wait_for(self.reader.readexactly(4), left)
            except TimeoutError:
                return
            assert head[:1] == b"$", head
            data = await self.reader.readexactly(struct.unpack(">H", head[2:])[0])
            self.packets.append(Packet(wall_us(), head[1], data))

    def rtp(self, channel: int) -> list[Packet]:
        return [p for p in self.packets if p.channel == channel]


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
async def server() -> RtspServer:
    srv = RtspServer(username=USER, password=PASSWORD)
    srv.add_stream("/main", SMALL)
    srv.add_stream("/pcmu", SMALL_PCMU)
    await srv.start()
    yield srv  # type: ignore[misc]
    await srv.stop()


def creds_url(srv: RtspServer, path: str, password: str = PASSWORD) -> str:
    return srv.url(path).replace("rtsp://", f"rtsp://{USER}:{password}@")


async def run_ffmpeg(*args: str, limit_s: float = 30) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "warning", "-y", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), limit_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, err.decode(errors="replace")


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


async def _until(predicate, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    """Wait until ``predicate()`` holds, failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"condition not met within {timeout_s} s"
        await asyncio.sleep(0.05)


def _stamped_frames(path: Path) -> int:
    """SEI-stamped video frames in the file ffmpeg is still writing (0 while it cannot be read)."""
    try:
        return len(read_capture_times(path))
    except (OSError, av.error.FFmpegError, IndexError):
        return 0


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


async def test_digest_auth(server: RtspServer, tmp_path: Path) -> None:
    anonymous = MiniRtsp(server.url("/main"))
    await anonymous.connect()
    status, headers, _ = await anonymous.request("DESCRIBE")
    assert status == 401 and headers["www-authenticate"].startswith("Digest ")
    assert 'realm="' in headers["www-authenticate"] and 'nonce="' in headers["www-authenticate"]
    await anonymous.close()

    wrong = MiniRtsp(server.url("/main"), USER, "wrong")
    await wrong.connect()
    status, _, _ = await wrong.request("DESCRIBE")
    assert status == 401
    await wrong.close()

    rc, err = await run_ffmpeg(
        "-rtsp_transport", "tcp", "-i", creds_url(server, "/main", "wrong"), "-t", "1",
        "-f", "null", "-",
    )
    assert rc != 0 and "401" in err

    # Credentials can change at run time.
    server.password = "n3w"
    right = MiniRtsp(server.url("/main"), USER, "n3w")
    await right.connect()
    await right.play_tcp()
    await right.read_for(0.3)
    await right.close()
    assert right.rtp(0)


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


async def test_udp_session_times_out_without_keepalive(server: RtspServer) -> None:
    server.session_timeout_s = 1
    rtp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp_sock.bind(("127.0.0.1", 0))
    rtp_sock.setblocking(False)
    port = rtp_sock.getsockname()[1]
    client = MiniRtsp(server.url("/main"), USER, PASSWORD)
    await client.connect()
    try:
        _, headers, _ = await client.request("DESCRIBE")
        status, headers, _ = await client.request(
            "SETUP", server.url("/main") + "/trackID=0",
            {"Transport": f"RTP/AVP;unicast;client_port={port}-{port + 1}"},
        )
        assert status == 200
        assert "server_port=" in headers["transport"] and "timeout=1" in headers["session"]
        client.session = headers["session"].split(";")[0]
        status, _, _ = await client.request("PLAY", server.url("/main"))
        assert status == 200
        await asyncio.sleep(0.3)
        data, addr = rtp_sock.recvfrom(2000)
        assert data[0] == 0x80 and addr[0] == "127.0.0.1"
        assert server.sessions()[0]["transport"] == "udp"
        for _ in range(5):  # GET_PARAMETER keep-alives hold the session open past its timeout
            await asyncio.sleep(0.4)
            status, _, _ = await client.request("GET_PARAMETER", server.url("/main"))
            assert status == 200
        assert server.session_count == 1
        for _ in range(40):
            await asyncio.sleep(0.1)
            if server.session_count == 0:
                break
        assert server.session_count == 0, "session expired without keep-alive"
    finally:
        rtp_sock.close()
        await client.close()


async def test_unknown_path_and_transport(server: RtspServer) -> None:
    client = MiniRtsp(server.url("/nope"), USER, PASSWORD)
    await client.connect()
    status, _, _ = await client.request("DESCRIBE")
    assert status == 404
    server.add_stream("/late", SMALL)  # streams may be added while running
    status, _, body = await client.request("DESCRIBE", server.url("/late"))
    assert status == 200 and b"m=video" in body
    status, headers, _ = await client.request("OPTIONS")
    assert status == 200 and "GET_PARAMETER" in headers["public"]
    status, _, _ = await client.request(
        "SETUP", server.url("/main") + "/trackID=0", {"Transport": "RTP/AVP;multicast"}
    )
    assert status == 461
    await client.close()


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
