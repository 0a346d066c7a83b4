"""Timeline preview pictures: a small JPEG of the keyframe at or before a recorded instant, cached.

The segment holding the instant comes from the index; the file is opened with PyAV and seeked to
the keyframe at or before the instant, then only packets are read (no decoding) to find the last
keyframe at or before it. That one keyframe is decoded on its own (an IDR needs no other frame),
scaled to :data:`THUMB_WIDTH` pixels wide and encoded as JPEG. Nothing else is decoded and the stream
is never transcoded, so hovering over a timeline costs one keyframe per GOP, at most once: pictures
are kept in a :class:`ThumbnailCache` (least recently used first out, bounded in bytes and entries)
keyed by segment and keyframe, so every instant of one GOP is answered from memory after the first.
Blocking: run :func:`keyframe_thumbnail` in a thread.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from recorder.snapshot import SnapshotError, encode_jpeg

THUMB_WIDTH = 240
"""Width of a preview picture in pixels (height keeps the aspect ratio, rounded to even)."""
JPEG_QUALITY = 6
"""The mjpeg quantiser of previews (2 best … 31 worst)."""
SEEK_MARGIN_US = 2_000_000
"""How far before the instant the demuxer is seeked (more than a B-frame reorder delay)."""
CACHE_MAX_BYTES = 16 * 1024 * 1024
CACHE_MAX_ENTRIES = 4_096


@dataclass(frozen=True)
class Thumbnail:
    jpeg: bytes
    frame_us: int       # index time (UTC µs) of the keyframe shown
    frame_pts_s: float  # its presentation time inside the file, seconds
    width: int
    height: int


@dataclass(frozen=True)
class Keyframe:
    """Where the keyframe at or before an instant is, found by reading packets only."""

    pts: int
    pts_s: float         # relative to the stream's start, seconds
    frame_us: int


class ThumbnailCache:
    """Thread-safe LRU of previews keyed by ``(segment id, keyframe pts)``, bounded in bytes and
    entries. Counts hits and misses (for tests and benchmarks)."""

    def __init__(self, max_bytes: int = CACHE_MAX_BYTES, max_entries: int = CACHE_MAX_ENTRIES):
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._items: OrderedDict[tuple[int, int], Thumbnail] = OrderedDict()
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


def find_keyframe(path: Path, segment_start_us: int, at_us: int) -> Keyframe:
    """The keyframe of ``path`` at or before ``at_us``, found by demuxing only."""
    import av

    offset_us = max(0, at_us - segment_start_us)
    try:
        with av.open(str(path)) as container:
            vstream, tb, base_pts = _video(container, path)
            target_pts = base_pts + int(Fraction(offset_us, 1_000_000) / tb)
            # seek a margin early: the demuxer seeks by decode time, and a keyframe's decode time
            # can lie before the target while its presentation time lies after it
            margin = int(Fraction(SEEK_MARGIN_US, 1_000_000) / tb)
            container.seek(max(0, target_pts - margin), stream=vstream, backward=True,
                           any_frame=False)
            best: int | None = None
            first: int | None = None
            try:
                for packet in container.demux(vstream):
                    if packet.pts is None:
                        continue
                    if packet.dts is not None and packet.dts > target_pts:
                        break  # decode order: every later packet is presented after the target
                    if packet.is_keyframe:
                        if first is None:
                            first = packet.pts
                        if packet.pts <= target_pts:
                            best = packet.pts if best is None else max(best, packet.pts)
            except av.error.FFmpegError:  # truncated tail of a crashed segment
                if best is None and first is None:
                    raise
            best = first if best is None else best  # an instant before the file's first keyframe
            if best is None:
                raise SnapshotError(f"{path.name}: no keyframe at +{offset_us / 1e6:.3f}s")
            pts_s = float((best - base_pts) * tb)
            return Keyframe(best, pts_s, segment_start_us + round(pts_s * 1_000_000))
    except (av.error.FFmpegError, OSError) as exc:
        raise SnapshotError(f"{path.name}: cannot read: {exc}") from exc


def decode_keyframe(path: Path, key: Keyframe, *, width: int = THUMB_WIDTH,
                    quality: int = JPEG_QUALITY) -> Thumbnail:
    """Decode the keyframe ``key`` of ``path`` alone and encode it as a small JPEG."""
    import av

    try:
        with av.open(str(path)) as container:
            vstream, _tb, _base = _video(container, path)
            container.seek(key.pts, stream=vstream, backward=True, any_frame=False)
            codec = av.CodecContext.create(vstream.codec_context.name, "r")
            codec.extradata = vstream.codec_context.extradata
            frame = None
            for packet in container.demux(vstream):
                if packet.dts is not None and packet.dts > key.pts:
                    break
                if packet.pts != key.pts or not packet.is_keyframe:
                    continue
                frames = list(codec.decode(packet)) + list(codec.decode(None))
                frame = frames[0] if frames else None
                break
            if frame is None:
                raise SnapshotError(f"{path.name}: keyframe at {key.pts_s:.3f}s did not decode")
            height = max(2, round(frame.height * width / frame.width / 2) * 2)
            jpeg = encode_jpeg(frame.reformat(width=width, height=height), quality)
            return Thumbnail(jpeg, key.frame_us, key.pts_s, width, height)
    except (av.error.FFmpegError, OSError) as exc:
        raise SnapshotError(f"{path.name}: cannot decode: {exc}") from exc


def keyframe_thumbnail(cache: ThumbnailCache, segment_id: int, path: Path, segment_start_us: int,
                       at_us: int) -> tuple[Thumbnail, bool]:
    """(the preview of the keyframe at or before ``at_us``, whether it came from ``cache``)."""
    key = find_keyframe(path, segment_start_us, at_us)
    cached = cache.get((segment_id, key.pts))
    if cached is not None:
        return cached, True
    thumb = decode_keyframe(path, key)
    cache.put((segment_id, key.pts), thumb)
    return thumb, False


def _video(container, path: Path):  # type: ignore[no-untyped-def]
    if not container.streams.video:
        raise SnapshotError(f"{path.name}: no video stream")
    vstream = container.streams.video[0]
    tb = vstream.time_base
    if tb is None:
        raise SnapshotError(f"{path.name}: video stream without a time base")
    return vstream, tb, vstream.start_time or 0
