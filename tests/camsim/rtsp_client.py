"""A tiny RTSP client and the helpers the camsim RTSP tests share (tests/camsim/test_rtsp_*.py).

A minimal asyncio RTSP client checks what ffmpeg hides: per-packet receive times, RTP
sequence/timestamp continuity across clip loops, auth status codes, faults. ``run_ffmpeg`` runs the
bundled static ffmpeg against camsim's RTSP server on 127.0.0.1 (the ``server`` fixture is in
tests/camsim/conftest.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import struct
import time
from dataclasses import dataclass, field

import imageio_ffmpeg

from camsim.media import ClipSpec
from camsim.rtsp import RtspServer
from camsim.sei import parse_sei_nal

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


async def _until(predicate, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    """Wait until ``predicate()`` holds, failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"condition not met within {timeout_s} s"
        await asyncio.sleep(0.05)
