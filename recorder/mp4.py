"""ISO-BMFF boxes: read the recorder's fragmented segments, write progressive MP4 sample tables.

The recorder writes fragmented MP4 (ffmpeg ``frag_keyframe+empty_moov+default_base_moof``): an
``ftyp``, an init ``moov`` holding the sample descriptions but no samples, then one ``moof`` +
``mdat`` pair per GOP whose ``trun`` boxes list each sample's duration, size, flags and
composition offset. :func:`read_fragmented` turns such a file into :class:`SampleRun` lists
without touching the media bytes; :func:`progressive_moov` writes the ``moov`` of a plain
(non-fragmented) MP4 for samples laid end to end in one ``mdat``. recorder/clip.py joins the two
into an export. Anything this reader does not understand raises :class:`Mp4Error`; the caller
then falls back to ffmpeg, so the reader may stay strict.

Box layouts are those of ISO/IEC 14496-12; every integer is big-endian.
"""

from __future__ import annotations

import dataclasses
import struct
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MAX_BOX_READ = 64 * 1024 * 1024
SEGMENT_BOXES = frozenset({b"ftyp", b"styp", b"moov", b"moof", b"mdat", b"mfra", b"free", b"skip",
                           b"sidx", b"prft", b"emsg", b"uuid", b"meta", b"udta"})
