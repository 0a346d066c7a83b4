"""Fragmented MP4 as live view's ffmpeg writes it: boxes, the codec string, keyframes, splitting.

ffmpeg's stdout (``-movflags +frag_every_frame+empty_moov+default_base_moof``) is cut into the init
segment (``ftyp``+``moov``) and one fragment (``moof``+``mdat``) per frame by :class:`Fmp4Splitter`;
:func:`codec_string` reads the RFC 6381 codec of the init segment for the browser's MSE, and
:func:`fragment_is_keyframe` tells where a new viewer may start. Used by :mod:`recorder.live`.
"""

from __future__ import annotations

import struct
from typing import Literal


class Fmp4Error(ValueError):
    """ffmpeg's output is not the fragmented MP4 we asked for."""


def iter_boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """``[(type, payload_start, box_end)]`` of the boxes laid end to end in ``data[start:end]``."""
    end = len(data) if end is None else end
    out: list[tuple[bytes, int, int]] = []
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                break
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            break
        out.append((kind, pos + header, pos + size))
        pos += size
    return out


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    """``(payload_start, box_end)`` of the first ``kind`` box in ``data[start:end]``."""
    pos = start
    unpack = struct.unpack_from
    while pos + 8 <= end:
        size, k = unpack(">I4s", data, pos)
        if size < 8:  # a 64-bit or to-the-end size: rare, take the general path
            for k2, s, e in iter_boxes(data, pos, end):
                if k2 == kind:
                    return s, e
            return None
        if pos + size > end:
            return None
        if k == kind:
            return pos + 8, pos + size
        pos += size
    return None


def _path(data: bytes, kinds: list[bytes], start: int = 0,
          end: int | None = None) -> tuple[int, int] | None:
    span: tuple[int, int] | None = (start, len(data) if end is None else end)
    for kind in kinds:
        assert span is not None
        span = _child(data, span[0], span[1], kind)
        if span is None:
            return None
    return span


