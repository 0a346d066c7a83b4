"""The virtual camera's RTSP 1.0 server (RFC 2326): sessions, RTP pacing, auth and fault injection.

This module owns what a camera's RTSP port does: OPTIONS, DESCRIBE (SDP from :mod:`camsim.sdp`),
SETUP over TCP-interleaved or UDP (``client_port`` pair; RTP and RTCP leave from the server's own
UDP pair), PLAY, PAUSE, TEARDOWN, GET/SET_PARAMETER keep-alives, session timeouts, and Digest
(RFC 2617) or Basic authentication. Each playing session is one asyncio task that paces the shared
pre-packetised clip (:mod:`camsim.media`) by the monotonic media clock, loops it forever with
continuous RTP sequence numbers and timestamps, stamps every access unit with an SEI capture time
(:mod:`camsim.sei`), sends RTCP sender reports, and writes one batch per access unit. A DESCRIBE
requiring the ONVIF backchannel gets its ``sendonly`` PCMU track (551 on a camera without one),
set up over TCP interleaved; what the client sends on it is recorded (:mod:`camsim.backchannel`).
The fault methods (:meth:`RtspServer.drop_sessions`, ``refuse``, ``stall``, ``jump_timestamps``)
are what the control API calls. The RTP side of a playing session (pacing, packets, sender reports) is in
:mod:`camsim.rtp`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import socket
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from camsim.backchannel import (
    BACKCHANNEL_TRACK,
    REQUIRE_TAG,
    Backchannel,
    requires_backchannel,
)
from camsim.backchannel import CLOCK_RATE as BACKCHANNEL_RATE
from camsim.backchannel import PAYLOAD_TYPE as BACKCHANNEL_PT
from camsim.media import (
    VIDEO_CLOCK_RATE,
    Clip,
    ClipSpec,
    ensure_clip,
)
from camsim.rtp import WRITE_HIGH_WATER_BYTES, Connection, Session, Track, UdpSink, mono_us
from camsim.rtsp_proto import (
    MAX_REQUEST_BYTES,
    PUBLIC_METHODS,
    RtspRequest,
    authorized,
    format_response,
    make_nonce,
    read_request,
)
from camsim.sdp import AUDIO_TRACK, VIDEO_PAYLOAD_TYPE, VIDEO_TRACK, build_sdp, track_control
from vms.clock import Clock, SystemClock

log = logging.getLogger(__name__)

"""A session that falls this far behind its media clock (slow reader) is dropped."""
SOCKET_SEND_BUFFER_BYTES = 256 * 1024


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
        backchannel: bool = True,
        late_parameter_sets: bool = False,
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
        self._conns: set[Connection] = set()
        self._sessions: dict[str, Session] = {}
        self._refuse_until_mono_us = 0
        self._stall_until_mono_us = 0
        self._stall_clock_runs = True
        self._jump_us = 0
        self._nonce_key = secrets.token_bytes(16)
        self._rtp_transport: asyncio.DatagramTransport | None = None
        self._rtcp_transport: asyncio.DatagramTransport | None = None
        self._udp_ports = (0, 0)
        self._reaper: asyncio.Task[None] | None = None
        self._conn_tasks: set[asyncio.Task[None]] = set()
        self.backchannel = Backchannel(backchannel)
        self.late_parameter_sets = late_parameter_sets
        """A camera whose first packet does not say enough: no ``sprop-parameter-sets`` in the
        SDP, and each session's first keyframe sent without its SPS/PPS (they come in band with
        the next one, a GOP later). Applies to sessions described and started after it is set."""

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
        self._refuse_until_mono_us = mono_us() + int(seconds * 1_000_000)

    def stall(self, seconds: float, *, clock_runs: bool = True) -> None:
        """Send no media for ``seconds`` (sessions stay open); then resume on the next keyframe.

        ``clock_runs`` (the default) is what a real camera does when the network stalls: its capture
        clock keeps running and the frames captured meanwhile are lost, so the RTP timestamps jump
        by the length of the stall. False models a source whose clock pauses instead (some
        encoders and relays): the timestamps resume where they stopped, as if no time had passed.
        """
        self._stall_until_mono_us = mono_us() + int(seconds * 1_000_000)
        self._stall_clock_runs = clock_runs

    def jump_timestamps(self, seconds: float) -> None:
        """Add a discontinuity of ``seconds`` to every session's RTP timestamps from now on."""
        self._jump_us += int(seconds * 1_000_000)

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def backchannel_state(self) -> dict[str, object]:
        """The backchannel's figures for the control API (the newest session's audio)."""
        return self.backchannel.state()

    def sessions(self) -> list[dict[str, object]]:
        return [
            {
                "id": s.id,
                "path": s.path,
                "transport": s.transport,
                "client": f"{s.conn.peer[0]}:{s.conn.peer[1]}",
                "playing": s.task is not None or s.recording is not None,
                "backchannel": BACKCHANNEL_TRACK in s.tracks,
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
            rtp_t, _ = await loop.create_datagram_endpoint(lambda: UdpSink(self), sock=rtp_sock)
            rtcp_t, _ = await loop.create_datagram_endpoint(lambda: UdpSink(self), sock=rtcp_sock)
            self._rtp_transport, self._rtcp_transport = rtp_t, rtcp_t
            self._udp_ports = (rtp_port, rtp_port + 1)
            return
        log.warning("camsim rtsp: no free UDP port pair on %s; UDP transport disabled", self.host)

    def _touch_udp(self, addr: tuple[str, int]) -> None:
        now = mono_us()
        for session in self._sessions.values():
            for track in session.tracks.values():
                if addr in (track.rtp_addr, track.rtcp_addr):
                    session.last_seen_mono_us = now

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            limit = mono_us() - self.session_timeout_s * 1_000_000
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
        if session.recording is not None:
            self.backchannel.close(session.recording)
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
        conn = Connection(reader, writer, (str(peer[0]), int(peer[1])))
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

    async def _read_request(self, conn: Connection) -> RtspRequest | None:
        def interleaved(channel: int, data: bytes) -> None:
            now = mono_us()
            for session_id in conn.sessions:
                session = self._sessions.get(session_id)
                if session is not None:
                    session.last_seen_mono_us = now
                    if session.recording is not None and session.recording.channel == channel:
                        session.recording.receive(data)

        return await read_request(conn.reader, interleaved)

    def _respond(self, conn: Connection, request: RtspRequest, code: int,
                 headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        conn.writer.write(format_response(code, request.cseq, self.name, headers, body))

    async def _dispatch(self, conn: Connection, request: RtspRequest) -> None:
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
            and mono_us() < self._refuse_until_mono_us
        ):
            self._respond(conn, request, 503, {"Retry-After": "1"})
            return
        handler(conn, request)

    def _touch(self, request: RtspRequest) -> Session | None:
        session_id = request.headers.get("session", "").split(";")[0].strip()
        session = self._sessions.get(session_id) if session_id else None
        if session is not None:
            session.last_seen_mono_us = mono_us()
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

    def _describe(self, conn: Connection, request: RtspRequest) -> None:
        resolved = self._resolve(request.url)
        if resolved is None or resolved[1] is not None:
            self._respond(conn, request, 404)
            return
        clip = self._clips[resolved[0]]
        backchannel = requires_backchannel(request.headers.get("require", ""))
        if backchannel and not self.backchannel.enabled:
            self._respond(conn, request, 551, {"Unsupported": REQUIRE_TAG})
            return
        sdp = build_sdp(clip, secrets.randbelow(1 << 31), self.host, self.name,
                        backchannel=backchannel,
                        parameter_sets=not self.late_parameter_sets).encode("ascii")
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

    def _setup(self, conn: Connection, request: RtspRequest) -> None:
        resolved = self._resolve(request.url)
        if resolved is None:
            self._respond(conn, request, 404)
            return
        path, track_index = resolved
        clip = self._clips[path]
        if track_index is None:
            track_index = VIDEO_TRACK
        if track_index not in (VIDEO_TRACK, AUDIO_TRACK, BACKCHANNEL_TRACK) or (
            track_index == AUDIO_TRACK and clip.audio is None
        ) or (track_index == BACKCHANNEL_TRACK and not self.backchannel.enabled):
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
        if track_index == BACKCHANNEL_TRACK and kind != "tcp":  # camsim receives over TCP only
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
            session = Session(self, secrets.token_hex(8).upper(), path, clip, conn, kind)
            self._sessions[session.id] = session
            conn.sessions.add(session.id)
        if track_index == VIDEO_TRACK:
            payload_type, rate = VIDEO_PAYLOAD_TYPE, VIDEO_CLOCK_RATE
        elif track_index == BACKCHANNEL_TRACK:
            payload_type, rate = BACKCHANNEL_PT, BACKCHANNEL_RATE
        else:
            assert clip.audio is not None
            payload_type, rate = clip.audio.payload_type, clip.audio.clock_rate
        track = Track(
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

    def _play(self, conn: Connection, request: RtspRequest) -> None:
        session = self._touch(request)
        if session is None:
            self._respond(conn, request, 454)
            return
        if not session.tracks:
            self._respond(conn, request, 455)
            return
        if session.start_mono_us is None:
            session.start_mono_us = mono_us()
        headers = {"Session": session.id, "Range": "npt=0.000-"}
        rtp_info = session.rtp_info(self._base_url(session.path))
        if rtp_info:  # none for a session that only set up the backchannel
            headers["RTP-Info"] = rtp_info
        self._respond(conn, request, 200, headers)
        back = session.tracks.get(BACKCHANNEL_TRACK)
        if back is not None and session.recording is None:
            session.recording = self.backchannel.open(back.channel)
            log.info("camsim rtsp %s: session %s: backchannel open", session.path, session.id)
        if session.task is None and set(session.tracks) - {BACKCHANNEL_TRACK}:
            session.task = asyncio.create_task(session.run(), name=f"camsim-rtp-{session.id}")

    def _pause(self, conn: Connection, request: RtspRequest) -> None:
        session = self._touch(request)
        if session is None:
            self._respond(conn, request, 454)
            return
        if session.task is not None:
            session.task.cancel()
            session.task = None
        self._respond(conn, request, 200, {"Session": session.id})

    def _teardown(self, conn: Connection, request: RtspRequest) -> None:
        session = self._touch(request)
        if session is None:
            self._respond(conn, request, 454)
            return
        log.info("camsim rtsp %s: session %s torn down", session.path, session.id)
        self._close_session(session.id, close_connection=False)
        self._respond(conn, request, 200, {"Session": session.id})

    def _parameter(self, conn: Connection, request: RtspRequest) -> None:
        session = self._touch(request)
        headers = {"Session": session.id} if session is not None else {}
        self._respond(conn, request, 200, headers)

    # -- authentication ------------------------------------------------------------------------

    def _make_nonce(self) -> str:
        return make_nonce(self._nonce_key)

    def _authorized(self, request: RtspRequest) -> bool:
        return authorized(request, self.username, self.password, self.realm, self._nonce_key)
