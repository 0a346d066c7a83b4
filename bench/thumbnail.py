"""Timeline preview benchmark: the keyframe picture of an instant, cold (decoded) and cached.

Encodes one fragmented-MP4 segment like the recorder writes (``--size``, 25 fps, one keyframe every
``--gop`` seconds, ``--seconds`` long; libx264 from a lavfi test pattern, bundled ffmpeg), then asks
:func:`recorder.thumbnail.keyframe_thumbnail` for ``--queries`` random instants inside it through one
:class:`recorder.thumbnail.ThumbnailCache`: a first ask in a GOP decodes its keyframe (``miss``),
later asks in that GOP only read packets to find the keyframe (``hit``). Prints one JSON object:
p50/p95 in milliseconds for misses and hits, the picture's bytes, the cache's bytes.

    python bench/thumbnail.py --size 1920x1080 --queries 200
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import imageio_ffmpeg  # noqa: E402

from recorder.thumbnail import ThumbnailCache, keyframe_thumbnail  # noqa: E402


def make_segment(path: Path, size: str, seconds: int, gop_s: int) -> None:
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi",
         "-i", f"testsrc2=size={size}:rate=25", "-t", str(seconds), "-c:v", "libx264",
         "-preset", "veryfast", "-g", str(25 * gop_s), "-b:v", "4M",
         "-movflags", "+frag_keyframe+empty_moov+default_base_moof", str(path)],
        check=True, timeout=600)


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--gop", type=int, default=2, help="seconds between keyframes")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "segment.mp4"
        make_segment(path, args.size, args.seconds, args.gop)
        cache = ThumbnailCache()
        keyframe_thumbnail(cache, 0, path, 0, 0)  # imports and codec set-up, not measured
        cache = ThumbnailCache()
        miss: list[float] = []
        hit: list[float] = []
        sizes: list[int] = []
        for _ in range(args.queries):
            at_us = rng.randrange(0, args.seconds * 1_000_000)
            started = time.perf_counter()
            thumb, cached = keyframe_thumbnail(cache, 1, path, 0, at_us)
            elapsed_ms = (time.perf_counter() - started) * 1000
            (hit if cached else miss).append(elapsed_ms)
            sizes.append(len(thumb.jpeg))
        print(json.dumps({
            "size": args.size, "gop_s": args.gop, "segment_bytes": path.stat().st_size,
            "queries": args.queries, "misses": len(miss), "hits": len(hit),
            "miss_ms": {"p50": pct(miss, 0.5), "p95": pct(miss, 0.95),
                        "mean": round(statistics.fmean(miss), 2) if miss else 0.0},
            "hit_ms": {"p50": pct(hit, 0.5), "p95": pct(hit, 0.95)},
            "jpeg_bytes_p50": pct([float(s) for s in sizes], 0.5),
            "cache_bytes": cache.size_bytes, "cache_entries": len(cache)}))


if __name__ == "__main__":
    main()
