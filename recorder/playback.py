"""HLS playback built from the segment index: playlists, and the byte ranges of recorded files.

Design:

* Every recorded file is a fragmented MP4 with its own ``ftyp``+``moov`` (``empty_moov``) and media
  timestamps restarting at 0 (the segment muxer resets them per file). So each file becomes one HLS
  media segment with its **own** ``#EXT-X-MAP`` (the file's ``ftyp``+``moov``, served as
  ``media/{id}?part=init``) and the segment itself is the file's ``moof``/``mdat`` pairs
  (``media/{id}?part=fragments``). Because timestamps restart in each file, an
  ``#EXT-X-DISCONTINUITY`` precedes every file but the first. Nothing is transcoded or remuxed:
  the server only picks byte ranges of the files as written.
* Every segment carries ``#EXT-X-PROGRAM-DATE-TIME`` equal to its index ``start_us``, so the player
  always knows the true wall time of any frame; ``#EXTINF`` is the index duration. A **gap** is not
  filled: the next file follows a discontinuity and its program-date-time jumps over the gap (the
  player's clock is the playlist position, the wall time comes from program-date-time).
* The playlist starts with the file containing ``from_us``; ``#EXT-X-START`` places the playhead at
  ``from_us`` inside it (precise), so the decoder starts at the keyframe at or before the instant.
* A range still being recorded (``to_us`` after now) is an ``EVENT`` playlist without
  ``#EXT-X-ENDLIST``: the player reloads it and follows new segments.

Byte ranges (``file_parts``) come from the top-level MP4 boxes of the file, read at request time,
never from the client: init = everything before the first ``moof``; fragments = the first ``moof``
to the end of the last *complete* ``moof``+``mdat`` (the trailing ``mfra`` and any truncated tail of
a file cut by a crash are left out).
"""

from __future__ import annotations

import functools
import logging
import math
import struct
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from recorder.timeline import PLAYABLE_STATES, range_rows, split_before
from vms.db.models import Run, Segment

log = logging.getLogger(__name__)

MAX_PLAYLIST_RANGE_US = 7 * 86_400 * 1_000_000
MAX_PLAYLIST_SEGMENTS = 50_000
DAY_US = 86_400 * 1_000_000
EPOCH_DATE = date(1970, 1, 1)


class MediaFormatError(ValueError):
    """A recorded file is not the fragmented MP4 playback expects."""


@dataclass(frozen=True)
class FileParts:
    size_bytes: int
    init: tuple[int, int]        # [start, end) of ftyp+moov
    fragments: tuple[int, int]   # [start, end) of the complete moof/mdat pairs


def file_parts(path: Path) -> FileParts:
    """Locate the init section and the complete fragments of a fragmented MP4 by its top boxes."""
    size = path.stat().st_size
    first_moof: int | None = None
    fragments_end: int | None = None
    with path.open("rb") as fh:
        offset = 0
        while offset + 8 <= size:
            fh.seek(offset)
            header = fh.read(16)
            box_size, box_type = struct.unpack(">I4s", header[:8])
            if box_size == 1 and len(header) >= 16:
                box_size = struct.unpack(">Q", header[8:16])[0]
            elif box_size == 0:
                box_size = size - offset
            if box_size < 8 or offset + box_size > size:
                break  # truncated tail (a crash mid-write): stop at the last complete box
            if box_type == b"moof" and first_moof is None:
                first_moof = offset
            if box_type == b"mdat" and first_moof is not None:
                fragments_end = offset + box_size
            offset += box_size
    if first_moof is None or fragments_end is None:
        raise MediaFormatError(f"{path.name}: no complete moof/mdat fragment (not fragmented MP4?)")
    return FileParts(size, (0, first_moof), (first_moof, fragments_end))


@functools.lru_cache(maxsize=64)
def _utc_date(day: int) -> str:
    return (EPOCH_DATE + timedelta(days=day)).isoformat()


