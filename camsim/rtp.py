"""RTP sending for the virtual camera: one playing RTSP session's tracks, pacing and packets.

A :class:`Session` paces the shared pre-packetised clip (:mod:`camsim.media`) by the monotonic
media clock, loops it with continuous RTP sequence numbers and timestamps, stamps every access unit
with an SEI capture time (:mod:`camsim.sei`), sends RTCP sender reports, and writes one batch per
access unit over TCP-interleaved framing or UDP. The RTSP dialogue that creates sessions lives in
:mod:`camsim.rtsp`.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from camsim.backchannel import BACKCHANNEL_TRACK, Recording
from camsim.media import FRAMING_BYTES, NAL_STAP_A, RTP_HEADER, VIDEO_CLOCK_RATE, Clip
from camsim.sdp import AUDIO_TRACK, VIDEO_PAYLOAD_TYPE, VIDEO_TRACK, track_control
from camsim.sei import build_sei_nal

if TYPE_CHECKING:
    from camsim.rtsp import RtspServer

log = logging.getLogger(__name__)

MAX_LAG_US = 2_000_000
SR_INTERVAL_US = 5_000_000
NTP_EPOCH_OFFSET_S = 2_208_988_800
WRITE_HIGH_WATER_BYTES = 1 << 20


@dataclass
class Track:
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
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer: tuple[str, int]
    sessions: set[str] = field(default_factory=set)

    @property
    def closing(self) -> bool:
        return self.writer.is_closing()


class Session:
    """One RTSP session: its tracks, its transport and (while playing) its sender task."""

    def __init__(
        self,
        server: RtspServer,
        session_id: str,
        path: str,
        clip: Clip,
        conn: Connection,
        transport: Literal["tcp", "udp"],
    ) -> None:
        self.server = server
        self.id = session_id
        self.path = path
        self.clip = clip
        self.conn = conn
        self.transport = transport
        self.tracks: dict[int, Track] = {}
        self.start_mono_us: int | None = None
        self.task: asyncio.Task[None] | None = None
        self.last_seen_mono_us = mono_us()
        self.closed = False
        self.has_played = False
        self.recording: Recording | None = None
        """The ONVIF backchannel's received audio, once a session with that track has played."""
        self.keyframes_sent = 0
        """Keyframes this session sent (the first goes without SPS/PPS on a camera with
        :attr:`RtspServer.late_parameter_sets`)."""
        self.paused_us = 0
        """Media time taken out of the timestamps by stalls with a paused clock (see
        :meth:`RtspServer.stall`); added to the server's jump."""

    # -- timeline ------------------------------------------------------------------------------
    # Frame n of the session (counted from its first PLAY, across loops) is due at
    # start + n * 1e6 / fps and carries RTP time n * 90000 / fps; audio packet m (across loops)
    # is due at its own media time. Stalls and pauses skip frames, so timestamps jump forward
    # (unless the stall pauses the clock: then ``paused_us`` takes the skipped time back out).

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
        return self._resync_frame(mono_us())

    def rtp_info(self, base_url: str) -> str:
        """The RTP-Info header value for the first packets PLAY will send."""
        assert self.start_mono_us is not None
        n = self._first_frame()
        jump = self.server._jump_us - self.paused_us
        parts = []
        for index, track in sorted(self.tracks.items()):
            if index == BACKCHANNEL_TRACK:
                continue
            if index == VIDEO_TRACK:
                ts = self._video_ts(n, jump)
            else:
                ts = self._audio_ts(self._first_audio_at(self._frame_media_us(n)), jump)
            parts.append(f"url={base_url}/{track_control(index)};seq={track.seq};rtptime={ts}")
        return ",".join(parts)

    # -- sending -------------------------------------------------------------------------------

    def _send_rtcp(self, track: Track, packet: bytes) -> None:
        if self.transport == "tcp":
            self.conn.writer.write(
                b"$" + bytes((track.channel + 1,)) + struct.pack(">H", len(packet)) + packet
            )
        elif track.rtcp_addr is not None and self.server._rtcp_transport is not None:
            self.server._rtcp_transport.sendto(packet, track.rtcp_addr)

    def _sender_reports(self, n: int, wall_us: int, jump_us: int) -> None:
        media_us = self._frame_media_us(n)
        for index, track in self.tracks.items():
            if index == BACKCHANNEL_TRACK:  # the client sends on it; the camera reports nothing
                continue
            if index == VIDEO_TRACK:
                ts = self._video_ts(n, jump_us)
            else:
                audio = self.clip.audio
                assert audio is not None
                ts = (
                    track.ts_base + (media_us + jump_us) * audio.clock_rate // 1_000_000
                ) & 0xFFFFFFFF
            self._send_rtcp(track, sender_report(track, wall_us, ts))

    def _video_packets(
        self, n: int, capture_us: int, jump_us: int
    ) -> tuple[bytearray, list[tuple[int, int]]]:
        """The interleaved batch for frame ``n`` and its (offset, rtp_length) packet slices."""
        track = self.tracks[VIDEO_TRACK]
        au = self.clip.aus[n % len(self.clip.aus)]
        sei = build_sei_nal(capture_us)
        if au.is_idr and (self.keyframes_sent or not self.server.late_parameter_sets):
            prefix = bytearray((0x60 | NAL_STAP_A,))
            for nal in (self.clip.sps, self.clip.pps, sei):
                prefix += struct.pack(">H", len(nal)) + nal
        else:  # a P frame, or the first keyframe of a camera with late parameter sets
            prefix = bytearray(sei)
        self.keyframes_sent += au.is_idr
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

    def _send_udp(self, track: Track, buf: bytearray, slices: list[tuple[int, int]]) -> None:
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
            self.start_mono_us = mono_us()
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
                now = mono_us()
                if due > now:
                    await asyncio.sleep((due - now) / 1_000_000)
                    now = mono_us()
                if now < server._stall_until_mono_us:
                    await asyncio.sleep((server._stall_until_mono_us - now) / 1_000_000)
                    resume = self._resync_frame(mono_us())
                    if not server._stall_clock_runs:
                        self.paused_us += self._frame_media_us(resume) - self._frame_media_us(n)
                    n = resume
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
                jump = server._jump_us - self.paused_us
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
                        budget = max(0.05, (MAX_LAG_US - (mono_us() - due)) / 1e6)
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


def mono_us() -> int:
    """Real monotonic time. Pacing, stalls, refusals and timeouts always run in real time, so an
    injected fake clock (which only supplies the wall time stamped into the SEI and RTCP) can
    never make a sender spin."""
    return time.monotonic_ns() // 1_000


def sender_report(track: Track, wall_us: int, rtp_ts: int) -> bytes:
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


class UdpSink(asyncio.DatagramProtocol):
    """The server's RTCP socket: receiver reports count as a session's keep-alive."""

    def __init__(self, server: RtspServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.server._touch_udp(addr)
