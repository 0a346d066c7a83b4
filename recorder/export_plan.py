"""Export planning: which recorded segments, which gaps, where the clip starts and ends, and
whether it fits on the disk — everything decided before a byte is copied.

:func:`load_plan` reads the index (no file access); :func:`prepare_plan` reads the segments' boxes
and returns the :class:`~recorder.clip.Clip` to copy directly, or fills the ffmpeg concat plan
(:func:`finish_plan`, keyframe found with PyAV; files PyAV cannot open are left out, since one
would end ffmpeg's whole input) when the segments cannot be copied directly;
:func:`space_problem` keeps exports out of the recordings' disk reserve. recorder/export.py runs
the job, recorder/export_coverage.py says what the written clip covers; docs/design/export.md
has the decisions.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from recorder.clip import Clip, Source, plan_clip
from recorder.mp4 import Mp4Error
from vms.clock import datetime_to_us, format_iso, zone
from vms.config import Settings
from vms.db import models as m

log = logging.getLogger(__name__)

GAP_TOLERANCE_US = 250_000
"""Consecutive segments of one run closer than this are contiguous (the recorder chains them
exactly). Between runs every hole, however short, is a gap: the camera was not being recorded."""
SPACE_MARGIN_BYTES = 64 * 1024 * 1024
"""Kept free beyond the recordings' reserve when an export's size is checked against the disk."""


class ExportError(Exception):
    """An export cannot be made; the message is for the person who asked."""


def parse_local(text: str, tz_name: str) -> int:
    """A wall-clock time typed in the site's zone (``YYYY-MM-DDTHH:MM[:SS]``) → UTC µs.

    DST: an ambiguous time (the repeated autumn hour) means its first occurrence; a time that does
    not exist (the skipped spring hour) is refused. Text with an explicit offset is taken as is.
    """
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ExportError(f"{text!r} is not a local time (expected YYYY-MM-DDTHH:MM)") from None
    if parsed.tzinfo is not None:
        return datetime_to_us(parsed)
    tz = zone(tz_name)
    local = parsed.replace(tzinfo=tz, fold=0)
    instant = datetime_to_us(local)
    back = format_iso(instant, tz_name)[:19]
    if back != parsed.replace(microsecond=0).isoformat()[:19]:
        raise ExportError(f"{text} does not exist in {tz_name} (clocks were moved forward)")
    return instant


# ----------------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Gap:
    start_us: int
    end_us: int
    reason: str


@dataclass(frozen=True)
class PlannedFile:
    path: Path
    start_us: int
    """Index start of the segment."""
    inpoint_us: int | None = None
    """Offset into the file where the export starts (a keyframe), first file only."""
    outpoint_us: int | None = None
    """Offset into the file where the export ends (exclusive), last file only."""
    duration_us: int | None = None
    """Media time until the next file starts (keeps wall time across gaps)."""


@dataclass
class CameraPlan:
    camera_id: int
    camera_name: str
    site_id: int
    site_name: str
    timezone: str
    segments: list[m.Segment]
    gaps: list[Gap]
    video_codec: str
    audio_codec: str
    width: int
    height: int
    requested_from_us: int = 0
    requested_to_us: int = 0
    files: list[PlannedFile] = field(default_factory=list)
    actual_from_us: int = 0
    actual_to_us: int = 0
    covered: list[tuple[int, int]] = field(default_factory=list)
    """Wall ranges the written clip holds video for (recorder/export_coverage.py)."""
    unreadable_ids: set[int] = field(default_factory=set)
    """Segments whose files could not be opened; left out of ffmpeg's concat plan."""

    @property
    def expected_us(self) -> int:
        return max(1, self.actual_to_us - self.actual_from_us)


def _gap_reason(prev: m.Segment, nxt: m.Segment, run_reasons: dict[int, str]) -> str:
    if prev.run_id != nxt.run_id:
        reason = run_reasons.get(prev.run_id, "")
        return f"recording stopped: {reason}" if reason else "recording stopped"
    return "segment missing from the index"