def _pdt(instant_us: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (milliseconds truncated, as ``isoformat`` does), by integer
    arithmetic: a camera-day playlist writes ~1,440 of these."""
    day, rest_us = divmod(instant_us, DAY_US)
    seconds, micros = divmod(rest_us, 1_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{_utc_date(day)}T{hours:02d}:{minutes:02d}:{seconds:02d}.{micros // 1000:03d}Z"


PlaylistSegment = tuple[int, int, int]
"""``(segment id, start_us, end_us)`` of one playable segment: all in the covering segment index.
A plain tuple on purpose: the garbage collector stops tracking a tuple of ints, but never a
``NamedTuple`` (a tuple subclass); ~1,440 of those per camera-day playlist survived into the oldest
generation and brought a full collection (~45 ms) about every 100 requests."""

PLAYLIST_COLUMNS = (Segment.id, Segment.start_us, Segment.end_us, Segment.state)


@dataclass(frozen=True)
class Playlist:
    text: str
    segments: list[PlaylistSegment]
    start_offset_s: float


def playable_segments(camera_id: int, from_us: int, to_us: int,
                      stream: str = "main") -> list[PlaylistSegment]:
    """The playable segments touching ``[from_us, to_us)``, in order (index only, O(log n + k):
    one index-only range scan, no table rows)."""
    if to_us <= from_us:
        raise ValueError("'to' must be after 'from'")
    if to_us - from_us > MAX_PLAYLIST_RANGE_US:
        raise ValueError(f"a playlist covers at most {MAX_PLAYLIST_RANGE_US // 86_400_000_000} days")
    rows = range_rows(PLAYLIST_COLUMNS, camera_id, from_us, to_us, stream, MAX_PLAYLIST_SEGMENTS)
    before, inside = split_before(rows, 1, from_us, MAX_PLAYLIST_SEGMENTS)
    if before is not None and before[2] > from_us:
        inside.insert(0, before)
    return [(seg_id, start_us, end_us) for seg_id, start_us, end_us, state in inside
            if state in PLAYABLE_STATES and end_us > start_us]


def open_run_exists(camera_id: int, stream: str = "main") -> bool:
    """True while a run of the camera stream is still recording (its ``end_us`` not yet set)."""
    return bool(Run.select(Run.id).where((Run.camera == camera_id) & (Run.stream == stream)
                                         & Run.end_us.is_null()).exists())


def playlist_segments(camera_id: int, from_us: int, to_us: int, now_us: int,
                      stream: str = "main") -> tuple[list[PlaylistSegment], bool]:
    """(playable segments of the range, whether the playlist is live: the range reaches past now
    and the camera is still recording, so more segments will come)."""
    segments = playable_segments(camera_id, from_us, to_us, stream)
    live = to_us > now_us and open_run_exists(camera_id, stream)
    return segments, live


def build_playlist(segments: list[PlaylistSegment], from_us: int, *, media_base: str,
                   live: bool = False) -> Playlist:
    """An HLS (version 7) playlist over ``segments``; URIs are ``{media_base}/{segment id}``."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    target = max((math.ceil((end_us - start_us) / 1e6) for _id, start_us, end_us in segments),
                 default=1)
    lines.append(f"#EXT-X-TARGETDURATION:{max(1, target)}")
    lines.append("#EXT-X-MEDIA-SEQUENCE:0")
    lines.append("#EXT-X-DISCONTINUITY-SEQUENCE:0")
    lines.append("#EXT-X-PLAYLIST-TYPE:EVENT" if live else "#EXT-X-PLAYLIST-TYPE:VOD")
    start_offset_s = 0.0
    if segments and segments[0][1] < from_us:
        start_offset_s = (from_us - segments[0][1]) / 1e6
        lines.append(f"#EXT-X-START:TIME-OFFSET={start_offset_s:.3f},PRECISE=YES")
    for i, (seg_id, start_us, end_us) in enumerate(segments):
        # one string per segment; EXTINF is the index duration in seconds with 6 decimals, written
        # from the integer microseconds (the same text as formatting the float)
        if i:
            lines.append("#EXT-X-DISCONTINUITY")
        duration_us = end_us - start_us
        lines.append(f'#EXT-X-MAP:URI="{media_base}/{seg_id}?part=init"\n'
                     f"#EXT-X-PROGRAM-DATE-TIME:{_pdt(start_us)}\n"
                     f"#EXTINF:{duration_us // 1_000_000}.{duration_us % 1_000_000:06d},\n"
                     f"{media_base}/{seg_id}?part=fragments")
    if not live:
        lines.append("#EXT-X-ENDLIST")
    return Playlist("\n".join(lines) + "\n", segments, start_offset_s)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``Range: bytes=a-b`` → ``(start, end_exclusive)``; None for no header; ValueError if
    unsatisfiable or malformed. Only a single range is served (as browsers and hls.js ask)."""
    if header is None:
        return None
    text = header.strip()
    if not text.startswith("bytes=") or "," in text:
        raise ValueError("only one 'bytes=' range is supported")
    first, sep, last = text[6:].strip().partition("-")
    if not sep:
        raise ValueError("malformed range")
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                raise ValueError("empty suffix range")
            start, end = max(0, size - suffix), size
        else:
            start = int(first)
            end = size if last == "" else min(size, int(last) + 1)
    except ValueError as exc:
        raise ValueError(f"malformed range: {exc}") from None
    if start < 0 or start >= size or end <= start:
        raise ValueError("range not satisfiable")
    return start, end


class UnsafePath(ValueError):
    """An indexed path that would leave its storage volume; never served."""


def resolve_segment_file(volumes: dict[str, Path], volume: str, rel_path: str) -> Path:
    """The absolute file of an indexed segment, refusing anything outside its volume."""
    root = volumes.get(volume)
    if root is None:
        raise UnsafePath(f"unknown storage volume {volume!r}")
    rel = Path(rel_path)
    if rel.is_absolute() or ".." in rel.parts or "\x00" in rel_path:
        raise UnsafePath(f"indexed path {rel_path!r} is not relative to its volume")
    root_resolved = root.resolve()
    full = (root_resolved / rel).resolve()
    if not full.is_relative_to(root_resolved):
        raise UnsafePath(f"indexed path {rel_path!r} leaves volume {volume!r}")
    return full
