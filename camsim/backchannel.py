"""The virtual camera's ONVIF audio backchannel: what a client says to the camera's loudspeaker.

This module owns the receiving side of the ONVIF Streaming Specification's backchannel: the
``Require: www.onvif.org/ver20/backchannel`` check on DESCRIBE, the ``sendonly`` PCMU/8000 track
it adds to the SDP (:data:`BACKCHANNEL_SDP`), and one :class:`Recording` per RTSP session that
set the track up: every RTP packet the client sends on the track's interleaved channel is checked
(payload type, sequence numbers, timestamps) and its G.711 μ-law payload decoded and kept
(bounded: the latest :data:`MAX_SECONDS`). :class:`Backchannel` holds a server's recordings and
answers the control API's ``backchannel`` figures: packets, seconds of audio, the span of arrival
times (how the sender paced them) and the dominant frequency of the received samples, measured
with a pure-Python FFT (Hann window, power summed over the loudest blocks, parabolic peak
interpolation). :mod:`camsim.rtsp` does the RTSP dialogue.
"""

from __future__ import annotations

import cmath
import math
import struct
import time
from array import array
from dataclasses import dataclass, field

REQUIRE_TAG = "www.onvif.org/ver20/backchannel"
BACKCHANNEL_TRACK = 2
PAYLOAD_TYPE = 0  # PCMU (RFC 3551)
CLOCK_RATE = 8_000
BACKCHANNEL_SDP = (
    f"m=audio 0 RTP/AVP {PAYLOAD_TYPE}",
    f"a=rtpmap:{PAYLOAD_TYPE} PCMU/{CLOCK_RATE}",
    "a=sendonly",  # ONVIF: the client sends on this track, the camera receives
)
MAX_SECONDS = 120
"""Samples kept per recording (the newest); older ones are counted but forgotten."""
FFT_SIZE = 2048
MAX_BLOCKS = 16
"""The loudest blocks of :data:`FFT_SIZE` samples the frequency is measured over."""
MIN_FREQUENCY_HZ = 200
"""The search starts here, below the telephone band (300-3400 Hz): what lies lower is hum, DC steps
and pulses — Chromium's fake microphone beeps a one-sided square wave, whose DC pulse, when the
browser's processing lets it through, outweighs the 400 Hz tone below ~150 Hz."""


def requires_backchannel(require_header: str) -> bool:
    """Whether an RTSP ``Require`` header asks for the ONVIF backchannel."""
    return any(tag.strip() == REQUIRE_TAG for tag in require_header.split(","))


def _ulaw_to_linear(code: int) -> int:
    """One G.711 μ-law byte to a 16-bit sample (ITU-T G.711, as in the Sun reference code)."""
    u = ~code & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return 0x84 - t if u & 0x80 else t - 0x84


ULAW_TABLE = tuple(_ulaw_to_linear(code) for code in range(256))


def ulaw_decode(payload: bytes) -> array[int]:
    return array("h", (ULAW_TABLE[b] for b in payload))


def _fft(values: list[complex]) -> list[complex]:
    """In-place iterative radix-2 FFT (``len(values)`` a power of two)."""
    n = len(values)
    j = 0
    for i in range(1, n):
        bit = n >> 1
        while j & bit:
            j ^= bit
            bit >>= 1
        j |= bit
        if i < j:
            values[i], values[j] = values[j], values[i]
    size = 2
    while size <= n:
        half = size // 2
        step = cmath.exp(-2j * math.pi / size)
        twiddles = [step**k for k in range(half)]
        for start in range(0, n, size):
            for k in range(half):
                a = values[start + k]
                b = values[start + k + half] * twiddles[k]
                values[start + k] = a + b
                values[start + k + half] = a - b
        size *= 2
    return values


_HANN = [0.5 - 0.5 * math.cos(2 * math.pi * i / (FFT_SIZE - 1)) for i in range(FFT_SIZE)]