def codec_string(init: bytes) -> str:
    """The RFC 6381 codec of the init segment's video track (``avc1.64001f``, ``hvc1.1.6.L93.B0``)."""
    stsd = _path(init, [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"])
    if stsd is None:
        raise Fmp4Error("init segment has no moov/trak/…/stsd")
    entries = iter_boxes(init, stsd[0] + 8, stsd[1])  # full box header + entry_count
    if not entries:
        raise Fmp4Error("init segment has no sample entry")
    kind, start, end = entries[0]
    name = kind.decode("latin-1")
    children = start + 78  # VisualSampleEntry fields before its child boxes
    if kind in (b"avc1", b"avc3"):
        avcc = _child(init, children, end, b"avcC")
        if avcc is None or avcc[1] - avcc[0] < 4:
            raise Fmp4Error(f"{name} sample entry has no avcC")
        p, c, level = init[avcc[0] + 1], init[avcc[0] + 2], init[avcc[0] + 3]
        return f"{name}.{p:02x}{c:02x}{level:02x}"
    if kind in (b"hvc1", b"hev1"):
        hvcc = _child(init, children, end, b"hvcC")
        if hvcc is None or hvcc[1] - hvcc[0] < 13:
            raise Fmp4Error(f"{name} sample entry has no hvcC")
        b = init[hvcc[0]:hvcc[0] + 13]
        space = "" if b[1] >> 6 == 0 else "ABC"[(b[1] >> 6) - 1]
        tier = "H" if b[1] & 0x20 else "L"
        compat = int.from_bytes(b[2:6], "big")
        compat_rev = int(f"{compat:032b}"[::-1], 2)
        constraints = b[6:12].rstrip(b"\x00")
        suffix = "".join(f".{x:X}" for x in constraints)
        return f"{name}.{space}{b[1] & 0x1F}.{compat_rev:X}.{tier}{b[12]}{suffix}"
    raise Fmp4Error(f"video codec {name!r} cannot be played in a browser")


def fragment_is_keyframe(fragment: bytes) -> bool:
    """True when the fragment's first sample is a sync sample (``moof``/``traf`` sample flags)."""
    if fragment[4:8] == b"moof" and fragment[12:16] == b"mfhd" and fragment[28:32] == b"traf":
        # ffmpeg's layout (moof: mfhd of 16 bytes, then traf): start there, skip two searches
        return _traf_is_keyframe(fragment, 32, 24 + int.from_bytes(fragment[24:28], "big"))
    moof = _child(fragment, 0, len(fragment), b"moof")
    if moof is None:
        return False
    traf = _child(fragment, moof[0], moof[1], b"traf")
    if traf is None:
        return False
    return _traf_is_keyframe(fragment, traf[0], traf[1])


def _traf_is_keyframe(fragment: bytes, traf_start: int, traf_end: int) -> bool:
    traf = (traf_start, traf_end)
    default_flags: int | None = None
    tfhd = _child(fragment, traf[0], traf[1], b"tfhd")
    if tfhd is not None:
        flags = int.from_bytes(fragment[tfhd[0] + 1:tfhd[0] + 4], "big")
        pos = tfhd[0] + 8  # version/flags, track_ID
        for bit, size in ((0x01, 8), (0x02, 4), (0x08, 4), (0x10, 4)):
            if flags & bit:
                pos += size
        if flags & 0x20:
            default_flags = int.from_bytes(fragment[pos:pos + 4], "big")
    trun = _child(fragment, traf[0], traf[1], b"trun")
    sample_flags = default_flags
    if trun is not None:
        flags = int.from_bytes(fragment[trun[0] + 1:trun[0] + 4], "big")
        pos = trun[0] + 8  # version/flags, sample_count
        if flags & 0x01:
            pos += 4
        if flags & 0x04:
            sample_flags = int.from_bytes(fragment[pos:pos + 4], "big")
        elif flags & 0x400:
            pos += 4 if flags & 0x100 else 0
            pos += 4 if flags & 0x200 else 0
            sample_flags = int.from_bytes(fragment[pos:pos + 4], "big")
    if sample_flags is None:
        return False
    return not (sample_flags >> 16) & 1  # sample_is_non_sync_sample


MAX_BOX_BYTES = 32 * 1024 * 1024
"""The largest box a live stream may send (a bigger size is a corrupt stream)."""


def box_at(buf: bytes | bytearray, pos: int, end: int) -> tuple[int, bytes] | None:
    """(size, kind) of the box whose header starts at ``pos`` when all of it is in
    ``buf[:end]``; None while it is incomplete. Raises :class:`Fmp4Error` on a size no stream
    sends."""
    if end - pos < 8:
        return None
    size, kind = struct.unpack_from(">I4s", buf, pos)
    if size == 1:
        if end - pos < 16:
            return None
        size = struct.unpack_from(">Q", buf, pos + 8)[0]
    if size < 8 or size > MAX_BOX_BYTES:
        raise Fmp4Error(f"bad MP4 box {kind!r} of {size} bytes")
    return None if end - pos < size else (size, kind)


class Fmp4Splitter:
    """Cuts a fragmented MP4 byte stream into the init segment and ``moof``+``mdat`` fragments.

    Walks box headers with an offset and copies each unit out once (no per-box copy or shift of
    the buffer), so a large read holding many fragments costs little more than one fragment."""

    MAX_BOX_BYTES = MAX_BOX_BYTES

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # the next box header in _buf; the current unit starts at 0
        self.init: bytes | None = None

    def feed(self, data: bytes) -> list[tuple[Literal["init", "fragment"], bytes]]:
        buf = self._buf
        buf += data
        out: list[tuple[Literal["init", "fragment"], bytes]] = []
        pos, unit, end = self._pos, 0, len(buf)
        while (box := box_at(buf, pos, end)) is not None:
            size, kind = box
            pos += size
            if kind == b"mdat":
                out.append(("fragment", bytes(buf[unit:pos])))
                unit = pos
            elif kind == b"moov":
                self.init = bytes(buf[unit:pos])
                out.append(("init", self.init))
                unit = pos
            elif pos - unit > self.MAX_BOX_BYTES:
                raise Fmp4Error(f"no mdat or moov in {pos - unit} bytes")
        if unit:
            del buf[:unit]
        self._pos = pos - unit
        return out

    def leftover(self) -> bytes:
        """The bytes of the unit not complete yet (to hand the stream over to a backlog)."""
        return bytes(self._buf)


class FragmentBacklog:
    """Fragments read but not cut out yet: the cheap way to keep the latest GOP of a stream nobody
    watches (:mod:`recorder.live_tap`).

    :meth:`add` only appends bytes; :meth:`trim` walks the new box headers and, from the newest
    fragment backwards, looks for the latest keyframe and drops everything before it, so the
    backlog holds the current GOP (plus what came since the last trim); :meth:`take` cuts the
    complete fragments out (one ``bytes`` each) when someone needs them. The backlog starts at
    a fragment boundary (after the init segment)."""

    def __init__(self, data: bytes = b"", max_fragments: int = 600) -> None:
        self.buf = bytearray(data)
        self.max_fragments = max_fragments
        self._starts: list[int] = []  # offsets of the complete fragments walked so far
        self._pos = 0  # the next box header
        self._unit = 0  # where the fragment being walked starts
        self._checked = 0  # fragments at the start known not to be a later keyframe
        self.lost = False
        """The GOP outgrew ``max_fragments`` and was dropped: what follows is no continuation."""

    def __len__(self) -> int:
        return len(self.buf)

    def add(self, data: bytes | memoryview) -> None:
        self.buf += data

    def _walk(self) -> None:
        buf, pos, unit, end = self.buf, self._pos, self._unit, len(self.buf)
        starts = self._starts
        while (box := box_at(buf, pos, end)) is not None:
            size, kind = box
            pos += size
            if kind == b"mdat":
                starts.append(unit)
                unit = pos
            elif kind == b"moov":
                raise Fmp4Error("a second init segment in one stream")
        self._pos, self._unit = pos, unit

    def _cut(self, offset: int) -> None:
        if offset:
            del self.buf[:offset]
            self._starts = [s - offset for s in self._starts if s >= offset]
            self._pos -= offset
            self._unit -= offset

    def trim(self) -> None:
        """Drop what precedes the latest keyframe (checking each fragment at most once)."""
        self._walk()
        starts, buf = self._starts, self.buf
        for i in range(len(starts) - 1, self._checked - 1, -1):
            start = starts[i]
            moof_end = start + struct.unpack_from(">I", buf, start)[0]
            if fragment_is_keyframe(bytes(buf[start:moof_end])):
                self._cut(start)
                self._checked = 1
                return
        self._checked = len(starts)
        if len(starts) > self.max_fragments:  # no keyframe for too long: let the GOP go
            self._cut(self._unit)
            self._checked = 0
            self.lost = True

    def take(self) -> list[bytes]:
        """The complete fragments, in order, removed from the backlog."""
        self._walk()
        buf, starts = self.buf, self._starts
        ends = [*starts[1:], self._unit] if starts else []
        out = [bytes(buf[s:e]) for s, e in zip(starts, ends, strict=True)]
        self._cut(self._unit)
        self._starts, self._checked = [], 0
        return out
