"""Export clips without a muxer: recorded samples chosen by wall time, copied into one MP4.

An export is the recorder's own samples laid end to end, so ffmpeg's demuxer and muxer have
nothing to decide. :func:`plan_clip` reads each segment's sample tables (recorder/mp4.py), picks
the samples of the range — from the video keyframe at or before the start, audio from the same
instant, up to the end — and places each at its wall time: decode time = (segment start + time in
the segment) − the clip's start. A gap between segments therefore keeps its length (the sample
before it lasts until the next one, as with ffmpeg's concat). :func:`write_clip` writes ``ftyp``,
the ``moov`` (so the file is faststart by construction) and one ``mdat``, copying the sample
bytes; a second thread hashes what is written, so the SHA-256 the manifest needs costs no second
read and runs on the other core. docs/design/export.md has the measurements.

Anything :mod:`recorder.mp4` cannot read — a segment from another muxer, a camera whose codec
settings changed inside the range — raises :class:`~recorder.mp4.Mp4Error`, and the export falls
back to ``ffmpeg -f concat -c copy``.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from recorder.mp4 import (
    NON_SYNC,
    FragmentedFile,
    Mp4Error,
    SampleRun,
    Track,
    TrackTable,
    ftyp,
    mdat_header,
    progressive_moov,
    read_fragmented,
)
from vms.coverage import VideoTimes, ticks_to_us

COPY_PIECE = 8 * 1024 * 1024
"""Largest single read while copying (bounds memory with the hash queue's depth)."""
HASH_QUEUE_DEPTH = 8


class ClipCancelled(Exception):
    """The caller's cancel event was set while the clip was being written."""


@dataclass(frozen=True)
class Source:
    path: Path
    start_us: int
    """Wall time (UTC µs) of media time 0 in the file: the segment's start in the index."""


@dataclass
class Clip:
    tables: list[TrackTable]
    spans: list[tuple[int, int, int]]
    """(source index, file offset, length): the mdat payload, in order."""
    paths: list[Path]
    actual_from_us: int
    """Wall time of the first video frame (a keyframe at or before the requested start)."""
    actual_to_us: int
    """Wall time where the last video frame ends."""
    payload_size: int
    video: VideoTimes
    """The video frames written, in media time (µs after ``actual_from_us``): what the clip
    covers (recorder/export_coverage.py turns it into the manifest's covered ranges and gaps)."""
    truncated: list[Path] = field(default_factory=list)
    """Sources that end inside a fragment (a killed recording): their whole fragments are used."""


@dataclass
class _Chunk:
    source: int
    offset: int
    size: int
    samples: int
    table: int


def _wall_us(src: Source, track: Track, ticks: int) -> int:
    return src.start_us + _us(ticks - track.edit_media_time, track.timescale)


def _us(ticks: int, timescale: int) -> int:
    return (ticks * 1_000_000 + timescale // 2) // timescale


def _first_keyframe(src: Source, f: FragmentedFile, video: Track, from_us: int
                    ) -> tuple[int, int]:
    """(run index, sample index) of the last keyframe presented at or before ``from_us``, or the
    first keyframe when there is none that early."""
    best: tuple[int, int] | None = None
    for r, run in enumerate(f.runs):
        if run.track_id != video.track_id:
            continue
        dts = run.dts
        for k in range(len(run)):
            if not run.flags[k] & NON_SYNC:
                cts = run.cts[k] if run.cts is not None else 0
                if best is not None and _wall_us(src, video, dts + cts) > from_us:
                    return best
                best = (r, k)
            dts += run.durations[k]
    if best is None:
        raise Mp4Error(f"{src.path.name}: no video keyframe")
    return best


def _tracks_of(f: FragmentedFile, ref_video: Track, ref_audio: Track | None
               ) -> tuple[Track, Track | None]:
    video = f.track(b"vide")
    if video is None or not video.same_media(ref_video):
        raise Mp4Error(f"{f.path.name}: video differs from the first segment's "
                       "(camera settings changed)")
    audio = f.track(b"soun")
    if ref_audio is None:
        return video, None
    if audio is None or not audio.same_media(ref_audio):
        raise Mp4Error(f"{f.path.name}: audio differs from the first segment's")
    return video, audio


def plan_clip(sources: list[Source], from_us: int, to_us: int, *, audio: bool = True) -> Clip:
    """Choose the samples of [from_us, to_us) from ``sources`` (in time order)."""
    if not sources:
        raise Mp4Error("no segments")
    files = [read_fragmented(s.path) for s in sources]
    ref_video = files[0].track(b"vide")
    if ref_video is None:
        raise Mp4Error(f"{sources[0].path.name}: no video track")
    ref_audio = files[0].track(b"soun") if audio else None
    tracks = [_tracks_of(f, ref_video, ref_audio) for f in files]
    start_run, start_sample = _first_keyframe(sources[0], files[0], tracks[0][0], from_us)
    first_run = files[0].runs[start_run]
    first_cts = first_run.cts[start_sample] if first_run.cts is not None else 0
    key_dts = first_run.dts + sum(first_run.durations[:start_sample])
    actual_from = _wall_us(sources[0], tracks[0][0], key_dts + first_cts)

    states = [_TrackState(TrackTable(source=ref_video), 0)]
    if ref_audio is not None:
        states.append(_TrackState(TrackTable(source=ref_audio), 1))
    chunks: list[_Chunk] = []
    for i, (src, f) in enumerate(zip(sources, files, strict=True)):
        src = _after_previous(src, f, tracks[i][0], states[0], actual_from)
        for state in states:
            track = tracks[i][state.kind]
            assert track is not None  # _tracks_of refused a file without the reference's tracks
            state.enter_file(src, track, actual_from)
        for r, run in enumerate(f.runs):
            owner = next((s for s in states if s.track.track_id == run.track_id), None)
            if owner is None or (i == 0 and owner.kind == 0 and r < start_run):
                continue
            owner.take(run, skip=start_sample if (i == 0 and r == start_run) else 0,
                       to_us=to_us, chunks=chunks, source=i)
    if not states[0].decode:
        raise Mp4Error("no video frames in the range")
    if len(states) > 1 and not states[1].decode:  # no audio in the range: leave the track out
        states.pop()
    tables = [s.finish() for s in states]
    end_ticks = states[0].decode[0] + tables[0].duration
    # the end: the requested one while frames run past it, else where the last frame ends
    actual_to = min(to_us, actual_from + _us(end_ticks, ref_video.timescale))
    chunks.sort(key=lambda c: (c.source, c.offset))
    spans: list[tuple[int, int, int]] = []
    payload = 0
    for c in chunks:
        tables[c.table].chunk_offsets.append(payload)
        tables[c.table].chunk_samples.append(c.samples)
        payload += c.size
        if spans and spans[-1][0] == c.source and spans[-1][1] + spans[-1][2] == c.offset:
            spans[-1] = (c.source, spans[-1][1], spans[-1][2] + c.size)
        else:
            spans.append((c.source, c.offset, c.size))
    # chunks were appended per table in decode order, and sorting by file position keeps that
    return Clip(tables=tables, spans=spans, paths=[s.path for s in sources],
                actual_from_us=actual_from, actual_to_us=actual_to, payload_size=payload,
                video=_video_times(states[0].decode, tables[0]),
                truncated=[f.path for f in files if f.truncated])


def _video_times(decode: array[int], table: TrackTable) -> VideoTimes:
    """The frames' presentation times as the written file presents them (decode time +
    composition offset; the edit list maps the first keyframe to 0), in µs, as a reader such as
    PyAV converts them."""
    time_base = Fraction(1, table.source.timescale)
    starts, end = [], 0
    for d, cts, duration in zip(decode, table.cts, table.durations, strict=True):
        start = ticks_to_us(d + cts, time_base)
        starts.append(start)
        end = max(end, start + ticks_to_us(duration, time_base))
    starts.sort()
    return VideoTimes(starts, max(end, starts[-1]))


def _after_previous(src: Source, f: FragmentedFile, video: Track, state: _TrackState,
                    origin_us: int) -> Source:
    """``src``, moved later if the index starts it before the previous file's last frame ends
    (the recorder chains files exactly; an index written otherwise must not reorder frames).
    The whole file moves, so its audio stays in step with its video."""
    if not state.decode:
        return src
    first_dts = next((run.dts for run in f.runs if run.track_id == video.track_id), None)
    if first_dts is None:
        return src
    previous_end = origin_us + _us(state.decode[-1] + state.last_duration, video.timescale)
    overlap = previous_end - _wall_us(src, video, first_dts)
    return Source(src.path, src.start_us + overlap) if overlap > 0 else src


@dataclass
class _TrackState:
    """One output track while samples are chosen: decode times relative to the clip's start."""

    table: TrackTable
    kind: int
    """0 video, 1 audio (also the table's index in the clip)."""
    decode: array[int] = field(default_factory=lambda: array("q"))
    last_duration: int = 0
    track: Track = field(init=False)
    source: Source = field(init=False)
    offset: int = 0
    """Ticks to add to the current file's decode times."""

    def __post_init__(self) -> None:
        self.track = self.table.source

    def enter_file(self, src: Source, track: Track, origin_us: int) -> None:
        scale = track.timescale
        self.track, self.source = track, src
        # exact within a file, one rounding per file
        self.offset = (((src.start_us - origin_us) * scale + 500_000) // 1_000_000
                       - track.edit_media_time)

    def take(self, run: SampleRun, skip: int, to_us: int, chunks: list[_Chunk],
             source: int) -> None:
        """Append the samples of ``run`` that fall in the range."""
        table, decode = self.table, self.decode
        dts = run.dts + sum(run.durations[:skip])
        at = run.offset + sum(run.sizes[:skip])
        chunk: _Chunk | None = None
        for k in range(skip, len(run)):
            size, duration = run.sizes[k], run.durations[k]
            cts = run.cts[k] if run.cts is not None else 0
            wall_us = _wall_us(self.source, self.track, dts)
            if self.kind == 0:
                include = not decode or wall_us < to_us
            else:  # audio from the first frame's instant
                include = self.offset + dts + cts >= 0 and wall_us < to_us
            d = self.offset + dts
            if include and decode and d <= decode[-1]:
                # decode order must rise: audio the previous file already covers is left out
                # (ffmpeg's concat would squeeze it); video cannot lose a frame, so it is nudged
                if self.kind != 0:
                    include = False
                d = decode[-1] + 1
            if include:
                decode.append(d)
                table.sizes.append(size)
                table.cts.append(cts)
                if not run.flags[k] & NON_SYNC:
                    table.sync.append(len(table.sizes))
                if chunk is None or chunk.offset + chunk.size != at:
                    chunk = _Chunk(source, at, 0, 0, self.kind)
                    chunks.append(chunk)
                chunk.size += size
                chunk.samples += 1
                self.last_duration = duration
            else:
                chunk = None
            dts += duration
            at += size

    def finish(self) -> TrackTable:
        d, table = self.decode, self.table
        table.durations = array("q", (d[k + 1] - d[k] for k in range(len(d) - 1)))
        table.durations.append(max(1, self.last_duration))
        if d[0] <= 0:
            table.media_time = -d[0]
        else:
            table.empty_ticks = d[0]
        return table


def _head(clip: Clip) -> bytes:
    """ftyp + moov + mdat header; the moov's size decides the offsets it holds, so iterate."""
    head_ftyp = ftyp([t.source.sample_entry for t in clip.tables])
    mdat = mdat_header(clip.payload_size)
    guess = len(head_ftyp) + len(mdat)
    for _ in range(4):
        moov = progressive_moov(clip.tables, guess)
        at = len(head_ftyp) + len(moov) + len(mdat)
        if at == guess:
            return head_ftyp + moov + mdat
        guess = at
    raise Mp4Error("moov size did not settle")  # pragma: no cover - stco→co64 switches once


class HashingWriter:
    """Passes every write to ``write`` and hashes it (SHA-256) on a thread of its own, so the
    hash costs no second read and runs beside the copy. Also a file object for ``zipfile``
    (``write``/``flush``; no ``tell``, so a ZIP is streamed with data descriptors)."""

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self._write = write
        self.size = 0
        self._digest = hashlib.sha256()
        self._pending: queue.Queue[bytes | None] = queue.Queue(maxsize=HASH_QUEUE_DEPTH)
        self._thread = threading.Thread(target=_hash_worker, args=(self._pending, self._digest),
                                        name="sha256", daemon=True)
        self._thread.start()
        self._hex: str | None = None

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        piece = data if isinstance(data, bytes) else bytes(data)  # hashed later: never a view
        self._write(piece)
        self._pending.put(piece)
        self.size += len(piece)
        return len(piece)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass  # the caller owns what ``write`` writes to; finish() ends the hashing

    def finish(self) -> str:
        """Stop the thread (idempotent); the hex digest of everything written."""
        if self._hex is None:
            self._pending.put(None)
            self._thread.join()
            self._hex = self._digest.hexdigest()
        return self._hex


def write_clip(clip: Clip, out: Path, *, progress: Callable[[int], None] | None = None,
               cancel: threading.Event | None = None,
               max_bytes_per_s: int = 0) -> tuple[str, int]:
    """Write ``clip`` to the file ``out``; returns (SHA-256 hex of the file, its size)."""
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        return write_clip_to(clip, lambda data: write_all(fd, data), progress=progress,
                             cancel=cancel, max_bytes_per_s=max_bytes_per_s)
    finally:
        os.close(fd)


def write_clip_to(clip: Clip, write: Callable[[bytes], object], *,
                  progress: Callable[[int], None] | None = None,
                  cancel: threading.Event | None = None,
                  max_bytes_per_s: int = 0) -> tuple[str, int]:
    """Write ``clip`` through ``write`` (a file, a ZIP member…); returns (SHA-256 hex, size).

    ``max_bytes_per_s`` (0: no cap) paces the copy so that an export leaves disk bandwidth to
    the recorders; ``cancel`` is checked between pieces and while waiting.
    """
    head = _head(clip)
    cancel = cancel or threading.Event()
    piece_size = COPY_PIECE if not max_bytes_per_s else max(4096, min(COPY_PIECE,
                                                                      max_bytes_per_s // 4))
    started = time.monotonic()
    sink = HashingWriter(write)
    fds: dict[int, int] = {}
    try:
        sink.write(head)
        for source, offset, size in clip.spans:
            if cancel.is_set():
                raise ClipCancelled
            if source not in fds:
                for old in fds.values():
                    os.close(old)
                fds = {source: os.open(clip.paths[source], os.O_RDONLY)}
            done = 0
            while done < size:
                if max_bytes_per_s:
                    ahead = (sink.size - len(head)) / max_bytes_per_s - (time.monotonic() - started)
                    if ahead > 0 and cancel.wait(ahead):
                        raise ClipCancelled
                piece = os.pread(fds[source], min(piece_size, size - done), offset + done)
                if not piece:
                    raise Mp4Error(f"{clip.paths[source]} ended before its samples did "
                                   "(file changed during the export?)")
                sink.write(piece)
                done += len(piece)
            if progress is not None:
                progress(sink.size)
    finally:
        digest = sink.finish()
        for fd in fds.values():
            os.close(fd)
    if sink.size != len(head) + clip.payload_size:  # pragma: no cover - guarded above
        raise Mp4Error(f"wrote {sink.size} bytes, expected {len(head) + clip.payload_size}")
    return digest, sink.size


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _hash_worker(pending: queue.Queue[bytes | None], digest: hashlib._Hash) -> None:
    while (data := pending.get()) is not None:
        digest.update(data)