def dominant_frequency(samples: array[int], rate: int = CLOCK_RATE) -> float | None:
    """The strongest frequency (Hz) in ``samples``, or None for silence or too few samples.

    The samples are cut into blocks of :data:`FFT_SIZE`; the :data:`MAX_BLOCKS` loudest are
    windowed and transformed, their power spectra summed, and the peak bin from
    :data:`MIN_FREQUENCY_HZ` up refined by parabolic interpolation of the log power."""
    count = len(samples) // FFT_SIZE
    if count == 0:
        return None
    blocks = [samples[i * FFT_SIZE:(i + 1) * FFT_SIZE] for i in range(count)]
    energies = [sum(s * s for s in block) for block in blocks]
    ranked = sorted(range(count), key=lambda i: energies[i], reverse=True)[:MAX_BLOCKS]
    if energies[ranked[0]] == 0:
        return None
    power = [0.0] * (FFT_SIZE // 2)
    for index in ranked:
        spectrum = _fft([complex(s * w) for s, w in zip(blocks[index], _HANN, strict=True)])
        for k in range(1, FFT_SIZE // 2):
            power[k] += abs(spectrum[k]) ** 2
    lowest = max(2, MIN_FREQUENCY_HZ * FFT_SIZE // rate + 1)
    peak = max(range(lowest, FFT_SIZE // 2 - 1), key=power.__getitem__)
    left, mid, right = (math.log(power[k] + 1e-9) for k in (peak - 1, peak, peak + 1))
    denominator = left - 2 * mid + right
    offset = 0.5 * (left - right) / denominator if denominator < 0 else 0.0
    offset = max(-0.5, min(0.5, offset))  # a true peak's vertex lies within half a bin
    return (peak + offset) * rate / FFT_SIZE


@dataclass(eq=False)
class Recording:
    """What one RTSP session sent on its backchannel track."""

    channel: int
    started_mono_us: int = field(default_factory=lambda: time.monotonic_ns() // 1_000)
    ended: bool = False
    packets: int = 0
    samples_total: int = 0
    seq_gaps: int = 0
    """Packets whose sequence number is not the previous one plus one."""
    timestamp_errors: int = 0
    """Packets whose timestamp is not the previous one plus a whole number of its packets."""
    bad_payload_types: int = 0
    talkspurts: int = 0
    """Packets with the marker bit: the first of each talkspurt (RFC 3551)."""
    timestamp_advance: int = 0
    """RTP clock ticks from the first packet to the last (silences included)."""
    first_arrival_us: int | None = None
    last_arrival_us: int | None = None
    samples: array[int] = field(default_factory=lambda: array("h"))
    _last_seq: int | None = None
    _last_ts: int | None = None
    _last_len: int = 0
    _frequency: tuple[int, float | None] = (-1, None)

    def receive(self, packet: bytes) -> None:
        """One RTP packet from the client (header and μ-law payload)."""
        if len(packet) < 12 or packet[0] >> 6 != 2:
            return
        now = time.monotonic_ns() // 1_000
        csrc = packet[0] & 0x0F
        seq, ts = struct.unpack(">HI", packet[2:8])
        payload = packet[12 + 4 * csrc:]
        if packet[0] & 0x20 and payload:  # padding
            payload = payload[:-payload[-1]]
        if packet[1] & 0x7F != PAYLOAD_TYPE:
            self.bad_payload_types += 1
            return
        if self._last_seq is not None and seq != (self._last_seq + 1) & 0xFFFF:
            self.seq_gaps += 1
        if self._last_ts is not None:
            delta = (ts - self._last_ts) & 0xFFFFFFFF
            if self._last_len == 0 or delta == 0 or delta % self._last_len or delta > 1 << 30:
                self.timestamp_errors += 1
            else:
                self.timestamp_advance += delta
        self._last_seq, self._last_ts, self._last_len = seq, ts, len(payload)
        self.packets += 1
        self.talkspurts += packet[1] >> 7
        self.samples_total += len(payload)
        if self.first_arrival_us is None:
            self.first_arrival_us = now
        self.last_arrival_us = now
        self.samples.extend(ulaw_decode(payload))
        excess = len(self.samples) - MAX_SECONDS * CLOCK_RATE
        if excess > 0:
            del self.samples[:excess]

    def frequency_hz(self) -> float | None:
        """The dominant frequency, computed again only when new samples arrived."""
        if self._frequency[0] != self.samples_total:
            self._frequency = (self.samples_total, dominant_frequency(self.samples))
        return self._frequency[1]

    def figures(self) -> dict[str, object]:
        span_us = ((self.last_arrival_us or 0) - (self.first_arrival_us or 0))
        frequency = self.frequency_hz()
        peak = max((abs(s) for s in self.samples), default=0)
        return {
            "packets": self.packets,
            "seconds": round(self.samples_total / CLOCK_RATE, 3),
            "arrival_span_s": round(span_us / 1_000_000, 3),
            "rtp_span_s": round(self.timestamp_advance / CLOCK_RATE, 3),
            "talkspurts": self.talkspurts,
            "frequency_hz": None if frequency is None else round(frequency, 1),
            "peak": peak,
            "seq_gaps": self.seq_gaps,
            "timestamp_errors": self.timestamp_errors,
            "bad_payload_types": self.bad_payload_types,
            "active": not self.ended,
        }


class Backchannel:
    """A camera's loudspeaker: the recordings of its RTSP sessions (the newest one is reported)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.sessions_total = 0
        self.active: set[Recording] = set()
        self.latest: Recording | None = None

    def open(self, channel: int) -> Recording:
        recording = Recording(channel)
        self.sessions_total += 1
        self.active.add(recording)
        self.latest = recording
        return recording

    def close(self, recording: Recording) -> None:
        recording.ended = True
        self.active.discard(recording)

    def state(self) -> dict[str, object]:
        figures = self.latest.figures() if self.latest is not None else {}
        return {"supported": self.enabled, "sessions_active": len(self.active),
                "sessions_total": self.sessions_total, **figures}
