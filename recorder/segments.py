"""Segment files: where they live on a volume, what is in them, and making them durable.

This module owns the on-disk layout
``<volume>/<camera uuid>/<YYYY-MM-DD UTC>/<stream>/<run uuid>-<seq>.mp4``: the camera's and the
run's identities are unique forever (``Camera.uuid``, ``Run.uuid``), so no new recording can land
on an old file, whatever ids a database hands out, and a file proves which camera and run it
belongs to; the sequence number keeps names apart however fast the input runs. It also owns probing
a file with PyAV (duration, codecs, size, first/last timestamps, playability), fsync of a file and
its folder, the ``lost+found`` folder where unplayable files are moved aside, the ``quarantine``
folder where files no row can claim are moved (never served), and whether a volume has room for
another segment (``min_free_bytes``). Folders are made below a volume's root, never the root
itself (:func:`make_run_dir`). No database here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from vms.clock import us_to_datetime
from vms.config import Settings, Volume

log = logging.getLogger(__name__)

SEGMENT_RE = re.compile(r"^(?P<run>[0-9a-f]{32})-(?P<seq>\d{6})\.mp4$")
UUID_RE = re.compile(r"^[0-9a-f]{32}$")
LOST_AND_FOUND = "lost+found"
QUARANTINE = "quarantine"
SET_ASIDE = (LOST_AND_FOUND, QUARANTINE)
"""Folders at a volume's root that hold files set aside: never indexed, never served."""


@dataclass(frozen=True)
class SegmentPath:
    """A segment file's place, parsed from its path relative to the volume."""

    camera_uuid: str
    date: str
    stream: str
    run_uuid: str
    seq: int


def run_dir(volume: Volume, camera_uuid: str, stream: str, at_us: int) -> Path:
    """The folder for files of camera ``camera_uuid``/``stream`` whose run started at ``at_us``."""
    if not UUID_RE.match(camera_uuid):
        raise ValueError(f"camera uuid {camera_uuid!r}: expected 32 hex digits")
    day = us_to_datetime(at_us).strftime("%Y-%m-%d")
    return volume.path / camera_uuid / day / stream


def segment_pattern(folder: Path, run_uuid: str) -> Path:
    if not UUID_RE.match(run_uuid):
        raise ValueError(f"run uuid {run_uuid!r}: expected 32 hex digits")
    return folder / f"{run_uuid}-%06d.mp4"


def parse_segment_path(rel: str) -> SegmentPath | None:
    """Parse ``<camera uuid>/<date>/<stream>/<run uuid>-<seq>.mp4``; None for anything else
    (files named in the layout before uuids, ``<camera id>/…/r<run id>-<seq>.mp4``, included:
    nothing in such a name proves which camera it belongs to)."""
    parts = Path(rel).parts
    if len(parts) != 4 or not UUID_RE.match(parts[0]):
        return None
    match = SEGMENT_RE.match(parts[3])
    if match is None or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", parts[1]):
        return None
    return SegmentPath(parts[0], parts[1], parts[2], match["run"], int(match["seq"]))


def volume_by_name(settings: Settings, name: str) -> Volume | None:
    return next((v for v in settings.volumes if v.name == name), None)


def make_run_dir(volume: Volume, folder: Path) -> None:
    """Create ``folder`` (inside ``volume``) and the folders between, never the volume's root:
    FileNotFoundError when the root is gone (an unmounted disk must not become a folder on the
    parent file system). Blocking."""
    rel = folder.relative_to(volume.path)
    if not volume.path.is_dir():
        raise FileNotFoundError(2, "the volume's folder does not exist", str(volume.path))
    current = volume.path
    for part in rel.parts:
        current = current / part
        with contextlib.suppress(FileExistsError):
            current.mkdir()


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def space_problem(volume: Volume, free: int, total: int, margin_bytes: int = 0) -> str | None:
    """Why no segment may be started on ``volume`` with ``free`` of ``total`` bytes free (a reason
    naming it), or None.

    Refused when the free space is below the volume's floor (``min_free_bytes``,
    ``min_free_percent`` of ``total``) + ``margin_bytes``, or nil. Retention's space watcher
    (recorder/retention_service.py) deletes the oldest unprotected footage long before that.
    ``free`` and ``total`` come from the volume's health probe (:mod:`recorder.volumes`), read off
    the event loop.
    """
    floor = volume.floor_bytes(total)
    need = floor + margin_bytes
    if free >= max(need, 1):
        return None
    where = f"volume {volume.name!r} ({volume.path}) is full: {_size(free)} free"
    if margin_bytes:
        return f"{where}; recording resumes when {_size(need)} is free"
    if floor:
        return f"{where}, below its floor ({_size(floor)}: min_free_bytes, min_free_percent)"
    return where


@dataclass(frozen=True)
class Probe:
    """What PyAV saw in a segment file."""

    playable: bool
    """At least one video packet with a timestamp could be read."""
    duration_us: int
    """Video span: last packet's pts + duration - first pts."""
    first_pts_us: int
    last_pts_us: int
    video_packets: int
    size_bytes: int
    video_codec: str = ""
    audio_codec: str = ""
    width: int = 0
    height: int = 0
    error: str = ""


