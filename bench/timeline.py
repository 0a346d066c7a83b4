"""Timeline + playlist benchmark: one camera-day on an index of N segment rows, as one JSON object.

Builds a segment index of ``--rows`` rows (default 10,000,000) with bulk SQL — a recursive CTE on
SQLite, ``generate_series`` on PostgreSQL — spread over ``--cameras`` cameras as contiguous 60-second
segments (one run per camera-day), then asks ``--queries`` times, for a random camera and a random
day inside its recording, for the timeline (spans, gaps, events) and the HLS playlist of that day,
through the same service functions the HTTP handlers call (``recorder.timeline.build_timeline``,
``recorder.playback.playlist_segments`` + ``build_playlist``) on the database gateway. Prints p50 and
p99 in milliseconds per engine. Target: p99 < 50 ms.

    python bench/timeline.py --engines sqlite,postgresql --rows 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from recorder.playback import build_playlist, playlist_segments
from recorder.timeline import build_timeline
from vms.db.gateway import Gateway
from vms.db.models import Camera, Run, Segment, Site

SEG_US = 60_000_000
DAY_US = 86_400_000_000
T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
PG_ADMIN_URL = os.environ.get("VMS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


KNOWN_SEGMENT_COLUMNS = {"id", "camera_id", "stream", "run_id", "volume", "path", "start_us", "end_us",
                         "duration_us", "size_bytes", "video_codec", "audio_codec", "width",
                         "height", "state"}


def _other_segment_columns() -> tuple[str, str]:
    """Columns added to Segment since this bench was written, filled with their model defaults."""
    cols, vals = [], []
    for field in Segment._meta.sorted_fields:
        if field.column_name in KNOWN_SEGMENT_COLUMNS:
            continue
        default = field.default() if callable(field.default) else field.default
        if default is None:
            continue
        cols.append(field.column_name)
        vals.append(repr(default) if isinstance(default, (int, float)) and not isinstance(default, bool)
                    else ("TRUE" if default is True else "FALSE" if default is False
                          else "'" + str(default).replace("'", "''") + "'"))
    return "".join(f", {c}" for c in cols), "".join(f", {v}" for v in vals)


def _seed_sql(gw: Gateway, rows: int, cameras: int) -> tuple[int, float]:
    """Fill sites, cameras, runs and segments; returns (days per camera, seconds taken)."""
    per_camera = rows // cameras
    days = max(1, -(-per_camera // 1440))
    started = time.perf_counter()
    db = gw.db
    with db.connection_context():
        with db.atomic():
            site = Site.create(name="bench", timezone="Europe/Berlin", created_us=0)
            Camera.insert_many([{"id": i, "site": site.id, "name": f"cam {i}", "status_since_us": 0,
                                 "created_us": 0, "updated_us": 0}
                                for i in range(1, cameras + 1)]).execute()
            runs = [{"id": i + 1, "camera": i % cameras + 1, "stream": "main",
                     "start_us": T0_US + (i // cameras) * DAY_US,
                     "end_us": T0_US + (i // cameras + 1) * DAY_US - SEG_US,
                     "end_reason": "camera_lost"} for i in range(cameras * days)]
            for chunk in range(0, len(runs), 500):
                Run.insert_many(runs[chunk:chunk + 500]).execute()
            extra_cols, extra_vals = _other_segment_columns()
            if gw.is_sqlite:
                # the last minute of each day is a gap (a new run starts the next day)
                db.execute_sql(
                    f"""WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {rows - 1})
                    INSERT INTO segment (camera_id, stream, run_id, volume, path, start_us, end_us,
                                         duration_us, size_bytes, video_codec, audio_codec, width,
                                         height, state{extra_cols})
                    SELECT c, 'main', (s / 1440) * {cameras} + c, 'main', c || '/' || s || '.mp4',
                           {T0_US} + s * {SEG_US}, {T0_US} + (s + 1) * {SEG_US}, {SEG_US}, 30000000,
                           'h264', 'aac', 1920, 1080, 'ok'{extra_vals}
                    FROM (SELECT (i % {cameras}) + 1 AS c, i / {cameras} AS s FROM n)
                    WHERE s % 1440 != 1439""")
            else:
                db.execute_sql(
                    f"""INSERT INTO segment (camera_id, stream, run_id, volume, path, start_us, end_us,
                                         duration_us, size_bytes, video_codec, audio_codec, width,
                                         height, state{extra_cols})
                    SELECT c, 'main', (s / 1440) * {cameras} + c, 'main', c || '/' || s || '.mp4',
                           {T0_US}::bigint + s * {SEG_US}, {T0_US}::bigint + (s + 1) * {SEG_US},
                           {SEG_US}, 30000000, 'h264', 'aac', 1920, 1080, 'ok'{extra_vals}
                    FROM (SELECT (i %% {cameras}) + 1 AS c, (i / {cameras})::bigint AS s
                          FROM generate_series(0, {rows - 1}) AS i) AS g
                    WHERE s %% 1440 != 1439""")
                db.execute_sql("SELECT setval(pg_get_serial_sequence('run', 'id'), "
                               "(SELECT max(id) FROM run))")
        if gw.is_sqlite:
            db.execute_sql("ANALYZE")
        else:
            db.execute_sql("ANALYZE segment")
            db.execute_sql("ANALYZE run")
    return days, time.perf_counter() - started


def _query(camera_id: int, day_from_us: int) -> int:
    to_us = day_from_us + DAY_US
    now_us = T0_US + 10_000 * DAY_US
    timeline = build_timeline(camera_id, day_from_us, to_us, now_us=now_us)
    segments, live = playlist_segments(camera_id, day_from_us, to_us, now_us)
    playlist = build_playlist(segments, day_from_us, media_base=f"/api/v1/cameras/{camera_id}/media",
                              live=live)
    return len(timeline.spans) + len(playlist.text)


def _measure(gw: Gateway, cameras: int, days: int, queries: int, seed: int) -> dict[str, Any]:
    rnd = random.Random(seed)
    times_ms: list[float] = []
    segments = 0
    for i in range(queries + 5):
        cam = rnd.randint(1, cameras)
        day = rnd.randint(0, days - 1)
        start = time.perf_counter()
        gw.read_sync(_query, cam, T0_US + day * DAY_US)
        elapsed = (time.perf_counter() - start) * 1000
        if i >= 5:  # warm-up
            times_ms.append(elapsed)
    segments = gw.read_sync(lambda: len(playlist_segments(1, T0_US, T0_US + DAY_US, 0)[0]))
    times_ms.sort()
    return {
        "queries": queries, "segments_per_day": segments,
        "p50_ms": round(statistics.median(times_ms), 2),
        "p99_ms": round(times_ms[min(len(times_ms) - 1, int(len(times_ms) * 0.99))], 2),
        "max_ms": round(times_ms[-1], 2),
    }


def run_engine(engine: str, rows: int, cameras: int, queries: int, seed: int) -> dict[str, Any]:
    if engine == "sqlite":
        folder = tempfile.mkdtemp(prefix="vms-bench-timeline-")
        url = f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        cleanup = None
    else:
        import psycopg

        name = f"vms_bench_{os.getpid()}"
        base = PG_ADMIN_URL.rpartition("/")[0]
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            admin.execute(f'CREATE DATABASE "{name}"')
        url = f"{base}/{name}"

        def cleanup() -> None:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    gw = Gateway(url)
    try:
        gw.migrate()
        days, build_s = _seed_sql(gw, rows, cameras)
        result = _measure(gw, cameras, days, queries, seed)
        count = gw.read_sync(lambda: gw.db.execute_sql("SELECT count(*) FROM segment").fetchone()[0])
        return {"engine": engine, "rows": count, "cameras": cameras, "days_per_camera": days,
                "build_s": round(build_s, 1), **result}
    finally:
        gw.close()
        if cleanup is not None:
            cleanup()
        elif engine == "sqlite":
            for path in Path(folder).glob("*"):
                path.unlink()
            Path(folder).rmdir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="segment rows to generate")
    parser.add_argument("--cameras", type=int, default=200, help="cameras the rows are spread over")
    parser.add_argument("--queries", type=int, default=200, help="timeline+playlist requests to time")
    parser.add_argument("--engines", default="sqlite,postgresql", help="sqlite, postgresql or both")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    results = [run_engine(engine.strip(), args.rows, args.cameras, args.queries, args.seed)
               for engine in args.engines.split(",") if engine.strip()]
    print(json.dumps({"bench": "timeline", "target_p99_ms": 50, "results": results}))


if __name__ == "__main__":
    main()