def load_plan(settings: Settings, camera_id: int, from_us: int, to_us: int) -> CameraPlan:
    """Read the index for one camera (call through ``Gateway.read``). No file access here."""
    camera = m.Camera.select(m.Camera, m.Site).join(m.Site).where(m.Camera.id == camera_id).first()
    if camera is None:
        raise ExportError(f"camera {camera_id} no longer exists")
    segments = list(
        m.Segment.select()
        .where((m.Segment.camera == camera_id) & (m.Segment.stream == "main")
               & (m.Segment.end_us > from_us) & (m.Segment.start_us < to_us)
               & (m.Segment.state.in_(["ok", "partial"])))
        .order_by(m.Segment.start_us))
    volumes = {v.name: v.path for v in settings.volumes}
    name = camera.name
    if not segments:
        raise ExportError(f"camera {name!r}: nothing recorded between {format_iso(from_us)} "
                          f"and {format_iso(to_us)}")
    runs = {s.run_id for s in segments}
    reasons = {r.id: r.end_reason for r in m.Run.select().where(m.Run.id.in_(list(runs)))}
    gaps: list[Gap] = []
    if segments[0].start_us > from_us:
        gaps.append(Gap(from_us, segments[0].start_us, "not recorded"))
    kept: list[m.Segment] = []
    for seg in segments:
        if kept and seg.start_us < kept[-1].end_us - GAP_TOLERANCE_US:
            log.warning("camera %r: segment %s overlaps the previous one; skipped", name, seg.id)
            continue
        tolerance = GAP_TOLERANCE_US if kept and seg.run_id == kept[-1].run_id else 0
        if kept and seg.start_us - kept[-1].end_us > tolerance:
            gaps.append(Gap(kept[-1].end_us, seg.start_us, _gap_reason(kept[-1], seg, reasons)))
        kept.append(seg)
    if kept[-1].end_us < to_us:
        gaps.append(Gap(kept[-1].end_us, to_us, "not recorded"))
    for seg in kept:
        if seg.volume not in volumes and settings.clustered:
            seg.abs_path = None  # type: ignore[attr-defined]  # another node's: fetched first
            continue
        if seg.volume not in volumes:
            raise ExportError(f"camera {name!r}: storage volume {seg.volume!r} of segment "
                              f"{seg.path} is not configured")
        seg.abs_path = volumes[seg.volume] / seg.path  # type: ignore[attr-defined]
    first = kept[0]
    return CameraPlan(camera_id=camera.id, camera_name=name, site_id=camera.site.id,
                      site_name=camera.site.name, timezone=camera.site.timezone, segments=kept,
                      gaps=gaps, video_codec=first.video_codec, audio_codec=first.audio_codec,
                      width=first.width, height=first.height, requested_from_us=from_us,
                      requested_to_us=to_us)


def keyframe_at_or_before(path: Path, offset_us: int) -> int:
    """Media offset (µs) of the last video keyframe at or before ``offset_us`` in ``path``."""
    import av

    best = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is None or packet.time_base is None or packet.size == 0:
                continue
            pts_us = int(packet.pts * packet.time_base * 1_000_000)
            if pts_us > offset_us:
                break
            if packet.is_keyframe:
                best = pts_us
    return best


