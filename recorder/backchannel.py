"""Talk-back: a browser's microphone to a camera's loudspeaker over the ONVIF audio backchannel.

This module owns the server side of talking to an intercom panel. :class:`TalkService` (held by
the composition root in a ``cleanup_ctx``) keeps at most one :class:`TalkSession` per camera: a new
one takes over, and the one it replaces ends with "taken over by …" (the last to press talk wins,
as with PTZ: a session left behind by a phone that lost signal must never lock the door panel).
A session opens an RTSP session to the camera's main stream URL (:mod:`recorder.rtsp_client`):
DESCRIBE with ``Require: www.onvif.org/ver20/backchannel``, the SDP's ``sendonly`` audio track
(G.711 μ-law, PCMU/8000), SETUP over RTP/AVP/TCP interleaved, PLAY, GET_PARAMETER keep-alives,
and TEARDOWN at the end. Audio arrives as 16-bit little-endian mono PCM at 8 kHz
(:meth:`TalkSession.feed`), is encoded to μ-law into a bounded buffer (beyond
:attr:`TalkOptions.max_buffer_ms` the oldest audio is dropped, so the delay stays bounded), and a
pacing task sends one 20 ms RTP packet per tick of the monotonic clock: sequence numbers count
packets, timestamps count 8 kHz ticks of real time (a silence, when the browser sends nothing,
advances the timestamp without packets, and the next packet carries the marker bit, RFC 3551).
See docs/design/talkback.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import struct
import sys
from array import array
from dataclasses import dataclass, field
from urllib.parse import urljoin

from recorder.rtsp_client import RtspConnection, RtspError

log = logging.getLogger(__name__)

REQUIRE_TAG = "www.onvif.org/ver20/backchannel"
RATE = 8_000
PACKET_SAMPLES = 160  # 20 ms of G.711
PACKET_S = PACKET_SAMPLES / RATE
PCMU = 0
MAX_WRITE_BUFFER_BYTES = 32 * 1024
"""Audio the camera has not read yet (about 4 s of μ-law) before the session is ended."""


class TalkError(Exception):
    """Why talking to a camera failed: ``code`` for programs, the message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class TalkTarget:
    """The camera to talk to: its main stream URL (stored without credentials) and login."""

    camera_id: int
    camera_name: str
    url: str
    username: str = ""
    password: str = field(default="", repr=False)


@dataclass(frozen=True)
class TalkOptions:
    max_buffer_ms: int = 500
    """Audio waiting to be sent; beyond, the oldest is dropped (a bounded delay)."""
    prebuffer_ms: int = 100
    """Audio gathered before sending starts, and again after the browser fell silent: absorbs
    the jitter of a phone's network (and of the browser's audio thread)."""
    max_lag_ms: int = 200
    """How late the pacer may wake before it skips ticks instead of bursting."""
    timeout_s: float = 5.0
    """For connecting and for each RTSP answer."""
    keepalive_s: float = 0.0
    """Between GET_PARAMETER keep-alives; 0: half the session timeout the camera announced."""


# -- G.711 μ-law ----------------------------------------------------------------------------------

def _linear_to_ulaw(sample: int) -> int:
    """One 16-bit sample to G.711 μ-law (ITU-T G.711, as in the Sun reference code)."""
    value = sample >> 2
    mask = 0xFF
    if value < 0:
        value, mask = -value, 0x7F
    value = min(value, 8159) + (0x84 >> 2)
    for segment, end in enumerate((0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)):
        if value <= end:
            return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask
    return 0x7F ^ mask


ULAW_OF = bytes(_linear_to_ulaw(u - 0x10000 if u & 0x8000 else u) for u in range(0x10000))
"""μ-law of every 16-bit sample, indexed by the sample's unsigned bit pattern."""


def pcm16_to_ulaw(data: bytes) -> bytes:
    """16-bit little-endian PCM to μ-law bytes."""
    if len(data) % 2:
        raise TalkError("bad_audio", "audio frames must hold whole 16-bit samples")
    samples = array("H", data)
    if sys.byteorder == "big":
        samples.byteswap()
    return bytes(map(ULAW_OF.__getitem__, samples))


# -- the SDP --------------------------------------------------------------------------------------

def backchannel_track(sdp: str, base_url: str) -> tuple[str, int]:
    """(control URL, payload type) of the SDP's ``sendonly`` audio track in G.711 μ-law.

    Raises :class:`TalkError` ``no_backchannel`` when there is no ``sendonly`` audio track, and
    ``codec`` when there is one in another codec."""
    sections: list[list[str]] = []
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
    offered: list[str] = []
    for section in sections:
        if not section[0].startswith("m=audio") or "a=sendonly" not in section:
            continue
        types = [int(t) for t in section[0].split()[3:] if t.isdigit()]
        names = {}
        control = ""
        for line in section:
            if line.startswith("a=rtpmap:"):
                number, _, name = line[len("a=rtpmap:"):].partition(" ")
                if number.isdigit():
                    names[int(number)] = name.strip().upper()
            elif line.startswith("a=control:"):
                control = line[len("a=control:"):].strip()
        for pt in types:
            name = names.get(pt, "PCMU/8000" if pt == PCMU else f"payload type {pt}")
            if name.startswith("PCMU/8000"):
                url = control if "://" in control else urljoin(base_url.rstrip("/") + "/",
                                                               control)
                return url, pt
            offered.append(name)
    if offered:
        raise TalkError("codec", "the camera's backchannel wants " + ", ".join(offered) +
                        "; the server sends G.711 μ-law (PCMU/8000) only")
    raise TalkError("no_backchannel", "the camera has no audio backchannel (its RTSP stream "
                    "offers no ONVIF backchannel track)")


