"""The virtual camera's RTSP 1.0 server (RFC 2326): sessions, RTP pacing, auth and fault injection.

This module owns what a camera's RTSP port does: OPTIONS, DESCRIBE (SDP from :mod:`camsim.sdp`),
SETUP over TCP-interleaved or UDP (``client_port`` pair; RTP and RTCP leave from the server's own
UDP pair), PLAY, PAUSE, TEARDOWN, GET/SET_PARAMETER keep-alives, session timeouts, and Digest
(RFC 2617) or Basic authentication. Each playing session is one asyncio task that paces the shared
pre-packetised clip (:mod:`camsim.media`) by the monotonic media clock, loops it forever with
continuous RTP sequence numbers and timestamps, stamps every access unit with an SEI capture time
(:mod:`camsim.sei`), sends RTCP sender reports, and writes one batch per access unit. The fault
methods (:meth:`RtspServer.drop_sessions`, ``refuse``, ``stall``, ``jump_timestamps``) are what the
control API calls.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from camsim.media import (
    FRAMING_BYTES,
    NAL_STAP_A,
    RTP_HEADER,
    VIDEO_CLOCK_RATE,
    Clip,
    ClipSpec,
    ensure_clip,
)
from camsim.sdp import AUDIO_TRACK, VIDEO_PAYLOAD_TYPE, VIDEO_TRACK, build_sdp, track_control
from camsim.sei import build_sei_nal
from vms.clock import Clock, SystemClock

log = logging.getLogger(__name__)

MAX_LAG_US = 2_000_000
"""A session that falls this far behind its media clock (slow reader) is dropped."""
SR_INTERVAL_US = 5_000_000
WRITE_HIGH_WATER_BYTES = 1 << 20
SOCKET_SEND_BUFFER_BYTES = 256 * 1024
NTP_EPOCH_OFFSET_S = 2_208_988_800
MAX_REQUEST_BYTES = 64 * 1024
PUBLIC_METHODS = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    459: "Aggregate Operation Not Allowed",
    461: "Unsupported Transport",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "RTSP Version Not Supported",
}
_AUTH_PARAM_RE = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


@dataclass
class _Request:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes

    @property
    def cseq(self) -> str:
        return self.headers.get("cseq", "0")


@dataclass
class _Track:
    index: int
    payload_type: int
    clock_rate: int
    ssrc: int
    seq: int
    ts_base: int
    channel: int = 0  # TCP interleaved RTP channel (RTCP is channel + 1)
    rtp_addr: tuple[str, int] | None = None  # UDP destination for RTP
    rtcp_addr: tuple[str, int] | None = None
    packets: int = 0
    octets: int = 0

    def next_seq(self, count: int = 1) -> int:
        first = self.seq
        self.seq = (self.seq + count) & 0xFFFF
        return first


@dataclass(eq=False)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer: tuple[str, int]
    sessions: set[str] = field(default_factory=set)

    @property
    def closing(self) -> bool:
        return self.writer.is_closing()


class _Session:
    """One RTSP session: its tracks, its transport and (while playing) its sender task."""

    def __init__(
        self,
        server: RtspServer,
        session_id: str,
        path: str,
        clip: Clip,
        conn: _Connection,
        transport: Literal["tcp", "udp"],
    ) -> None:
        self.server = server
        self.id = session_id
        self.path = path
        self.clip = clip
        self.conn = conn
        self.transport = transport
        self.tracks: dict[int, _Track] = {}
        self.start_mono_us: int | None = None
        self.task: asyncio.Task[None] | None = None
        self.last_seen_mono_us = _mono_us()
        self.closed = False
        self.has_played = False

    # -- timeline ------------------------------------------------------------------------------
    # Frame n of the session (counted from its first PLAY, across loops) is due at
    # start + n * 1e6 / fps and carries RTP time n * 90000 / fps; audio packet m (across loops)
    # is due at its own media time. Stalls and pauses skip frames, so timestamps jump forward.

    def _frame_media_us(self, n: int) -> int:
        return n * 1_000_000 // self.clip.spec.fps

    def _video_ts(self, n: int, jump_us: int) -> int:
        track = self.tracks[VIDEO_TRACK]
        rtp = n * VIDEO_CLOCK_RATE // self.clip.spec.fps + jump_us * VIDEO_CLOCK_RATE // 1_000_000
        return (track.ts_base + rtp) & 0xFFFFFFFF

    # Audio loops on its own period (a whole number of packets), so its timestamps advance by
    # exactly one packet every time, seamlessly; the tone does not need to line up with the video.

    def _audio_media_us(self, m: int) -> int:
        audio = self.clip.audio
        assert audio is not None
        return m * audio.samples_per_packet * 1_000_000 // audio.clock_rate

    def _audio_ts(self, m: int, jump_us: int) -> int:
        audio = self.clip.audio
        assert audio is not None
        track = self.tracks[AUDIO_TRACK]
        rtp = m * audio.samples_per_packet + jump_us * audio.clock_rate // 1_000_000
        return (track.ts_base + rtp) & 0xFFFFFFFF

    def _first_audio_at(self, media_us: int) -> int:
        """The first audio packet whose media time is at or after ``media_us``."""
        audio = self.clip.audio
        if audio is None:
            return 0
        step = audio.samples_per_packet * 1_000_000
        return int(-(-media_us * audio.clock_rate // step))

    def _resync_frame(self, now_us: int) -> int:
        """The first frame due at or after ``now_us`` that starts a GOP (an IDR)."""
        assert self.start_mono_us is not None
        fps = self.clip.spec.fps
        n = max(0, -(-(now_us - self.start_mono_us) * fps // 1_000_000))
        aus = self.clip.aus
        for _ in range(len(aus)):
            if aus[n % len(aus)].is_idr:
                break
            n += 1
        return n

    def _first_frame(self) -> int:
        """Frame 0 on the first PLAY; after a PAUSE, the next IDR due from now."""
        if not self.has_played:
            return 0
        return self._resync_frame(_mono_us())

    def rtp_info(self, base_url: str) -> str:
        """The RTP-Info header value for the first packets PLAY will send."""
        assert self.start_mono_us is not None
        n = self._first_frame()
        jump = self.server._jump_us
        parts = []
        for index, track in sorted(self.tracks.items()):
            if index == VIDEO_TRACK:
                ts = self._video_ts(n, jump)
            else:
                ts = self._audio_ts(self._first_audio_at(self._frame_media_us(n)), jump)
            parts.append(f"url={base_url}/{track_control(index)};seq={track.seq};rtptime={ts}")
        return ",".join(parts)

    # -- sending -------------------------------------------------------------------------------

    def _send_rtcp(self, track: _Track, packet: bytes) -> None:
        if self.transport == "tcp":
            self.conn.writer.write(
                b"$" + bytes((track.channel + 1,)) + struct.pack(">H", len(packet)) + packet
            )
        elif track.rtcp_addr is not None and self.server._rtcp_transport is not None:
            self.server._rtcp_transport.sendto(packet, track.rtcp_addr)

    def _sender_reports(self, n: int, wall_us: int, jump_us: int) -> None:
        media_us = self._frame_media_us(n)
        for index, track in self.tracks.items():
            if index == VIDEO_TRACK:
                ts = self._video_ts(n, jump_us)
            else:
                audio = self.clip.audio
                assert audio is not None
                ts = (
                    track.ts_base + (media_us + jump_us) * audio.clock_rate // 1_000_000
                ) & 0xFFFFFFFF
            self._send_rtcp(track, _sender_report(track, wall_us, ts))

    def _video_packets(
        self, n: int, capture_us: int, jump_us: int
    ) -> tuple[bytearray, list[tuple[int, int]]]:
        """The interleaved batch for frame ``n`` and its (offset, rtp_length) packet slices."""
        track = self.tracks[VIDEO_TRACK]
        au = self.clip.aus[n % len(self.clip.aus)]
        sei = build_sei_nal(capture_us)
        if au.is_idr:
            prefix = bytearray((0x60 | NAL_STAP_A,))
            for nal in (self.clip.sps, self.clip.pps, sei):
                prefix += struct.pack(">H", len(nal)) + nal
        else:
            prefix = bytearray(sei)
        ts = self._video_ts(n, jump_us)
        template = au.template
        head_len = FRAMING_BYTES + 12 + len(prefix)
        buf = bytearray(FRAMING_BYTES + 12)
        buf += prefix
        buf += template.blob
        count = len(template.offsets) + 1
        seq = track.next_seq(count)
        ch = track.channel
        ssrc = track.ssrc
        pt = VIDEO_PAYLOAD_TYPE
        RTP_HEADER.pack_into(buf, 0, 0x24, ch, head_len - FRAMING_BYTES, 0x80, pt, seq, ts, ssrc)
        slices = [(0, head_len - FRAMING_BYTES)]
        last = count - 2
        for i, (off, length) in enumerate(zip(template.offsets, template.lengths, strict=True)):
            marker = 0x80 if i == last else 0
            RTP_HEADER.pack_into(
                buf,
                head_len + off,
                0x24,
                ch,
                length,
                0x80,
                marker | pt,
                (seq + 1 + i) & 0xFFFF,
                ts,
                ssrc,
            )
            slices.append((head_len + off, length))
        track.packets += count
        track.octets += len(buf) - FRAMING_BYTES * count - 12 * count
        return buf, slices

    def _audio_packets(
        self, m_from: int, m_to: int, jump_us: int
    ) -> tuple[bytearray, list[tuple[int, int]]]:
        audio = self.clip.audio
        assert audio is not None
        track = self.tracks[AUDIO_TRACK]
        buf = bytearray()
        slices: list[tuple[int, int]] = []
        per_loop = len(audio.payloads)
        marker = 0x80 if audio.codec == "aac" else 0
        for m in range(m_from, m_to):
            payload = audio.payloads[m % per_loop]
            off = len(buf)
            length = 12 + len(payload)
            buf += RTP_HEADER.pack(
                0x24,
                track.channel,
                length,
                0x80,
                marker | track.payload_type,
                track.next_seq(),
                self._audio_ts(m, jump_us),
                track.ssrc,
            )
            buf += payload
            slices.append((off, length))
            track.packets += 1
            track.octets += len(payload)
        return buf, slices

    def _send_udp(self, track: _Track, buf: bytearray, slices: list[tuple[int, int]]) -> None:
        transport = self.server._rtp_transport
        if transport is None or track.rtp_addr is None:
            return
        view = memoryview(buf)
        for off, length in slices:
            transport.sendto(
                view[off + FRAMING_BYTES : off + FRAMING_BYTES + length], track.rtp_addr
            )

    async def run(self) -> None:
        """Send media until cancelled, the connection closes, or the reader falls too far behind."""
        server = self.server
        clock = server._clock
        clip = self.clip
        has_video = VIDEO_TRACK in self.tracks
        has_audio = AUDIO_TRACK in self.tracks and clip.audio is not None
        if self.start_mono_us is None:
            self.start_mono_us = _mono_us()
        start = self.start_mono_us
        n = self._first_frame()
        self.has_played = True
        m = self._first_audio_at(self._frame_media_us(n))
        next_sr_n = n
        sr_every = max(1, SR_INTERVAL_US * clip.spec.fps // 1_000_000)
        writer = self.conn.writer
        ended = False
        try:
            while not self.closed:
                due = start + self._frame_media_us(n)
                now = _mono_us()
                if due > now:
                    await asyncio.sleep((due - now) / 1_000_000)
                    now = _mono_us()
                if now < server._stall_until_mono_us:
                    await asyncio.sleep((server._stall_until_mono_us - now) / 1_000_000)
                    n = self._resync_frame(_mono_us())
                    m = self._first_audio_at(self._frame_media_us(n))
                    next_sr_n = n
                    continue
                if now - due > MAX_LAG_US:
                    log.warning(
                        "camsim rtsp %s: session %s (%s %s:%s) fell %.1f s behind; dropping it",
                        self.path,
                        self.id,
                        self.transport,
                        *self.conn.peer,
                        (now - due) / 1e6,
                    )
                    break
                if self.conn.closing:
                    break
                jump = server._jump_us
                capture_us = clock.now_us() + server.time_offset_us - (now - due)
                if n >= next_sr_n:
                    self._sender_reports(n, capture_us, jump)
                    next_sr_n = n + sr_every
                media_next = self._frame_media_us(n + 1)
                m_to = m
                if has_audio:
                    while self._audio_media_us(m_to) < media_next:
                        m_to += 1
                if self.transport == "tcp":
                    batch = bytearray()
                    if has_video:
                        batch, _ = self._video_packets(n, capture_us, jump)
                    if m_to > m:
                        abuf, _ = self._audio_packets(m, m_to, jump)
                        batch += abuf
                    writer.write(batch)
                    server.bytes_sent += len(batch)
                    if writer.transport.get_write_buffer_size() > WRITE_HIGH_WATER_BYTES:
                        budget = max(0.05, (MAX_LAG_US - (_mono_us() - due)) / 1e6)
                        try:
                            await asyncio.wait_for(writer.drain(), budget)
                        except TimeoutError:
                            log.warning(
                                "camsim rtsp %s: session %s (%s:%s) is not reading; dropping it",
                                self.path,
                                self.id,
                                *self.conn.peer,
                            )
                            break
                else:
                    if has_video:
                        vbuf, vslices = self._video_packets(n, capture_us, jump)
                        self._send_udp(self.tracks[VIDEO_TRACK], vbuf, vslices)
                        server.bytes_sent += len(vbuf) - FRAMING_BYTES * len(vslices)
                    if m_to > m:
                        abuf, aslices = self._audio_packets(m, m_to, jump)
                        self._send_udp(self.tracks[AUDIO_TRACK], abuf, aslices)
                        server.bytes_sent += len(abuf) - FRAMING_BYTES * len(aslices)
                m = m_to
                n += 1
            ended = True
        except (ConnectionError, OSError) as exc:
            log.info("camsim rtsp %s: session %s ended: %s", self.path, self.id, exc)
            ended = True
        finally:
            if self.task is asyncio.current_task():
                self.task = None
            if ended and not self.closed:
                server._close_session(self.id, close_connection=self.transport == "tcp")


def _mono_us() -> int:
    """Real monotonic time. Pacing, stalls, refusals and timeouts always run in real time, so an
    injected fake clock (which only supplies the wall time stamped into the SEI and RTCP) can
    never make a sender spin."""
    return time.monotonic_ns() // 1_000


def _sender_report(track: _Track, wall_us: int, rtp_ts: int) -> bytes:
    secs, frac_us = divmod(wall_us, 1_000_000)
    ntp_frac = (frac_us << 32) // 1_000_000
    sr = struct.pack(
        ">BBHIIIIII",
        0x80,
        200,
        6,
        track.ssrc,
        (secs + NTP_EPOCH_OFFSET_S) & 0xFFFFFFFF,
        ntp_frac,
        rtp_ts,
        track.packets & 0xFFFFFFFF,
        track.octets & 0xFFFFFFFF,
    )
    cname = b"camsim"
    item = bytes((1, len(cname))) + cname + b"\x00"
    item += b"\x00" * (-len(item) % 4)
    sdes = struct.pack(">BBHI", 0x81, 202, (4 + len(item)) // 4, track.ssrc) + item
    return sr + sdes


class _UdpSink(asyncio.DatagramProtocol):
    """The server's RTCP socket: receiver reports count as a session's keep-alive."""

    def __init__(self, server: RtspServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.server._touch_udp(addr)


class RtspServer:
    """One camera's RTSP port. Add streams, ``await start()``, and hand out :meth:`url`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        username: str | None = None,
        password: str | None = None,
        clock: Clock | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.username = username
        self.password = password
        self.realm = "camsim"
        self.name = "camsim"
        self.session_timeout_s = 60
        self.time_offset_us = 0
        self.bytes_sent = 0
        self._clock: Clock = clock or SystemClock()
        self._cache_dir = cache_dir
        self._specs: dict[str, ClipSpec] = {}
        self._clips: dict[str, Clip] = {}
        self._server: asyncio.Server | None = None
        self._port = 0
        self._conns: set[_Connection] = set()
        self._sessions: dict[str, _Session] = {}
        self._refuse_until_mono_us = 0
        self._stall_until_mono_us = 0
        self._jump_us = 0
        self._nonce_key = secrets.token_bytes(16)
        self._rtp_transport: asyncio.DatagramTransport | None = None
        self._rtcp_transport: asyncio.DatagramTransport | None = None
        self._udp_ports = (0, 0)
        self._reaper: asyncio.Task[None] | None = None
        self._conn_tasks: set[asyncio.Task[None]] = set()

    # -- public API ----------------------------------------------------------------------------

    def add_stream(self, path: str, spec: ClipSpec) -> None:
        """Serve ``spec`` at ``path`` (e.g. ``/main``); clips are loaded by :meth:`start`."""
        if not path.startswith("/"):
            path = "/" + path
        self._specs[path.rstrip("/") or "/"] = spec

    async def start(self) -> None:
        for path, spec in self._specs.items():
            self._clips[path] = await asyncio.to_thread(ensure_clip, spec, self._cache_dir)
        self._server = await asyncio.start_server(
            self._on_connection, self.host, self._requested_port, limit=MAX_REQUEST_BYTES
        )
        self._port = self._server.sockets[0].getsockname()[1]
        await self._open_udp()
        self._reaper = asyncio.create_task(
            self._reap_loop(), name=f"camsim-rtsp-reaper-{self._port}"
        )
        log.info("camsim rtsp: listening on %s (streams %s)", self.url(""), ", ".join(self._specs))

    async def stop(self) -> None:
        """Stop listening, close every session and connection, and wait for their tasks."""
        if self._server is not None:
            self._server.close()
        tasks = [s.task for s in self._sessions.values() if s.task is not None]
        self.drop_sessions()
        if self._reaper is not None:
            self._reaper.cancel()
            tasks.append(self._reaper)
            self._reaper = None
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._conn_tasks:
            # Aborted transports end the connection tasks by themselves; cancelling them instead
            # makes asyncio.streams log a spurious CancelledError.
            _, pending = await asyncio.wait(set(self._conn_tasks), timeout=2.0)
            for task in pending:
                task.cancel()
        for transport in (self._rtp_transport, self._rtcp_transport):
            if transport is not None:
                transport.close()
        self._rtp_transport = self._rtcp_transport = None
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    @property
    def port(self) -> int:
        return self._port

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if path and not path.startswith("/"):
            path = "/" + path
        return f"rtsp://{host}:{self._port}{path}"

    def drop_sessions(self) -> None:
        """Close every RTSP connection and session now (as a camera reboot or network cut would)."""
        for session_id in list(self._sessions):
            self._close_session(session_id, close_connection=False)
        for conn in list(self._conns):
            with contextlib.suppress(Exception):
                conn.writer.transport.abort()
        log.info("camsim rtsp %s: dropped all sessions", self.url(""))

    def refuse(self, seconds: float) -> None:
        """Answer DESCRIBE/SETUP/PLAY with 503 for ``seconds``."""
        self._refuse_until_mono_us = _mono_us() + int(seconds * 1_000_000)

    def stall(self, seconds: float) -> None:
        """Send no media for ``seconds`` (sessions stay open); then resume, timestamps jumped."""
        self._stall_until_mono_us = _mono_us() + int(seconds * 1_000_000)

    def jump_timestamps(self, seconds: float) -> None:
        """Add a discontinuity of ``seconds`` to every session's RTP timestamps from now on."""
        self._jump_us += int(seconds * 1_000_000)

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def sessions(self) -> list[dict[str, object]]:
        return [
            {
                "id": s.id,
                "path": s.path,
                "transport": s.transport,
                "client": f"{s.conn.peer[0]}:{s.conn.peer[1]}",
                "playing": s.task is not None,
            }
            for s in self._sessions.values()
        ]

    # -- sockets -------------------------------------------------------------------------------

    async def _open_udp(self) -> None:
        """Bind an even/odd UDP port pair on ``host`` for RTP/RTCP (shared by all sessions)."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(50):
            rtp_sock = socket.socket(family, socket.SOCK_DGRAM)
            rtp_sock.bind((self.host, 0))
            rtp_port = rtp_sock.getsockname()[1]
            if rtp_port % 2:
                rtp_sock.close()
                continue
            rtcp_sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                rtcp_sock.bind((self.host, rtp_port + 1))
            except OSError:
                rtp_sock.close()
                rtcp_sock.close()
                continue
            with contextlib.suppress(OSError):
                rtp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            rtp_t, _ = await loop.create_datagram_endpoint(lambda: _UdpSink(self), sock=rtp_sock)
            rtcp_t, _ = await loop.create_datagram_endpoint(lambda: _UdpSink(self), sock=rtcp_sock)
            self._rtp_transport, self._rtcp_transport = rtp_t, rtcp_t
            self._udp_ports = (rtp_port, rtp_port + 1)
            return
        log.warning("camsim rtsp: no free UDP port pair on %s; UDP transport disabled", self.host)

    def _touch_udp(self, addr: tuple[str, int]) -> None:
        now = _mono_us()
        for session in self._sessions.values():
            for track in session.tracks.values():
                if addr in (track.rtp_addr, track.rtcp_addr):
                    session.last_seen_mono_us = now

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            limit = _mono_us() - self.session_timeout_s * 1_000_000
            for session in list(self._sessions.values()):
                if session.last_seen_mono_us < limit:
                    log.info("camsim rtsp %s: session %s timed out", session.path, session.id)
                    self._close_session(session.id, close_connection=False)

    def _close_session(self, session_id: str, *, close_connection: bool) -> None:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return
        session.closed = True
        session.conn.sessions.discard(session_id)
        if session.task is not None and session.task is not asyncio.current_task():
            session.task.cancel()
        session.task = None
        if close_connection:
            with contextlib.suppress(Exception):
                session.conn.writer.transport.abort()

    # -- RTSP connection -----------------------------------------------------------------------

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conn_tasks.add(task)
        peer = writer.get_extra_info("peername") or ("?", 0)
        conn = _Connection(reader, writer, (str(peer[0]), int(peer[1])))
        writer.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER_BYTES)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                # Bounded like a camera's: a reader that stops reading is noticed within seconds.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SEND_BUFFER_BYTES)
        self._conns.add(conn)
        try:
            while True:
                request = await self._read_request(conn)
                if request is None:
                    break
                await self._dispatch(conn, request)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, OSError):
            pass
        except ValueError as exc:
            log.info("camsim rtsp: bad request from %s:%s: %s", *conn.peer, exc)
        finally:
            self._conns.discard(conn)
            for session_id in list(conn.sessions):
                self._close_session(session_id, close_connection=False)
            writer.transport.abort()
            if task is not None:
                self._conn_tasks.discard(task)

    async def _read_request(self, conn: _Connection) -> _Request | None:
        reader = conn.reader
        while True:
            first = await reader.read(1)
            if not first:
                return None
            if first == b"$":  # interleaved RTCP receiver report from the client
                head = await reader.readexactly(3)
                await reader.readexactly(struct.unpack(">H", head[1:])[0])
                now = _mono_us()
                for session_id in conn.sessions:
                    session = self._sessions.get(session_id)
                    if session is not None:
                        session.last_seen_mono_us = now
                continue
            if first in b"\r\n":
                continue
            break
        head_bytes = first + await reader.readuntil(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise ValueError(f"malformed request line {lines[0][:80]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                key, value = line.split(":", 1)
                headers[key.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length > MAX_REQUEST_BYTES:
            raise ValueError("request body too large")
        body = await reader.readexactly(length) if length else b""
        return _Request(parts[0].upper(), parts[1], headers, body)

    def _respond(
        self,
        conn: _Connection,
        request: _Request,
        code: int,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> None:
        lines = [
            f"RTSP/1.0 {code} {REASONS.get(code, 'Error')}",
            f"CSeq: {request.cseq}",
            f"Server: {self.name}",
        ]
        for key, value in (headers or {}).items():
            lines.append(f"{key}: {value}")
        if body:
            lines.append(f"Content-Length: {len(body)}")
        conn.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    async def _dispatch(self, conn: _Connection, request: _Request) -> None:
        method = request.method
        if request.method == "OPTIONS":
            self._touch(request)
            self._respond(conn, request, 200, {"Public": PUBLIC_METHODS})
            return
        handler = {
            "DESCRIBE": self._describe,
            "SETUP": self._setup,
            "PLAY": self._play,
            "PAUSE": self._pause,
            "TEARDOWN": self._teardown,
            "GET_PARAMETER": self._parameter,
            "SET_PARAMETER": self._parameter,
        }.get(method)
        if handler is None:
            self._respond(conn, request, 501)
            return
        if not self._authorized(request):
            nonce = self._make_nonce()
            self._respond(
                conn,
                request,
                401,
                {
                    "WWW-Authenticate": (
                        f'Digest realm="{self.realm}", nonce="{nonce}", algorithm=MD5'
                    ),
                },
            )
            # RFC 2326 allows several challenges; most clients read only the first header.
            return
        if method in ("DESCRIBE", "SETUP"):
            resolved = self._resolve(request.url)
            if resolved is not None and resolved[0] not in self._clips:
                # A stream added after start(): load (or encode) its clip off the event loop.
                spec = self._specs[resolved[0]]
                self._clips[resolved[0]] = await asyncio.to_thread(ensure_clip, spec, self._cache_dir)
        if (
            method in ("DESCRIBE", "SETUP", "PLAY")
            and _mono_us() < self._refuse_until_mono_us
        ):
            self._respond(conn, request, 503, {"Retry-After": "1"})
            return
        handler(conn, request)

    def _touch(self, request: _Request) -> _Session | None:
        session_id = request.headers.get("session", "").split(";")[0].strip()
        session = self._sessions.get(session_id) if session_id else None
        if session is not None:
            session.last_seen_mono_us = _mono_us()
        return session

    def _resolve(self, url: str) -> tuple[str, int | None] | None:
        """(stream path, track index or None for the aggregate) for a request URL."""
        path = urlsplit(url).path if "://" in url else url.split("?")[0]
        path = path.rstrip("/") or "/"
        best: str | None = None
        for candidate in self._specs:
            if (path == candidate or path.startswith(candidate.rstrip("/") + "/")) and (
                best is None or len(candidate) > len(best)
            ):
                best = candidate
        if best is None:
            return None
        rest = path[len(best) :].strip("/")
        if not rest:
            return best, None
        match = re.fullmatch(r"trackID=(\d+)", rest)
        if match is None:
            return None
        return best, int(match.group(1))

    def _base_url(self, path: str) -> str:
        return self.url(path).rstrip("/")

    def _describe(self, conn: _Connection, request: _Request) -> None:
        resolved = self._resolve(request.url)
        if resolved is None or resolved[1] is not None:
            self._respond(conn, request, 404)
            return
        clip = self._clips[resolved[0]]
        sdp = build_sdp(clip, secrets.randbelow(1 << 31), self.host, self.name).encode("ascii")
        self._respond(
            conn,
            request,
            200,
            {
                "Content-Type": "application/sdp",
                "Content-Base": self._base_url(resolved[0]) + "/",
            },
            sdp,
        )

    def _setup(self, conn: _Connection, request: _Request) -> None:
        resolved = self._resolve(request.url)
        if resolved is None:
            self._respond(conn, request, 404)
            return
        path, track_index = resolved
        clip = self._clips[path]
        if track_index is None:
            track_index = VIDEO_TRACK
        if track_index not in (VIDEO_TRACK, AUDIO_TRACK) or (
            track_index == AUDIO_TRACK and clip.audio is None
        ):
            self._respond(conn, request, 404)
            return
        transport_header = request.headers.get("transport", "")
        spec = transport_header.split(",")[0]
        params = [p.strip() for p in spec.split(";")]
        proto = params[0].upper() if params else ""
        kind: Literal["tcp", "udp"]
        if proto == "RTP/AVP/TCP":
            kind = "tcp"
        elif proto in ("RTP/AVP", "RTP/AVP/UDP") and "multicast" not in params:
            kind = "udp"
        else:
            self._respond(conn, request, 461)
            return
        session = self._touch(request)
        if request.headers.get("session") and session is None:
            self._respond(conn, request, 454)
            return
        if session is not None and (session.path != path or session.transport != kind):
            self._respond(conn, request, 459)
            return
        if session is not None and session.task is not None:
            self._respond(conn, request, 455)
            return
        values = dict(p.split("=", 1) for p in params if "=" in p)
        if kind == "udp" and ("client_port" not in values or self._rtp_transport is None):
            self._respond(conn, request, 461)
            return
        if session is None:
            session = _Session(self, secrets.token_hex(8).upper(), path, clip, conn, kind)
            self._sessions[session.id] = session
            conn.sessions.add(session.id)
        if track_index == VIDEO_TRACK:
            payload_type, rate = VIDEO_PAYLOAD_TYPE, VIDEO_CLOCK_RATE
        else:
            assert clip.audio is not None
            payload_type, rate = clip.audio.payload_type, clip.audio.clock_rate
        track = _Track(
            index=track_index,
            payload_type=payload_type,
            clock_rate=rate,
            ssrc=secrets.randbits(32),
            seq=secrets.randbits(16),
            ts_base=secrets.randbits(32),
        )
        ssrc = f"ssrc={track.ssrc:08X}"
        if kind == "tcp":
            try:
                channel = int(values.get("interleaved", str(2 * track_index)).split("-")[0])
            except ValueError:
                self._respond(conn, request, 400)
                return
            track.channel = channel
            reply = f"RTP/AVP/TCP;unicast;interleaved={channel}-{channel + 1};{ssrc}"
        else:
            try:
                ports = [int(p) for p in values["client_port"].split("-")]
            except ValueError:
                self._respond(conn, request, 400)
                return
            rtp_port = ports[0]
            rtcp_port = ports[1] if len(ports) > 1 else rtp_port + 1
            track.rtp_addr = (conn.peer[0], rtp_port)
            track.rtcp_addr = (conn.peer[0], rtcp_port)
            s_rtp, s_rtcp = self._udp_ports
            reply = (
                f"RTP/AVP;unicast;client_port={rtp_port}-{rtcp_port};"
                f"server_port={s_rtp}-{s_rtcp};{ssrc}"
            )
        session.tracks[track_index] = track
        log.info(
            "camsim rtsp %s: session %s set up %s over %s for %s:%s",
            path,
            session.id,
            track_control(track_index),
            kind,
            *conn.peer,
        )
        self._respond(
            conn,
            request,
            200,
            {
                "Transport": reply,
                "Session": f"{session.id};timeout={self.session_timeout_s}",
            },
        )

    def _play(self, conn: _Connection, request: _Request) -> None:
        session = self._touch(request)
        if session is None:
            self._respond(conn, request, 454)
            return
        if not session.tracks:
            self._respond(conn, request, 455)
            return
        if session.start_mono_us is None:
            session.start_mono_us = _mono_us()
        headers = {
            "Session": session.id,
            "Range": "npt=0.000-",
            "RTP-Info": session.rtp_info(self._base_url(session.path)),
        }
        self._respond(conn, request, 200, headers)
        if session.task is None:
            session.task = asyncio.create_task(session.run(), name=f"camsim-rtp-{session.id}")

    def _pause(self, conn: _Connection, request: _Request) -> None:
        session = self._touch(request)
        if session is None:
            self._respond(conn, request, 454)
            return
        if session.task is not None:
            session.task.cancel()
            session.task = None
        self._respond(conn, request, 200, {"Session": session.id})

    def _teardown(self, conn: _Connection, request: _Request) -> None:
        session = self._touch(request)
        if session is None:
            self._respond(conn, request, 454)
            return
        log.info("camsim rtsp %s: session %s torn down", session.path, session.id)
        self._close_session(session.id, close_connection=False)
        self._respond(conn, request, 200, {"Session": session.id})

    def _parameter(self, conn: _Connection, request: _Request) -> None:
        session = self._touch(request)
        headers = {"Session": session.id} if session is not None else {}
        self._respond(conn, request, 200, headers)

    # -- authentication ------------------------------------------------------------------------

    def _make_nonce(self) -> str:
        stamp = secrets.token_hex(8)
        mac = hmac.new(self._nonce_key, stamp.encode("ascii"), hashlib.sha256).hexdigest()[:16]
        return stamp + mac

    def _nonce_valid(self, nonce: str) -> bool:
        if len(nonce) != 32:
            return False
        mac = hmac.new(self._nonce_key, nonce[:16].encode("ascii"), hashlib.sha256).hexdigest()[:16]
        return hmac.compare_digest(mac, nonce[16:])

    def _authorized(self, request: _Request) -> bool:
        if self.username is None:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, rest = header.partition(" ")
        password = self.password or ""
        if scheme.lower() == "basic":
            try:
                user, _, given = base64.b64decode(rest.strip()).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return hmac.compare_digest(user, self.username) and hmac.compare_digest(given, password)
        if scheme.lower() != "digest":
            return False
        params = {
            m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
            for m in _AUTH_PARAM_RE.finditer(rest)
        }
        if params.get("username") != self.username or params.get("realm") != self.realm:
            return False
        nonce = params.get("nonce", "")
        if not self._nonce_valid(nonce):
            return False

        def md5(text: str) -> str:
            return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()

        ha1 = md5(f"{self.username}:{self.realm}:{password}")
        ha2 = md5(f"{request.method}:{params.get('uri', '')}")
        if params.get("qop"):
            nc, cnonce = params.get("nc", ""), params.get("cnonce", "")
            expected = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{params['qop']}:{ha2}")
        else:
            expected = md5(f"{ha1}:{nonce}:{ha2}")
        return hmac.compare_digest(expected, params.get("response", ""))