def unopenable(path: Path) -> str | None:
    """Why PyAV (ffmpeg's own demuxer) cannot open ``path`` as a video file, or None.

    ffmpeg's concat demuxer ends its whole input at a file it cannot open (and exits 0), so such a
    file must be left out of the list rather than cost every segment after it."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.video:
                return "no video track"
    # IndexError: what PyAV raises for some damaged moov boxes
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        return str(exc) or type(exc).__name__
    return None


def finish_plan(plan: CameraPlan, from_us: int, to_us: int) -> CameraPlan:
    """Decide the cut points (reads the first file's keyframes); fills ``files`` and the range.

    Segments whose files cannot be opened are left out (``plan.unreadable_ids``); the file before
    such a hole lasts until the next one, like any gap."""
    for seg in plan.segments:
        problem = unopenable(seg.abs_path)  # type: ignore[attr-defined]
        if problem:
            log.warning("camera %r: %s cannot be read, left out of the export: %s",
                        plan.camera_name, seg.abs_path, problem)  # type: ignore[attr-defined]
            plan.unreadable_ids.add(seg.id)
    segs = [s for s in plan.segments if s.id not in plan.unreadable_ids]
    if not segs:
        raise ExportError(f"camera {plan.camera_name!r}: none of the {len(plan.segments)} "
                          "recorded files in this range can be read")
    first, last = segs[0], segs[-1]
    paths = [s.abs_path for s in segs]  # type: ignore[attr-defined]  # checked by prepare_plan
    inpoint = 0
    if from_us > first.start_us:
        import av

        try:
            inpoint = keyframe_at_or_before(paths[0], from_us - first.start_us)
        except av.FFmpegError as exc:
            raise ExportError(f"camera {plan.camera_name!r}: {paths[0]}: {exc}") from None
    plan.actual_from_us = first.start_us + inpoint
    outpoint: int | None = None
    if to_us < last.end_us:
        outpoint = to_us - last.start_us
        plan.actual_to_us = to_us
    else:
        plan.actual_to_us = last.end_us
    files = []
    for i, seg in enumerate(segs):
        begin = plan.actual_from_us if i == 0 else seg.start_us
        nxt = segs[i + 1].start_us if i + 1 < len(segs) else None
        files.append(PlannedFile(
            path=paths[i], start_us=seg.start_us,
            inpoint_us=inpoint if i == 0 and inpoint > 0 else None,
            outpoint_us=outpoint if i == len(segs) - 1 else None,
            duration_us=(nxt - begin) if nxt is not None else None))
    plan.files = files
    return plan


def prepare_plan(plan: CameraPlan, from_us: int, to_us: int, *,
                 direct: bool = True) -> Clip | None:
    """Decide how this camera's part is made (call in a thread: reads the segments' boxes).

    Returns the :class:`~recorder.clip.Clip` to copy directly, or None (``direct`` off, or
    segments recorder/mp4.py does not read); then ``plan.files`` holds ffmpeg's concat plan.
    """
    paths = [s.abs_path for s in plan.segments]  # type: ignore[attr-defined]
    for p in paths:
        if not p.is_file():
            raise ExportError(f"camera {plan.camera_name!r}: recorded file {p} is missing")
    if not direct:
        finish_plan(plan, from_us, to_us)
        return None
    sources = [Source(p, s.start_us) for p, s in zip(paths, plan.segments, strict=True)]
    try:
        clip = plan_clip(sources, from_us, to_us, audio=bool(plan.audio_codec))
    except Mp4Error as exc:
        log.warning("camera %r: exporting with ffmpeg, the segments cannot be copied directly: %s",
                    plan.camera_name, exc)
        finish_plan(plan, from_us, to_us)
        return None
    for path in clip.truncated:
        log.warning("camera %r: %s ends inside a fragment; its whole fragments are exported",
                    plan.camera_name, path)
    plan.actual_from_us, plan.actual_to_us = clip.actual_from_us, clip.actual_to_us
    return clip


def space_problem(settings: Settings, folder: Path, need_bytes: int) -> str | None:
    """Why ``need_bytes`` may not be written into ``folder`` now, or None.

    An export must never take the space the recorders need: on a file system that also holds a
    storage volume, that volume's ``min_free_bytes`` (plus a margin) must stay free afterwards.
    """
    usage = shutil.disk_usage(folder)
    device = folder.stat().st_dev
    reserve = SPACE_MARGIN_BYTES
    for volume in settings.volumes:
        with contextlib.suppress(OSError):
            if volume.path.stat().st_dev == device:
                reserve = max(reserve, volume.min_free_bytes + SPACE_MARGIN_BYTES)
    if usage.free - need_bytes >= reserve:
        return None
    mib = 1024 * 1024
    return (f"not enough free space for this export: it needs {need_bytes // mib} MiB, "
            f"{usage.free // mib} MiB are free on {folder}, and {reserve // mib} MiB stay "
            "reserved for recordings (storage volumes' min_free_bytes and a margin)")
