"""Helpers for export tests: real segment files made by ffmpeg and indexed like the recorder does.

Used where a camsim recording would only add wall-clock time (access, cancel, restart, CLI,
browser); the tests that check time against SEI stamps record camsim for real.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from recorder.segments import probe_segment
from vms.config import Settings
from vms.db import models as m

SEGMENT_FLAGS = "movflags=+frag_keyframe+empty_moov+default_base_moof"


def make_segment_files(ffmpeg: str, folder: Path, *, seconds: int, segment_s: int = 2,
                       size: str = "320x180", bitrate: str = "300k",
                       bframes: int = 0) -> list[Path]:
    """Encode a test pattern with AAC audio into fragmented-MP4 segments (1 s GOP), each starting
    at timestamp 0, like the recorder's files."""
    folder.mkdir(parents=True, exist_ok=True)
    argv = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=1000:sample_rate=16000:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-b:v", bitrate, "-g", "25",
            "-keyint_min", "25", "-sc_threshold", "0", "-bf", str(bframes), "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "32k", "-ac", "1",
            "-f", "segment", "-segment_time", str(segment_s), "-reset_timestamps", "1",
            "-segment_format", "mp4", "-segment_format_options", SEGMENT_FLAGS,
            str(folder / "seg-%06d.mp4")]
    subprocess.run(argv, check=True)
    return sorted(folder.glob("seg-*.mp4"))


def index_files(settings: Settings, camera_id: int, files: list[Path], start_us: int, *,
                end_reason: str = "shutdown") -> tuple[int, int]:
    """Copy ``files`` into the first volume and index them as one run starting at ``start_us``
    (call inside a write transaction). Returns (run id, end_us)."""
    volume = settings.volumes[0]
    run = m.Run.create(camera=camera_id, stream="main", start_us=start_us)
    at = start_us
    for i, src in enumerate(files):
        camera_uuid = m.Camera.get_by_id(camera_id).uuid
        rel = Path(camera_uuid) / "2026-01-01" / "main" / f"{run.uuid}-{i:06d}.mp4"
        dest = volume.path / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        probe = probe_segment(dest)
        assert probe.playable, probe.error
        m.Segment.create(camera=camera_id, stream="main", run=run, volume=volume.name,
                         path=str(rel), start_us=at, end_us=at + probe.duration_us,
                         duration_us=probe.duration_us, size_bytes=probe.size_bytes,
                         video_codec=probe.video_codec, audio_codec=probe.audio_codec,
                         width=probe.width, height=probe.height)
        at += probe.duration_us
    run.end_us = at
    run.end_reason = end_reason
    run.save()
    return int(run.id), at


def media_duration_us(path: Path) -> int:
    """Video span of an MP4: first packet pts to the end of the last packet."""
    import av

    first = last_end = None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is None or packet.time_base is None or packet.size == 0:
                continue
            pts = int(packet.pts * packet.time_base * 1_000_000)
            end = pts + int((packet.duration or 0) * packet.time_base * 1_000_000)
            first = pts if first is None else min(first, pts)
            last_end = end if last_end is None else max(last_end, end)
    assert first is not None and last_end is not None
    return last_end - first
