"""Benchmark: export one hour of a 1080p25 ~4 Mbps recording, against bare ffmpeg concat.

Builds the hour without waiting for it: camsim's 10 s 1080p clip is stream-copied into one
fragmented-MP4 60 s segment (the recorder's file format), copied into 60 files and indexed as one
run. Then, alternating, in the same run of this script: (a) the export service as configured by
default (plan from the index, samples copied into a faststart MP4, SHA-256 while writing,
manifest), (b) bare ``ffmpeg -f concat -safe 0 -i list -c copy`` of the same files (the baseline
the issue names), (c) the same with ``-movflags +faststart``, and (d) the export service with
``export.muxer = "ffmpeg"`` (its fallback). Prints one JSON object; target: ratio (a)/(b) <= 1.2
and export under 10 s.

    python bench/export.py [--dir /tmp] [--runs 2] [--minutes 60] [--cold]

``--cold`` drops the page cache before every variant (root only: writes
/proc/sys/vm/drop_caches), so each one reads the segments from the disk, as an export of old
footage does.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from camsim.media import MAIN_SPEC, default_cache_dir, ensure_clip  # noqa: E402
from recorder.export import ExportService  # noqa: E402
from recorder.segments import probe_segment  # noqa: E402
from vms.clock import SystemClock  # noqa: E402
from vms.config import ExportSettings, load_settings  # noqa: E402
from vms.db import models as m  # noqa: E402
from vms.db.gateway import Gateway  # noqa: E402

SEGMENT_FLAGS = "movflags=+frag_keyframe+empty_moov+default_base_moof"
START_US = 1_790_000_000 * 1_000_000


def make_minute(ffmpeg: str, folder: Path) -> Path:
    """A 60 s fragmented-MP4 segment of camsim's 1080p25 4 Mbps H.264 + AAC clip (stream copy)."""
    ensure_clip(MAIN_SPEC)
    stem = default_cache_dir() / MAIN_SPEC.stem()
    ten = folder / "ten.mp4"
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-fflags", "+genpts",
                    "-r", str(MAIN_SPEC.fps), "-f", "h264", "-i", f"{stem}.h264",
                    "-i", f"{stem}.aac", "-map", "0:v", "-map", "1:a", "-c", "copy",
                    "-bsf:a", "aac_adtstoasc", "-f", "mp4", str(ten)], check=True)
    minute = folder / "minute.mp4"
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", "-1",
                    "-i", str(ten), "-c", "copy", "-t", "60", "-f", "mp4", "-movflags",
                    SEGMENT_FLAGS.split("=", 1)[1], str(minute)], check=True)
    ten.unlink()
    return minute


def build_index(settings, gateway: Gateway, minute: Path, minutes: int) -> tuple[int, list[Path]]:  # type: ignore[no-untyped-def]
    volume = settings.volumes[0]
    probe = probe_segment(minute)
    files = []
    for i in range(minutes):
        dest = volume.path / "1" / "bench" / "main" / f"r1-{i:06d}.mp4"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(minute, dest)
        files.append(dest)

    def write() -> int:
        site = m.Site.create(name="bench", timezone="Europe/Berlin", created_us=START_US)
        cam = m.Camera.create(site=site, name="bench-1080p", status_since_us=START_US,
                              created_us=START_US, updated_us=START_US)
        run = m.Run.create(camera=cam, stream="main", start_us=START_US)
        at = START_US
        for path in files:
            m.Segment.create(camera=cam, stream="main", run=run, volume=volume.name,
                             path=str(path.relative_to(volume.path)), start_us=at,
                             end_us=at + probe.duration_us, duration_us=probe.duration_us,
                             size_bytes=probe.size_bytes, video_codec=probe.video_codec,
                             audio_codec=probe.audio_codec, width=probe.width,
                             height=probe.height)
            at += probe.duration_us
        run.end_us, run.end_reason = at, "shutdown"
        run.save()
        return int(cam.id)

    return gateway.write_sync(write), files