"""Top-level boxes a segment may hold; any other kind after the moov is damage (skipped)."""
"""Largest ``moov``/``moof`` this reader loads (a 1 s GOP's moof is a few hundred bytes)."""
MAX_RUN_SAMPLES = 1_000_000
"""More samples than this in one ``trun`` is not a recorder segment (a GOP holds tens)."""
MOVIE_TIMESCALE = 1000
UNITY_MATRIX = (0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
NON_SYNC = 0x00010000
"""``sample_is_non_sync_sample`` in ISO-BMFF sample flags."""

# trun flags
TRUN_DATA_OFFSET, TRUN_FIRST_FLAGS = 0x1, 0x4
TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTS = 0x100, 0x200, 0x400, 0x800
# tfhd flags
TFHD_BASE_OFFSET, TFHD_SDI, TFHD_DURATION, TFHD_SIZE, TFHD_FLAGS = 0x1, 0x2, 0x8, 0x10, 0x20
TFHD_BASE_IS_MOOF = 0x20000


class Mp4Error(Exception):
    """A file this module cannot read or a layout it does not handle; the message says which."""


# ----------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Box:
    kind: bytes
    start: int
    """Offset of the box header in its file (or in the enclosing payload)."""
    header: int
    size: int

    @property
    def payload_start(self) -> int:
        return self.start + self.header

    @property
    def end(self) -> int:
        return self.start + self.size


def iter_boxes(data: bytes | memoryview, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """Boxes laid end to end in ``data[start:end]`` (a box that overruns ``end`` is an error)."""
    end = len(data) if end is None else end
    at = start
    while at < end:
        if end - at < 8:
            raise Mp4Error(f"{end - at} stray bytes where a box header was expected")
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:
            if end - at < 16:
                raise Mp4Error("truncated 64-bit box header")
            (size,) = struct.unpack_from(">Q", data, at + 8)
            header = 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            raise Mp4Error(f"box {kind!r} at {at} claims {size} bytes; {end - at} are left")
        yield Box(kind, at, header, size)
        at += size


def child(data: bytes | memoryview, parent: Box, kind: bytes) -> Box | None:
    for box in iter_boxes(data, parent.payload_start, parent.end):
        if box.kind == kind:
            return box
    return None


def need(data: bytes | memoryview, parent: Box, path: str) -> Box:
    """The box at ``path`` (``"mdia/minf/stbl"``) under ``parent``."""
    box = parent
    for name in path.split("/"):
        found = child(data, box, name.encode())
        if found is None:
            raise Mp4Error(f"no {name} box in {box.kind.decode(errors='replace')}")
        box = found
    return box


def full_box(data: bytes | memoryview, box: Box) -> tuple[int, int, int]:
    """(version, flags, offset of the fields after them)."""
    if box.size - box.header < 4:
        raise Mp4Error(f"{box.kind!r} box too short")
    word = struct.unpack_from(">I", data, box.payload_start)[0]
    return word >> 24, word & 0xFFFFFF, box.payload_start + 4


@dataclass(frozen=True)
class Track:
    """One track of a fragmented file's init ``moov``: what the output needs to describe it."""

    track_id: int
    handler: bytes
    timescale: int
    language: int
    tkhd: bytes
    hdlr: bytes
    media_header: bytes
    """The whole ``vmhd``/``smhd``/``nmhd`` box."""
    dinf: bytes
    stsd: bytes
    edit_media_time: int
    """Media time the init ``elst`` maps to presentation 0 (0 without an edit list)."""
    default_sdi: int = 1
    default_duration: int = 0
    default_size: int = 0
    default_flags: int = 0

    @property
    def sample_entry(self) -> bytes:
        """The four-character code of the first sample description (``avc1``, ``mp4a``…)."""
        return bytes(self.stsd[20:24]) if len(self.stsd) >= 24 else b""

    def same_media(self, other: Track) -> bool:
        return (self.handler, self.timescale, self.stsd) == (other.handler, other.timescale,
                                                             other.stsd)


@dataclass
class SampleRun:
    """The samples of one ``trun``: contiguous bytes in the file, decode times from ``dts``."""

    track_id: int
    offset: int
    dts: int
    durations: array[int]
    sizes: array[int]
    flags: array[int]
    cts: array[int] | None

    @property
    def byte_size(self) -> int:
        return sum(self.sizes)

    def __len__(self) -> int:
        return len(self.sizes)


@dataclass
class FragmentedFile:
    path: Path
    size: int
    tracks: dict[int, Track]
    runs: list[SampleRun] = field(default_factory=list)
    truncated: bool = False
    """The file ends inside a fragment (a killed recording): runs stop at the last whole one."""
    stray_boxes: int = 0
    """Top-level boxes after the moov of no kind a segment holds (damaged bytes, skipped)."""

    def track(self, handler: bytes) -> Track | None:
        return next((t for t in self.tracks.values() if t.handler == handler), None)


def _read_exact(fh, offset: int, size: int) -> bytes:  # type: ignore[no-untyped-def]
    fh.seek(offset)
    data = fh.read(size)
    if len(data) != size:
        raise Mp4Error(f"file ends at {offset + len(data)} inside a box")
    return bytes(data)


def _top_level(fh, file_size: int) -> Iterator[tuple[bytes, int, int, int]]:  # type: ignore[no-untyped-def]
    """(kind, start, header, size) of top-level boxes; stops at a box the file cannot hold."""
    at = 0
    while at + 8 <= file_size:
        head = _read_exact(fh, at, min(16, file_size - at))
        size, kind = struct.unpack_from(">I4s", head)
        header = 8
        if size == 1:
            if len(head) < 16:
                return
            (size,) = struct.unpack_from(">Q", head, 8)
            header = 16
        elif size == 0:
            size = file_size - at
        if size < header:
            raise Mp4Error(f"top-level box {kind!r} at {at} has impossible size {size}")
        if at + size > file_size:
            yield kind, at, header, -1  # truncated
            return
        yield kind, at, header, size
        at += size


def _parse_track(moov: bytes, trak: Box) -> Track:
    tkhd_box = need(moov, trak, "tkhd")
    version, _, at = full_box(moov, tkhd_box)
    track_id = struct.unpack_from(">I", moov, at + (16 if version == 1 else 8))[0]
    mdia = need(moov, trak, "mdia")
    mdhd = need(moov, mdia, "mdhd")
    version, _, at = full_box(moov, mdhd)
    if version == 1:
        timescale, _, language = struct.unpack_from(">IQH", moov, at + 16)
    else:
        timescale, _, language = struct.unpack_from(">IIH", moov, at + 8)
    if timescale <= 0:
        raise Mp4Error(f"track {track_id}: timescale {timescale}")
    hdlr = need(moov, mdia, "hdlr")
    handler = moov[hdlr.payload_start + 8:hdlr.payload_start + 12]
    minf = need(moov, mdia, "minf")
    media_header = next((b for b in iter_boxes(moov, minf.payload_start, minf.end)
                         if b.kind in (b"vmhd", b"smhd", b"nmhd", b"sthd")), None)
    if media_header is None:
        raise Mp4Error(f"track {track_id}: no media header box")
    stbl = need(moov, minf, "stbl")
    stsd = need(moov, stbl, "stsd")
    dinf = need(moov, minf, "dinf")
    edit_media_time = 0
    edts = child(moov, trak, b"edts")
    if edts is not None:
        elst = need(moov, edts, "elst")
        version, _, at = full_box(moov, elst)
        (count,) = struct.unpack_from(">I", moov, at)
        fmt, step = (">Qqhh", 20) if version == 1 else (">Iihh", 12)
        entries = [struct.unpack_from(fmt, moov, at + 4 + i * step) for i in range(count)]
        if len(entries) > 1 or any(entry[2] != 1 for entry in entries):
            raise Mp4Error(f"track {track_id}: edit list with {count} entries is not handled")
        if entries:
            edit_media_time = max(0, entries[0][1])

    def box_bytes(box: Box) -> bytes:
        return bytes(moov[box.start:box.end])

    return Track(track_id=track_id, handler=bytes(handler), timescale=timescale,
                 language=language, tkhd=box_bytes(tkhd_box), hdlr=box_bytes(hdlr),
                 media_header=box_bytes(media_header), dinf=box_bytes(dinf),
                 stsd=box_bytes(stsd), edit_media_time=edit_media_time)


def _parse_moov(moov: bytes) -> dict[int, Track]:
    tracks: dict[int, Track] = {}
    defaults: dict[int, tuple[int, int, int, int]] = {}
    for box in iter_boxes(moov, 0, len(moov)):
        if box.kind == b"trak":
            track = _parse_track(moov, box)
            tracks[track.track_id] = track
        elif box.kind == b"mvex":
            for trex in iter_boxes(moov, box.payload_start, box.end):
                if trex.kind == b"trex":
                    _, _, at = full_box(moov, trex)
                    tid, sdi, dur, size, flags = struct.unpack_from(">5I", moov, at)
                    defaults[tid] = (sdi, dur, size, flags)
    for tid, (sdi, dur, size, flags) in defaults.items():
        if tid in tracks:
            tracks[tid] = dataclasses.replace(tracks[tid], default_sdi=sdi, default_duration=dur,
                                              default_size=size, default_flags=flags)
    if not tracks:
        raise Mp4Error("moov has no tracks")
    return tracks


def _be_array(code: str, data: bytes | memoryview) -> array[int]:
    values = array(code)
    values.frombytes(data)
    if sys.byteorder == "little":
        values.byteswap()
    return values


def _parse_traf(moof: bytes, traf: Box, moof_start: int, first: bool, tracks: dict[int, Track],
                next_dts: dict[int, int]) -> list[SampleRun]:
    tfhd = need(moof, traf, "tfhd")
    _, tf_flags, at = full_box(moof, tfhd)
    (track_id,) = struct.unpack_from(">I", moof, at)
    at += 4
    track = tracks.get(track_id)
    if track is None:
        raise Mp4Error(f"fragment for unknown track {track_id}")
    base = moof_start
    if tf_flags & TFHD_BASE_OFFSET:
        (base,) = struct.unpack_from(">Q", moof, at)
        at += 8
    elif not tf_flags & TFHD_BASE_IS_MOOF and not first:
        # then ISO-BMFF puts the base where the previous traf's data ends; ffmpeg never does this
        raise Mp4Error(f"track {track_id}: fragment data base not given")
    sdi, dur, size, flags = (track.default_sdi, track.default_duration, track.default_size,
                             track.default_flags)
    for bit in (TFHD_SDI, TFHD_DURATION, TFHD_SIZE, TFHD_FLAGS):
        if tf_flags & bit:
            (value,) = struct.unpack_from(">I", moof, at)
            at += 4
            if bit == TFHD_SDI:
                sdi = value
            elif bit == TFHD_DURATION:
                dur = value
            elif bit == TFHD_SIZE:
                size = value
            else:
                flags = value
    if sdi != 1:
        raise Mp4Error(f"track {track_id}: sample description {sdi} is not handled")
    dts = next_dts.get(track_id, 0)
    tfdt = child(moof, traf, b"tfdt")
    if tfdt is not None:
        version, _, at = full_box(moof, tfdt)
        dts = struct.unpack_from(">Q" if version == 1 else ">I", moof, at)[0]
    runs = []
    data_end = base
    for trun in iter_boxes(moof, traf.payload_start, traf.end):
        if trun.kind != b"trun":
            continue
        version, tr_flags, at = full_box(moof, trun)
        (count,) = struct.unpack_from(">I", moof, at)
        if count > MAX_RUN_SAMPLES:
            raise Mp4Error(f"trun of track {track_id} claims {count} samples")
        at += 4
        offset = data_end
        if tr_flags & TRUN_DATA_OFFSET:
            (rel,) = struct.unpack_from(">i", moof, at)
            offset = base + rel
            at += 4
        first_flags = None
        if tr_flags & TRUN_FIRST_FLAGS:
            (first_flags,) = struct.unpack_from(">I", moof, at)
            at += 4
        fields = [bit for bit in (TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTS) if tr_flags & bit]
        width = len(fields)
        if at + 4 * width * count > trun.end:
            raise Mp4Error(f"trun of track {track_id} lists {count} samples it has no room for")
        table = _be_array("I", moof[at:at + 4 * width * count]) if width else array("I")
        column = {bit: table[i::width] for i, bit in enumerate(fields)}
        durations = column.get(TRUN_DURATION) or array("I", [dur]) * count
        sizes = column.get(TRUN_SIZE) or array("I", [size]) * count
        sample_flags = column.get(TRUN_FLAGS) or array("I", [flags]) * count
        if first_flags is not None and count:
            sample_flags[0] = first_flags
        cts: array[int] | None = None
        if TRUN_CTS in column:
            cts = array("i", column[TRUN_CTS].tobytes()) if version >= 1 else array(
                "q", column[TRUN_CTS])
        run = SampleRun(track_id, offset, dts, durations, sizes, sample_flags, cts)
        runs.append(run)
        dts += sum(durations)
        data_end = offset + run.byte_size
    next_dts[track_id] = dts
    return runs


def read_fragmented(path: Path) -> FragmentedFile:
    """The tracks and sample runs of one recorder segment. Reads boxes, never media bytes.

    Raises :class:`Mp4Error` for anything malformed, whatever the bytes hold."""
    try:
        return _read_fragmented(path)
    except (struct.error, IndexError, ValueError, OverflowError) as exc:
        raise Mp4Error(f"{path.name}: malformed box: {exc}") from None


def _read_fragmented(path: Path) -> FragmentedFile:
    file_size = path.stat().st_size
    tracks: dict[int, Track] | None = None
    result: FragmentedFile | None = None
    next_dts: dict[int, int] = {}
    with path.open("rb") as fh:
        for kind, start, header, size in _top_level(fh, file_size):
            if size < 0:
                if result is not None:
                    result.truncated = True
                    if kind == b"mdat":
                        _drop_runs_past(result, file_size)
                    elif kind == b"moof":
                        pass  # its mdat is missing: nothing of it was read
                break
            if kind == b"moov":
                if size > MAX_BOX_READ:
                    raise Mp4Error(f"moov of {size} bytes")
                tracks = _parse_moov(_read_exact(fh, start + header, size - header))
                result = FragmentedFile(path, file_size, tracks)
            elif kind == b"moof":
                if result is None or tracks is None:
                    raise Mp4Error("moof before moov: not a recorder segment")
                if size > MAX_BOX_READ:
                    raise Mp4Error(f"moof of {size} bytes")
                moof = _read_exact(fh, start, size)
                trafs = [b for b in iter_boxes(moof, header, size) if b.kind == b"traf"]
                for i, traf in enumerate(trafs):
                    result.runs.extend(_parse_traf(moof, traf, start, i == 0, tracks, next_dts))
            elif result is not None and kind not in SEGMENT_BOXES:
                result.stray_boxes += 1
    if result is None:
        raise Mp4Error(f"{path.name}: no moov box: not an MP4 segment")
    for run in result.runs:
        if run.offset < 0 or run.offset + run.byte_size > file_size:
            _drop_runs_past(result, file_size)
            result.truncated = True
            break
    return result


def _drop_runs_past(result: FragmentedFile, file_size: int) -> None:
    """Keep runs whose bytes are all in the file, and none after the first that is not."""
    kept = []
    for run in result.runs:
        if run.offset < 0 or run.offset + run.byte_size > file_size:
            break
        kept.append(run)
    result.runs = kept


# ----------------------------------------------------------------------------------- writing


def box(kind: bytes, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    if len(payload) + 8 > 0xFFFFFFFF:
        return struct.pack(">I4sQ", 1, kind, len(payload) + 16) + payload
    return struct.pack(">I4s", len(payload) + 8, kind) + payload


def fullbox(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *parts)


def be_bytes(values: array[int]) -> bytes:
    out = array(values.typecode, values)
    if sys.byteorder == "little":
        out.byteswap()
    return out.tobytes()


def ftyp(sample_entries: list[bytes]) -> bytes:
    brands = [b"isom", b"iso2"]
    if any(e in (b"avc1", b"avc3") for e in sample_entries):
        brands.append(b"avc1")
    brands.append(b"mp41")
    return box(b"ftyp", b"isom", struct.pack(">I", 0x200), *brands)


def run_lengths(values: array[int]) -> list[tuple[int, int]]:
    """[(count, value)] of consecutive equal values."""
    out: list[tuple[int, int]] = []
    for value in values:
        if out and out[-1][1] == value:
            out[-1] = (out[-1][0] + 1, value)
        else:
            out.append((1, value))
    return out


@dataclass
class TrackTable:
    """The samples one output track holds, in decode order, and where they sit in the mdat."""

    source: Track
    durations: array[int] = field(default_factory=lambda: array("q"))
    sizes: array[int] = field(default_factory=lambda: array("I"))
    sync: array[int] = field(default_factory=lambda: array("I"))
    """1-based numbers of sync samples."""
    cts: array[int] = field(default_factory=lambda: array("q"))
    chunk_offsets: array[int] = field(default_factory=lambda: array("Q"))
    """Offsets relative to the start of the mdat payload until :func:`progressive_moov`."""
    chunk_samples: array[int] = field(default_factory=lambda: array("I"))
    media_time: int = 0
    """Media time presented at movie time ``empty_us`` (edit list; B-frame composition shift)."""
    empty_ticks: int = 0
    """Time before this track's first sample, in its own timescale (an empty edit)."""

    @property
    def duration(self) -> int:
        return int(sum(self.durations))


def _stbl(t: TrackTable, mdat_payload_at: int) -> bytes:
    stts = run_lengths(t.durations)
    parts = [t.source.stsd,
             fullbox(b"stts", 0, 0, struct.pack(">I", len(stts)),
                     b"".join(struct.pack(">II", c, v) for c, v in stts))]
    if any(t.cts):
        ctts = run_lengths(t.cts)
        version = 1 if min(t.cts) < 0 else 0
        parts.append(fullbox(b"ctts", version, 0, struct.pack(">I", len(ctts)),
                             b"".join(struct.pack(">Ii" if version else ">II", c, v)
                                      for c, v in ctts)))
    if len(t.sync) != len(t.sizes):
        parts.append(fullbox(b"stss", 0, 0, struct.pack(">I", len(t.sync)), be_bytes(t.sync)))
    stsc = [(i + 1, n) for i, n in enumerate(t.chunk_samples)
            if i == 0 or t.chunk_samples[i - 1] != n]
    parts.append(fullbox(b"stsc", 0, 0, struct.pack(">I", len(stsc)),
                         b"".join(struct.pack(">III", first, n, 1) for first, n in stsc)))
    parts.append(fullbox(b"stsz", 0, 0, struct.pack(">II", 0, len(t.sizes)), be_bytes(t.sizes)))
    offsets = array("Q", (mdat_payload_at + o for o in t.chunk_offsets))
    if not offsets or offsets[-1] <= 0xFFFFFFFF:
        parts.append(fullbox(b"stco", 0, 0, struct.pack(">I", len(offsets)),
                             be_bytes(array("I", offsets))))
    else:
        parts.append(fullbox(b"co64", 0, 0, struct.pack(">I", len(offsets)), be_bytes(offsets)))
    return box(b"stbl", *parts)


def _ticks(value: int, from_scale: int, to_scale: int) -> int:
    return (value * to_scale + from_scale // 2) // from_scale


def _trak(t: TrackTable, track_id: int, mdat_payload_at: int) -> tuple[bytes, int]:
    src = t.source
    media_duration = t.duration
    presented = media_duration - t.media_time
    movie_empty = _ticks(t.empty_ticks, src.timescale, MOVIE_TIMESCALE)
    movie_presented = _ticks(presented, src.timescale, MOVIE_TIMESCALE)
    track_duration = movie_empty + movie_presented
    tkhd = _tkhd(src.tkhd, track_id, track_duration)
    edits = []
    if movie_empty > 0:
        edits.append(struct.pack(">Qqhh", movie_empty, -1, 1, 0))
    if movie_empty > 0 or t.media_time != 0:
        edits.append(struct.pack(">Qqhh", movie_presented, t.media_time, 1, 0))
    trak_parts = [tkhd]
    if edits:
        trak_parts.append(box(b"edts", fullbox(b"elst", 1, 0, struct.pack(">I", len(edits)),
                                               *edits)))
    mdhd = fullbox(b"mdhd", 1, 0, struct.pack(">QQIQHH", 0, 0, src.timescale, media_duration,
                                              src.language, 0))
    minf = box(b"minf", src.media_header, src.dinf, _stbl(t, mdat_payload_at))
    trak_parts.append(box(b"mdia", mdhd, src.hdlr, minf))
    return box(b"trak", *trak_parts), track_duration


def _tkhd(source: bytes, track_id: int, duration: int) -> bytes:
    """A version-1 ``tkhd`` keeping the source's flags, layer, volume, matrix and size."""
    version = source[8]
    flags = int.from_bytes(source[9:12], "big") | 0x3  # enabled, in movie
    tail = source[12 + (32 if version == 1 else 20):]  # reserved[2] layer group volume … height
    return fullbox(b"tkhd", 1, flags, struct.pack(">QQIIQ", 0, 0, track_id, 0, duration), tail)


def progressive_moov(tables: list[TrackTable], mdat_payload_at: int) -> bytes:
    """The ``moov`` for ``tables`` whose chunk offsets are relative to ``mdat_payload_at``."""
    traks, durations = [], []
    for i, t in enumerate(tables):
        trak, duration = _trak(t, i + 1, mdat_payload_at)
        traks.append(trak)
        durations.append(duration)
    mvhd = fullbox(b"mvhd", 1, 0, struct.pack(">QQIQ", 0, 0, MOVIE_TIMESCALE, max(durations)),
                   struct.pack(">IH10x", 0x00010000, 0x0100),
                   struct.pack(">9I", *UNITY_MATRIX), bytes(24),
                   struct.pack(">I", len(tables) + 1))
    return box(b"moov", mvhd, *traks)


def mdat_header(payload_size: int) -> bytes:
    if payload_size + 8 <= 0xFFFFFFFF:
        return struct.pack(">I4s", payload_size + 8, b"mdat")
    return struct.pack(">I4sQ", 1, b"mdat", payload_size + 16)