def _session_header(value: str) -> tuple[str, float]:
    """The session id and its timeout (60 s when not given) from a ``Session`` header."""
    session_id, *params = (part.strip() for part in value.split(";"))
    timeout_s = 60.0
    for param in params:
        key, _, number = param.partition("=")
        if key.strip().lower() == "timeout":
            with contextlib.suppress(ValueError):
                timeout_s = max(1.0, float(number))
    return session_id, timeout_s


# -- one session ----------------------------------------------------------------------------------

class TalkSession:
    """One person talking to one camera: an RTSP backchannel session and its pacer."""

    def __init__(self, target: TalkTarget, username: str, options: TalkOptions) -> None:
        self.target = target
        self.username = username
        self.options = options
        self.name = f"talk {target.camera_id}"
        self._rtsp = RtspConnection(target.url, target.username, target.password,
                                    timeout_s=options.timeout_s)
        self._buffer = bytearray()
        self._max_buffer = options.max_buffer_ms * RATE // 1000
        self._prebuffer = max(PACKET_SAMPLES, options.prebuffer_ms * RATE // 1000)
        self._session_id = ""
        self._session_timeout_s = 60.0
        self._control_url = ""
        self._aggregate_url = target.url
        self._channel = 0
        self._payload_type = PCMU
        self._ssrc = secrets.randbits(32)
        self._seq = secrets.randbits(16)
        self._ts_base = secrets.randbits(32)
        self._tasks: list[asyncio.Task[None]] = []
        self.ended = asyncio.Event()
        self.end_reason = ""
        self.packets_sent = 0
        self.samples_dropped = 0
        self.underruns = 0

    async def open(self) -> None:
        """The RTSP dialogue up to PLAY; then the pacer and the keep-alives run."""
        try:
            await self._rtsp.connect()
            await self._describe()
            await self._setup()
            await self._play()
        except RtspError as exc:
            await self._rtsp.close()
            code = "auth" if exc.status == 401 else "camera"
            raise TalkError(code, f"camera {self.target.camera_name!r}: {exc}") from None
        except TalkError as exc:
            await self._rtsp.close()
            raise TalkError(exc.code, f"camera {self.target.camera_name!r}: {exc}") from None
        log.info("%s: %s: backchannel open for %s (session %s)", self.name,
                 self.target.camera_name, self.username, self._session_id)
        self._tasks = [asyncio.create_task(self._pace(), name=f"{self.name}-pace"),
                       asyncio.create_task(self._keepalive(), name=f"{self.name}-keepalive")]

    async def _describe(self) -> None:
        url = self.target.url
        answer = await self._rtsp.request("DESCRIBE", url, {"Accept": "application/sdp",
                                                            "Require": REQUIRE_TAG})
        if answer.status == 551 or "unsupported" in answer.headers:
            raise TalkError("no_backchannel", "the camera has no audio backchannel (RTSP "
                            f"{answer.status}: the ONVIF backchannel is not supported)")
        if answer.status != 200:
            raise TalkError("camera", f"DESCRIBE answered RTSP {answer.status}")
        base = answer.headers.get("content-base") or answer.headers.get("content-location") or url
        self._aggregate_url = base
        sdp = answer.body.decode("utf-8", errors="replace")
        self._control_url, self._payload_type = backchannel_track(sdp, base)

    async def _setup(self) -> None:
        answer = await self._rtsp.request("SETUP", self._control_url, {
            "Transport": "RTP/AVP/TCP;unicast;interleaved=0-1", "Require": REQUIRE_TAG})
        if answer.status != 200 or "session" not in answer.headers:
            raise TalkError("camera", f"SETUP of the backchannel answered RTSP {answer.status}")
        self._session_id, self._session_timeout_s = _session_header(answer.headers["session"])
        for param in answer.headers.get("transport", "").split(";"):
            key, _, value = param.strip().partition("=")
            if key == "interleaved" and value.split("-")[0].isdigit():
                self._channel = int(value.split("-")[0])

    async def _play(self) -> None:
        answer = await self._rtsp.request("PLAY", self._aggregate_url, {
            "Session": self._session_id, "Require": REQUIRE_TAG, "Range": "npt=0.000-"})
        if answer.status != 200:
            raise TalkError("camera", f"PLAY answered RTSP {answer.status}")

    # -- audio in -------------------------------------------------------------------------------

    def feed(self, pcm: bytes) -> None:
        """Queue 16-bit LE mono 8 kHz audio; the oldest is dropped beyond the bound."""
        if self.ended.is_set():
            return
        self._buffer += pcm16_to_ulaw(pcm)
        excess = len(self._buffer) - self._max_buffer
        if excess > 0:
            del self._buffer[:excess]
            self.samples_dropped += excess

    # -- audio out ------------------------------------------------------------------------------

    def _packet(self, payload: bytes, tick: int, marker: bool) -> bytes:
        header = struct.pack(">BBHII", 0x80, (0x80 if marker else 0) | self._payload_type,
                             self._seq, (self._ts_base + tick * PACKET_SAMPLES) & 0xFFFFFFFF,
                             self._ssrc)
        self._seq = (self._seq + 1) & 0xFFFF
        return header + payload

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        tick = 0
        next_at = loop.time()
        talking = False
        try:
            while not self.ended.is_set():
                delay = next_at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                late = loop.time() - next_at
                if late * 1000 > self.options.max_lag_ms:  # the loop stalled: skip, don't burst
                    skipped = int(late / PACKET_S)
                    tick += skipped
                    next_at += skipped * PACKET_S
                marker = False
                if not talking and len(self._buffer) >= self._prebuffer:
                    talking = marker = True
                if talking and len(self._buffer) < PACKET_SAMPLES:
                    talking = False
                    self.underruns += 1
                if talking:
                    payload = bytes(self._buffer[:PACKET_SAMPLES])
                    del self._buffer[:PACKET_SAMPLES]
                    self._rtsp.send_interleaved(self._channel, self._packet(payload, tick, marker))
                    self.packets_sent += 1
                    if self._rtsp.write_buffer_bytes() > MAX_WRITE_BUFFER_BYTES:
                        raise RtspError("the camera is not reading the audio")
                tick += 1
                next_at += PACKET_S
        except RtspError as exc:
            self._end(str(exc))

    async def _keepalive(self) -> None:
        interval = self.options.keepalive_s or max(1.0, self._session_timeout_s / 2)
        closed = asyncio.create_task(self._rtsp.closed.wait())
        try:
            while not self.ended.is_set():
                done, _ = await asyncio.wait({closed}, timeout=interval)
                if done:
                    self._end(f"camera ended the session: {self._rtsp.close_reason}")
                    return
                answer = await self._rtsp.request("GET_PARAMETER", self._aggregate_url,
                                                  {"Session": self._session_id})
                if answer.status not in (200, 451, 501):  # 451/501: alive, method unsupported
                    self._end(f"camera ended the session (RTSP {answer.status})")
                    return
        except RtspError as exc:
            self._end(f"camera ended the session: {exc}")
        finally:
            closed.cancel()

    def _end(self, reason: str) -> None:
        if not self.ended.is_set():
            self.end_reason = reason
            self.ended.set()
            log.info("%s: %s: %s", self.name, self.target.camera_name, reason)

    async def close(self, reason: str) -> None:
        """End the session: stop sending, TEARDOWN (briefly awaited), close the connection."""
        self._end(reason)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        await asyncio.gather(*(t for t in self._tasks if t is not current),
                             return_exceptions=True)
        if self._session_id and not self._rtsp.closed.is_set():
            with contextlib.suppress(RtspError, TimeoutError):
                await asyncio.wait_for(self._rtsp.request(
                    "TEARDOWN", self._aggregate_url, {"Session": self._session_id}), 1.0)
        await self._rtsp.close(reason)

    def figures(self) -> dict[str, object]:
        return {"camera_id": self.target.camera_id, "user": self.username,
                "packets_sent": self.packets_sent, "underruns": self.underruns,
                "dropped_ms": self.samples_dropped * 1000 // RATE,
                "ended": self.ended.is_set()}


# -- the service ----------------------------------------------------------------------------------

class TalkService:
    """Every talk session of this server, at most one per camera."""

    def __init__(self, options: TalkOptions | None = None) -> None:
        self.options = options or TalkOptions()
        self._sessions: dict[int, TalkSession] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        """One per camera: a slow camera delays only those who talk to it."""
        self._stopped = False

    def stats(self) -> list[dict[str, object]]:
        return [s.figures() for s in self._sessions.values()]

    async def start(self, target: TalkTarget, username: str) -> TalkSession:
        """Open a session to ``target``; one already open to that camera is taken over."""
        async with self._locks.setdefault(target.camera_id, asyncio.Lock()):
            if self._stopped:
                raise TalkError("stopping", "the server is stopping")
            previous = self._sessions.pop(target.camera_id, None)
            if previous is not None:
                await previous.close(f"taken over by {username}")
            session = TalkSession(target, username, self.options)
            await session.open()
            self._sessions[target.camera_id] = session
            return session

    async def finish(self, session: TalkSession, reason: str) -> None:
        """End ``session`` (its socket closed); a no-op for one already ended."""
        if self._sessions.get(session.target.camera_id) is session:
            del self._sessions[session.target.camera_id]
        await session.close(reason)

    async def stop(self) -> None:
        self._stopped = True
        sessions = list(self._sessions.values())
        self._sessions.clear()
        await asyncio.gather(*(s.close("the server is stopping") for s in sessions),
                             return_exceptions=True)