def drop_caches(cold: bool) -> None:
    """Empty the page cache (``--cold``): each variant then reads its input from the disk."""
    if not cold:
        return
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError as exc:
        raise SystemExit(f"--cold needs root (writing /proc/sys/vm/drop_caches: {exc})") from None


def bare(ffmpeg: str, files: list[Path], out: Path, faststart: bool) -> float:
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{p}'\n" for p in files))
    argv = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "concat",
            "-safe", "0", "-i", str(listing), "-c", "copy"]
    if faststart:
        argv += ["-movflags", "+faststart"]
    start = time.perf_counter()
    subprocess.run([*argv, str(out)], check=True)
    elapsed = time.perf_counter() - start
    out.unlink()
    return elapsed


async def ours(service: ExportService, camera_id: int, to_us: int) -> tuple[float, int]:
    start = time.perf_counter()
    export_id = await service.create(None, [camera_id], START_US, to_us, username="bench")
    state = await service.wait(export_id, timeout_s=600)
    elapsed = time.perf_counter() - start
    if state["state"] != "done":
        raise SystemExit(f"export failed: {state['error']}")
    size = int(state["size_bytes"])
    for path in (service.folder).glob(f"export-{export_id}.*"):
        path.unlink()
    return elapsed, size


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="scratch folder")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--cold", action="store_true", help="drop the page cache before each run")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vms-bench-export-", dir=args.dir))
    try:
        settings = load_settings(None, env={}, overrides={"data_dir": work / "data"})
        settings.data_dir.mkdir(parents=True)
        ffmpeg = settings.ffmpeg_exe()
        gateway = Gateway(settings.database_url)
        gateway.migrate()
        t0 = time.perf_counter()
        minute = make_minute(ffmpeg, work)
        camera_id, files = build_index(settings, gateway, minute, args.minutes)
        setup_s = time.perf_counter() - t0
        to_us = START_US + probe_segment(minute).duration_us * args.minutes
        service = ExportService(gateway, settings, SystemClock(), concurrency=1)
        fallback = ExportService(gateway, dataclasses.replace(
            settings, export=ExportSettings(muxer="ffmpeg")), SystemClock(), concurrency=1)
        await service.start()
        await fallback.start()
        bare_fs, bare_plain, our_s, fallback_s = [], [], [], []
        size = 0
        try:
            for _ in range(args.runs):
                drop_caches(args.cold)
                bare_plain.append(bare(ffmpeg, files, work / "plain.mp4", faststart=False))
                drop_caches(args.cold)
                elapsed, size = await ours(service, camera_id, to_us)
                our_s.append(elapsed)
                drop_caches(args.cold)
                bare_fs.append(bare(ffmpeg, files, work / "bare.mp4", faststart=True))
                drop_caches(args.cold)
                fallback_s.append((await ours(fallback, camera_id, to_us))[0])
        finally:
            await service.stop()
            await fallback.stop()
            gateway.close()
        best_ours, best_bare = min(our_s), min(bare_plain)
        print(json.dumps({
            "benchmark": "export_1h_1080p_4mbps",
            "page_cache": "dropped before each run" if args.cold else "warm",
            "minutes": args.minutes, "segments": len(files),
            "input_bytes": sum(f.stat().st_size for f in files), "output_bytes": size,
            "setup_s": round(setup_s, 2),
            "export_s": round(best_ours, 3),
            "bare_concat_s": round(best_bare, 3),
            "bare_concat_faststart_s": round(min(bare_fs), 3),
            "export_ffmpeg_fallback_s": round(min(fallback_s), 3),
            "ratio": round(best_ours / best_bare, 3),
            "ratio_vs_faststart": round(best_ours / min(bare_fs), 3),
            "ratio_fallback": round(min(fallback_s) / best_bare, 3),
            "runs": {"export_s": [round(x, 3) for x in our_s],
                     "bare_concat_s": [round(x, 3) for x in bare_plain],
                     "bare_concat_faststart_s": [round(x, 3) for x in bare_fs],
                     "export_ffmpeg_fallback_s": [round(x, 3) for x in fallback_s]},
            "target": {"ratio_max": 1.2, "export_s_max": 10.0},
            "cpus": os.cpu_count(),
        }, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
