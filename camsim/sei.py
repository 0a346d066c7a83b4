"""The capture-time SEI: how a virtual camera stamps each H.264 access unit with its wall clock.

This module owns the wire format of that stamp and its reading back. Every access unit camsim sends
carries one SEI NAL (type 6) holding a single ``user_data_unregistered`` message (payload type 5):
the 16-byte :data:`VMS_SEI_UUID`, then the capture time as a big-endian signed int64 count of UTC
microseconds, and nothing else. :func:`build_sei_nal` makes the NAL (with emulation-prevention
bytes); :func:`find_capture_times` finds stamps in Annex B or AVCC bytes, and
:func:`read_capture_times` reads them from a recorded file with PyAV, for tests and tools.
"""

from __future__ import annotations

import struct
from pathlib import Path

VMS_SEI_UUID = bytes.fromhex("e7c1391a3e8e487fbecc613edd94e487")
"""Our fixed user_data_unregistered UUID (random, made once for this project)."""

_SEI_TYPE_USER_DATA_UNREGISTERED = 5
_PAYLOAD = struct.Struct(">q")


def add_emulation_prevention(rbsp: bytes) -> bytes:
    """Insert 0x03 after every ``00 00`` that is followed by a byte <= 3 (H.264 §7.4.1)."""
    if b"\x00\x00" not in rbsp:
        return rbsp
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def remove_emulation_prevention(ebsp: bytes) -> bytes:
    """Drop the 0x03 emulation-prevention bytes (inverse of :func:`add_emulation_prevention`)."""
    if b"\x00\x00\x03" not in ebsp:
        return ebsp
    out = bytearray()
    zeros = 0
    for byte in ebsp:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def build_sei_nal(capture_us: int) -> bytes:
    """The SEI NAL unit (header byte included, no start code) stamping ``capture_us``."""
    body = VMS_SEI_UUID + _PAYLOAD.pack(capture_us)
    rbsp = bytes((_SEI_TYPE_USER_DATA_UNREGISTERED, len(body))) + body + b"\x80"
    return b"\x06" + add_emulation_prevention(rbsp)


def _read_sei_value(rbsp: bytes, pos: int) -> tuple[int, int] | None:
    """(value, next position) of an SEI payload type or size at ``pos``, or None if cut short.

    Both are coded alike (H.264 §7.3.2.3.1): each 0xFF byte adds 255, the first other byte ends it.
    """
    value = 0
    while pos < len(rbsp) and rbsp[pos] == 0xFF:
        value += 255
        pos += 1
    if pos >= len(rbsp):
        return None
    return value + rbsp[pos], pos + 1


def parse_sei_nal(nal: bytes) -> int | None:
    """The capture time in one SEI NAL (header byte included), or None if none of ours."""
    if not nal or (nal[0] & 0x1F) != 6:
        return None
    rbsp = remove_emulation_prevention(nal[1:])
    pos = 0
    while pos < len(rbsp) and rbsp[pos] != 0x80:
        read = _read_sei_value(rbsp, pos)
        if read is None:
            return None
        payload_type, pos = read
        read = _read_sei_value(rbsp, pos)
        if read is None:
            return None
        size, pos = read
        payload = rbsp[pos : pos + size]
        pos += size
        if (
            payload_type == _SEI_TYPE_USER_DATA_UNREGISTERED
            and len(payload) >= 24
            and payload[:16] == VMS_SEI_UUID
        ):
            value: int = _PAYLOAD.unpack_from(payload, 16)[0]
            return value
    return None


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex B byte stream (start codes removed, trailing zero bytes trimmed)."""
    nals: list[bytes] = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        start = i + 3
        nxt = data.find(b"\x00\x00\x01", start)
        end = len(data) if nxt < 0 else nxt
        nal = data[start:end]
        if nxt >= 0:
            nal = nal.rstrip(b"\x00")
        if nal:
            nals.append(nal)
        i = nxt
    return nals


def _nals_avcc(data: bytes, length_size: int = 4) -> list[bytes] | None:
    nals: list[bytes] = []
    pos = 0
    while pos + length_size <= len(data):
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if size == 0 or pos + size > len(data):
            return None
        nals.append(data[pos : pos + size])
        pos += size
    return nals if pos == len(data) else None


def split_nals(data: bytes, length_size: int = 4) -> list[bytes]:
    """NAL units of one packet, Annex B (start codes) or AVCC (big-endian length prefixes)."""
    if data.startswith(b"\x00\x00\x01") or data.startswith(b"\x00\x00\x00\x01"):
        return split_annexb(data)
    avcc = _nals_avcc(data, length_size)
    return avcc if avcc is not None else split_annexb(data)


def find_capture_times(data: bytes, length_size: int = 4) -> list[int]:
    """Every capture time stamped in ``data`` (Annex B or AVCC H.264), in order."""
    times: list[int] = []
    for nal in split_nals(data, length_size):
        value = parse_sei_nal(nal)
        if value is not None:
            times.append(value)
    return times


def read_capture_times(path: str | Path) -> list[tuple[float, int]]:
    """``[(pts_seconds, capture_us)]`` for every stamped video packet of a recorded file, in order.

    Reads with PyAV (MP4/fMP4 packets are AVCC, MPEG-TS packets Annex B; both are handled).
    """
    import av  # imported here: the RTSP server itself does not need PyAV

    out: list[tuple[float, int]] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        extradata = stream.codec_context.extradata or b""
        length_size = (extradata[4] & 3) + 1 if len(extradata) > 4 and extradata[0] == 1 else 4
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None or packet.time_base is None:
                continue
            times = find_capture_times(bytes(packet), length_size)
            if times:
                out.append((float(packet.pts * packet.time_base), times[0]))
    return out