def probe_segment(path: Path, *, quick: bool = False) -> Probe:
    """Read every packet header of ``path`` (no decoding); tolerant of a truncated last fragment.

    ``quick``: stop at the first video packet (codecs, size, playable start) — for a segment ffmpeg
    closed and listed, whose span the list already gives; ``duration_us`` is then 0. Reading every
    packet of a 60 s 1080p file costs ~60 ms of CPU, which was most of the supervisor's overhead.
    """
    import av

    size = path.stat().st_size if path.exists() else 0
    if size == 0:
        return Probe(False, 0, 0, 0, 0, size, error="empty file")
    first: int | None = None
    last_end: int | None = None
    last_pts = 0
    packets = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return Probe(False, 0, 0, 0, 0, size, error="no video stream")
            vstream = container.streams.video[0]
            vcodec = vstream.codec_context.name or ""
            width, height = vstream.codec_context.width, vstream.codec_context.height
            acodec = container.streams.audio[0].codec_context.name if container.streams.audio else ""
            try:
                for packet in container.demux(vstream):
                    if packet.pts is None or packet.time_base is None or packet.size == 0:
                        continue
                    tb = packet.time_base
                    pts_us = int(packet.pts * tb * 1_000_000)
                    dur_us = int((packet.duration or 0) * tb * 1_000_000)
                    first = pts_us if first is None else min(first, pts_us)
                    last_pts = max(last_pts, pts_us)
                    end = pts_us + dur_us
                    last_end = end if last_end is None else max(last_end, end)
                    packets += 1
                    if quick:
                        break
            except av.error.FFmpegError as exc:  # truncated tail: keep what was read
                if packets == 0:
                    return Probe(False, 0, 0, 0, 0, size, vcodec, acodec, width, height, str(exc))
    except (av.error.FFmpegError, OSError) as exc:
        return Probe(False, 0, 0, 0, 0, size, error=str(exc))
    if first is None or last_end is None:
        return Probe(False, 0, 0, 0, 0, size, vcodec, acodec, width, height, "no video packets")
    return Probe(True, max(0, last_end - first), first, last_pts, packets, size, vcodec, acodec,
                 width, height)


def fsync_path(path: Path) -> None:
    """fsync ``path`` and the folder holding it (so the directory entry is durable too)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_to_lost_and_found(volume: Volume, rel: str) -> Path:
    """Move ``rel`` to ``<volume>/lost+found/<rel>`` (never overwriting); the new path."""
    return _set_aside(volume, rel, LOST_AND_FOUND)


def move_to_quarantine(volume: Volume, rel: str) -> Path:
    """Move ``rel`` to ``<volume>/quarantine/<rel>`` (never overwriting); the new path."""
    return _set_aside(volume, rel, QUARANTINE)


def _set_aside(volume: Volume, rel: str, folder: str) -> Path:
    src = volume.path / rel
    dest = volume.path / folder / rel
    make_run_dir(volume, dest.parent)
    n = 1
    while dest.exists():
        dest = dest.with_name(f"{Path(rel).name}.{n}")
        n += 1
    os.replace(src, dest)
    with contextlib.suppress(OSError):
        fsync_dir(dest.parent)
        fsync_dir(src.parent)
    return dest


def discard_unplayable(name: str, volume: Volume, path: Path, packets: int, error: str) -> None:
    """Set aside a segment file that is not playable: deleted when it holds no video packet and
    less than 64 KiB, else moved to lost+found (left in place, logged, when even that fails).
    ``name`` names the stream in the log. Blocking."""
    rel = str(path.relative_to(volume.path))
    if not path.exists():
        return
    if packets == 0 and path.stat().st_size < 64 * 1024:
        log.debug("%s: removing empty segment file %s (%s)", name, rel, error)
        path.unlink(missing_ok=True)
        return
    try:
        dest = move_to_lost_and_found(volume, rel)
    except OSError as exc:  # e.g. no room for the lost+found folder on a full volume
        log.error("%s: segment %s is not playable (%s) and cannot be moved to lost+found "
                  "(%s); left in place for `vms check --repair`", name, rel, error, exc)
        return
    log.warning("%s: segment %s is not playable (%s); moved to %s", name, rel, error, dest)


def run_files(folder: Path, run_uuid: str) -> list[Path]:
    """The segment files of run ``run_uuid`` in ``folder``, sorted. Blocking."""
    if not folder.is_dir():
        return []
    prefix = f"{run_uuid}-"
    return sorted(p for p in folder.iterdir()
                  if p.name.startswith(prefix) and SEGMENT_RE.match(p.name))


def iter_segment_files(volume: Volume, under: str = "") -> list[str]:
    """Every ``*.mp4`` under ``volume`` (paths relative to it; ``under``: only in that folder of
    it), lost+found and quarantine excluded, sorted."""
    root = volume.path
    if not (root / under).is_dir():
        return []
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root / under):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d not in SET_ASIDE]
        for name in filenames:
            if name.endswith(".mp4"):
                found.append(str((Path(dirpath) / name).relative_to(root)))
    return sorted(found)


def iter_quarantined(volume: Volume) -> list[str]:
    """Every file in ``<volume>/quarantine`` (paths relative to the volume), sorted."""
    root = volume.path / QUARANTINE
    if not root.is_dir():
        return []
    return sorted(str((Path(d) / n).relative_to(volume.path))
                  for d, _, names in os.walk(root) for n in names)
