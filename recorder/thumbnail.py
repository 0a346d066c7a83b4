"""Timeline preview pictures: a small JPEG of the keyframe at or before a recorded instant, cached.

The segment holding the instant comes from the index. Its keyframes are listed once from the
container's own sample index (``index_entries``, which the MP4 demuxer builds from the moov/moof
boxes when the file is opened: no media is read), their presentation times being the decode times
plus the first keyframe's composition offset (one packet read). That list is cached per segment, so
finding the keyframe at or before an instant is a bisection. The keyframe is then decoded on its
own (an IDR needs no other frame), scaled to :data:`THUMB_WIDTH` pixels wide and encoded as JPEG.
Nothing else is decoded and the stream is never transcoded. Pictures are kept in a
:class:`ThumbnailCache` (least recently used first out, bounded in bytes and entries) keyed by
segment and keyframe, so every instant of one GOP is answered from memory after the first.
Blocking: run :func:`keyframe_thumbnail` in a thread.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from recorder.snapshot import SnapshotError, encode_jpeg

THUMB_WIDTH = 240
"""Width of a preview picture in pixels (height keeps the aspect ratio, rounded to even)."""
JPEG_QUALITY = 6
"""The mjpeg quantiser of previews (2 best … 31 worst)."""
CACHE_MAX_BYTES = 16 * 1024 * 1024
CACHE_MAX_ENTRIES = 4_096
KEYFRAME_LISTS_MAX = 4_096
"""Segments whose keyframe lists are kept (a list is a few dozen integers)."""
MAX_PACKETS = 100_000
"""Packets read at most to list keyframes when a file has no sample index (bounded loop)."""


@dataclass(frozen=True)
class Thumbnail:
    jpeg: bytes
    frame_us: int       # index time (UTC µs) of the keyframe shown
    frame_pts_s: float  # its presentation time inside the file, seconds
    width: int
    height: int


@dataclass(frozen=True)
class Keyframes:
    """A segment's keyframes: presentation times (stream time base), ascending."""

    pts: tuple[int, ...]
    base_pts: int
    time_base: Fraction

    def at_or_before(self, offset_us: int) -> int:
        """The pts of the keyframe at or before ``offset_us`` into the file (the first keyframe
        for an instant before it)."""
        target = self.base_pts + int(Fraction(max(0, offset_us), 1_000_000) / self.time_base)
        i = bisect.bisect_right(self.pts, target) - 1
        return self.pts[max(0, i)]

    def seconds(self, pts: int) -> float:
        return float((pts - self.base_pts) * self.time_base)


class ThumbnailCache:
    """Thread-safe LRU of previews keyed by ``(segment id, keyframe pts)``, bounded in bytes and
    entries. Counts hits and misses (for tests and benchmarks)."""

    def __init__(self, max_bytes: int = CACHE_MAX_BYTES, max_entries: int = CACHE_MAX_ENTRIES):
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._items: OrderedDict[tuple[int, int], Thumbnail] = OrderedDict()
        self._keyframes: OrderedDict[int, Keyframes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: tuple[int, int]) -> Thumbnail | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return found

    def keyframes(self, segment_id: int) -> Keyframes | None:
        with self._lock:
            found = self._keyframes.get(segment_id)
            if found is not None:
                self._keyframes.move_to_end(segment_id)
            return found

    def put_keyframes(self, segment_id: int, keys: Keyframes) -> None:
        with self._lock:
            self._keyframes[segment_id] = keys
            self._keyframes.move_to_end(segment_id)
            while len(self._keyframes) > KEYFRAME_LISTS_MAX:
                self._keyframes.popitem(last=False)

    def put(self, key: tuple[int, int], thumb: Thumbnail) -> None:
        if len(thumb.jpeg) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old.jpeg)
            self._items[key] = thumb
            self._bytes += len(thumb.jpeg)
            while self._items and (self._bytes > self.max_bytes
                                   or len(self._items) > self.max_entries):
                _key, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped.jpeg)


def list_keyframes(container: Any, path: Path) -> Keyframes:
    """The keyframes of an open file: from its sample index when it has one (no media read but
    one packet), else by reading its packets (bounded by :data:`MAX_PACKETS`)."""
    import av

    vstream, tb, base_pts = _video(container, path)
    dts = [e.timestamp for e in vstream.index_entries if e.is_keyframe]
    pts: list[int] = []
    if dts:
        # the index holds decode times; a keyframe is presented its composition offset later (the
        # encoder's reorder delay, the same for every keyframe of a stream)
        container.seek(dts[0], stream=vstream, backward=True, any_frame=False)
        offset = 0
        for count, packet in enumerate(container.demux(vstream)):
            if packet.dts is not None and packet.dts >= dts[0] or count > 1_000:
                if packet.pts is not None and packet.dts is not None and packet.is_keyframe:
                    offset = packet.pts - packet.dts
                break
        pts = sorted(d + offset for d in dts)
    else:
        container.seek(0, stream=vstream, backward=True, any_frame=False)
        try:
            for count, packet in enumerate(container.demux(vstream)):
                if count > MAX_PACKETS:
                    break
                if packet.is_keyframe and packet.pts is not None:
                    pts.append(packet.pts)
        except av.error.FFmpegError:  # truncated tail of a crashed segment
            if not pts:
                raise
        pts.sort()
    if not pts:
        raise SnapshotError(f"{path.name}: no keyframe")
    return Keyframes(tuple(pts), base_pts, Fraction(tb))


def decode_keyframe(container: Any, path: Path, pts: int, *, width: int = THUMB_WIDTH,
                    quality: int = JPEG_QUALITY) -> tuple[bytes, int, int, int]:
    """Decode the keyframe presented at ``pts`` of an open file alone: (small JPEG, its width,
    its height, the pts decoded). Should a stream's keyframes not all share one composition offset
    (so ``pts`` was estimated wrong), the keyframe the seek landed on is decoded instead."""
    import av

    vstream, _tb, _base = _video(container, path)
    container.seek(pts, stream=vstream, backward=True, any_frame=False)
    codec = av.CodecContext.create(vstream.codec_context.name, "r")
    codec.extradata = vstream.codec_context.extradata
    chosen = None
    for packet in container.demux(vstream):
        if packet.dts is not None and packet.dts > pts:
            break
        if packet.pts is None or not packet.is_keyframe:
            continue
        chosen = packet
        if packet.pts == pts:
            break
    frame = None
    if chosen is not None:
        frames = list(codec.decode(chosen)) + list(codec.decode(None))
        frame = frames[0] if frames else None
    if frame is None or chosen is None:
        raise SnapshotError(f"{path.name}: the keyframe at pts {pts} did not decode")
    height = max(2, round(frame.height * width / frame.width / 2) * 2)
    jpeg = encode_jpeg(frame.reformat(width=width, height=height), quality)
    return jpeg, width, height, int(chosen.pts)


def keyframe_thumbnail(cache: ThumbnailCache, segment_id: int, path: Path, segment_start_us: int,
                       at_us: int) -> tuple[Thumbnail, bool]:
    """(the preview of the keyframe at or before ``at_us``, whether it came from ``cache``).

    A known segment and keyframe touch no file; otherwise the file is opened once."""
    import av

    offset_us = at_us - segment_start_us
    keys = cache.keyframes(segment_id)
    if keys is not None:
        found = cache.get((segment_id, keys.at_or_before(offset_us)))
        if found is not None:
            return found, True
    try:
        with av.open(str(path)) as container:
            if keys is None:
                keys = list_keyframes(container, path)
                cache.put_keyframes(segment_id, keys)
                found = cache.get((segment_id, keys.at_or_before(offset_us)))
                if found is not None:
                    return found, True
            pts = keys.at_or_before(offset_us)
            jpeg, width, height, shown = decode_keyframe(container, path, pts)
    except (av.error.FFmpegError, OSError) as exc:
        raise SnapshotError(f"{path.name}: cannot decode: {exc}") from exc
    pts_s = keys.seconds(shown)
    thumb = Thumbnail(jpeg, segment_start_us + round(pts_s * 1_000_000), pts_s, width, height)
    cache.put((segment_id, pts), thumb)
    return thumb, False


def _video(container: Any, path: Path) -> tuple[Any, Fraction, int]:
    if not container.streams.video:
        raise SnapshotError(f"{path.name}: no video stream")
    vstream = container.streams.video[0]
    tb = vstream.time_base
    if tb is None:
        raise SnapshotError(f"{path.name}: video stream without a time base")
    return vstream, tb, vstream.start_time or 0
