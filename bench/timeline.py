"""Timeline + playlist benchmark: one camera-day on an index of N segment rows, as one JSON object.

Builds a segment index of ``--rows`` rows (default 10,000,000) with bulk SQL — a recursive CTE on
SQLite, ``generate_series`` on PostgreSQL — spread over ``--cameras`` cameras as contiguous 60-second
segments (one run per camera-day), then asks ``--queries`` times, for a random camera and a random
day inside its recording, for the timeline (spans, gaps, events) and the HLS playlist of that day,
through the same service functions the HTTP handlers call (``recorder.timeline.build_timeline``,
``recorder.playback.playlist_segments`` + ``build_playlist``) on the database gateway. Prints p50 and
p99 in milliseconds per engine. Target: p99 < 50 ms.

Then as many other camera-days (another seed, so neither pass warms the other's pages) are timed
through the real HTTP handlers (``create_app`` on the same database, an aiohttp test client signed
in as an administrator, ``GET …/timeline`` then ``GET …/playlist.m3u8``), so that figure includes
routing, the session and access checks, the camera look-up and the JSON/text serialisation.

After seeding, PostgreSQL gets ``VACUUM ANALYZE`` (the visibility map autovacuum would set on an
append-mostly table, without which no scan is index-only), SQLite ``ANALYZE``.

The p99 of 200 requests is the second-slowest: a full garbage collection of the process (~45 ms
on a slow machine, about one request in 100) lands there. ``--gc-freeze`` shows the figure with
``gc.freeze()`` after start-up, which takes the start-up objects out of every full collection.

Building 10,000,000 rows takes minutes; ``--keep`` keeps the databases under stable names
(``$TMPDIR/vms-bench-timeline-{rows}.sqlite3``, PostgreSQL ``vms_bench_timeline_{rows}``) and reuses
them on the next run (pending migrations are applied); ``--drop`` removes them.

    python bench/timeline.py --engines sqlite,postgresql --rows 10000000
    python bench/timeline.py --engines postgresql --rows 1000000 --keep
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from recorder.playback import build_playlist, playlist_segments
from recorder.timeline import build_timeline
from vms.app import create_app
from vms.auth import Accounts
from vms.clock import SystemClock
from vms.config import load_settings
from vms.db.gateway import Gateway
from vms.db.models import Camera, Run, Segment, Site, User

SEG_US = 60_000_000
DAY_US = 86_400_000_000
T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
PG_ADMIN_URL = os.environ.get("VMS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BENCH_USER = "bench_admin"
BENCH_PASSWORD = "bench-Timeline-42"


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
        _analyze(gw)
    return days, time.perf_counter() - started


def _analyze(gw: Gateway) -> None:
    """Planner statistics; on PostgreSQL also the visibility map (``VACUUM``), as autovacuum sets
    it on an append-mostly table, so that covering indexes give index-only scans."""
    if gw.is_sqlite:
        gw.db.execute_sql("ANALYZE")
    else:
        gw.db.execute_sql("VACUUM ANALYZE segment")
        gw.db.execute_sql("VACUUM ANALYZE run")


def _query(camera_id: int, day_from_us: int) -> int:
    to_us = day_from_us + DAY_US
    now_us = T0_US + 10_000 * DAY_US
    timeline = build_timeline(camera_id, day_from_us, to_us, now_us=now_us)
    segments, live = playlist_segments(camera_id, day_from_us, to_us, now_us)
    playlist = build_playlist(segments, day_from_us, media_base=f"/api/v1/cameras/{camera_id}/media",
                              live=live)
    return len(timeline.spans) + len(playlist.text)


def _percentiles(times_ms: list[float]) -> dict[str, float]:
    times_ms = sorted(times_ms)
    return {"p50_ms": round(statistics.median(times_ms), 2),
            "p99_ms": round(times_ms[min(len(times_ms) - 1, int(len(times_ms) * 0.99))], 2),
            "max_ms": round(times_ms[-1], 2)}


def _picks(cameras: int, days: int, queries: int, seed: int) -> list[tuple[int, int]]:
    """(camera, day start) of each request, five warm-up requests first."""
    rnd = random.Random(seed)
    return [(rnd.randint(1, cameras), T0_US + rnd.randint(0, days - 1) * DAY_US)
            for _ in range(queries + 5)]


def _measure(gw: Gateway, picks: list[tuple[int, int]]) -> dict[str, Any]:
    times_ms: list[float] = []
    for i, (cam, day_from_us) in enumerate(picks):
        start = time.perf_counter()
        gw.read_sync(_query, cam, day_from_us)
        if i >= 5:  # warm-up
            times_ms.append((time.perf_counter() - start) * 1000)
    segments = gw.read_sync(lambda: len(playlist_segments(1, T0_US, T0_US + DAY_US, 0)[0]))
    return {"queries": len(times_ms), "segments_per_day": segments, **_percentiles(times_ms)}


async def _measure_http(url: str, gw: Gateway, picks: list[tuple[int, int]],
                        data_dir: Path) -> dict[str, Any]:
    """The same requests through the real handlers: timeline JSON, then the playlist text."""
    def ensure_user() -> None:
        if not User.select().where(User.username == BENCH_USER).exists():
            Accounts(SystemClock()).create_user(BENCH_USER, BENCH_PASSWORD, "admin")

    gw.write_sync(ensure_user)
    settings = load_settings(None, env={}, overrides={
        "data_dir": data_dir, "server.port": 0, "database.url": url})
    client = TestClient(TestServer(create_app(settings, start_recorder=False)))
    await client.start_server()
    times_ms: list[float] = []
    body_bytes = 0
    try:
        resp = await client.post("/api/v1/auth/login",
                                 json={"username": BENCH_USER, "password": BENCH_PASSWORD})
        assert resp.status == 200, await resp.text()
        for i, (cam, day_from_us) in enumerate(picks):
            params = {"from": str(day_from_us), "to": str(day_from_us + DAY_US)}
            start = time.perf_counter()
            timeline_resp = await client.get(f"/api/v1/cameras/{cam}/timeline", params=params)
            timeline_body = await timeline_resp.read()
            playlist_resp = await client.get(f"/api/v1/cameras/{cam}/playlist.m3u8", params=params)
            playlist_body = await playlist_resp.read()
            elapsed = (time.perf_counter() - start) * 1000
            assert timeline_resp.status == 200 and playlist_resp.status == 200, (
                timeline_resp.status, playlist_resp.status)
            if i >= 5:
                times_ms.append(elapsed)
                body_bytes = max(body_bytes, len(timeline_body) + len(playlist_body))
    finally:
        await client.close()
    return {"queries": len(times_ms), "max_body_bytes": body_bytes, **_percentiles(times_ms)}


def _kept_names(rows: int) -> tuple[Path, str]:
    return (Path(tempfile.gettempdir()) / f"vms-bench-timeline-{rows}.sqlite3",
            f"vms_bench_timeline_{rows}")


def _seeded(gw: Gateway) -> tuple[int, int] | None:
    """(cameras, days per camera) of an already seeded bench database, else None."""
    def probe() -> tuple[int, int] | None:
        cameras = Camera.select().count()
        if cameras == 0 or not Segment.select().exists():
            return None
        return cameras, Run.select().count() // cameras
    return gw.read_sync(probe)


def run_engine(engine: str, rows: int, cameras: int, queries: int, seed: int, *,
               keep: bool = False, http: bool = True) -> dict[str, Any]:
    kept_file, kept_name = _kept_names(rows)
    folder: Path | None = None
    cleanup = None
    if engine == "sqlite":
        if keep:
            url = f"sqlite:///{kept_file}"
        else:
            folder = Path(tempfile.mkdtemp(prefix="vms-bench-timeline-"))
            url = f"sqlite:///{folder / 'bench.sqlite3'}"
    elif engine == "postgresql":
        import psycopg

        name = kept_name if keep else f"vms_bench_{os.getpid()}"
        base = PG_ADMIN_URL.rpartition("/")[0]
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                   (name,)).fetchone()
            if not keep or not exists:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
                admin.execute(f'CREATE DATABASE "{name}"')
        url = f"{base}/{name}"

        def drop() -> None:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        cleanup = None if keep else drop
    else:
        raise SystemExit(f"unknown engine {engine!r} (sqlite or postgresql)")

    gw = Gateway(url)
    try:
        applied = gw.migrate()
        build_s = 0.0
        seeded = _seeded(gw)
        if seeded is None:
            days, build_s = _seed_sql(gw, rows, cameras)
        else:
            cameras, days = seeded
            if applied:  # a new index on an old database: refresh the planner's statistics
                gw.read_sync(_analyze, gw)
        picks = _picks(cameras, days, queries, seed)
        result = _measure(gw, picks)
        count = gw.read_sync(lambda: gw.db.execute_sql("SELECT count(*) FROM segment").fetchone()[0])
        answer: dict[str, Any] = {"engine": engine, "rows": count, "cameras": cameras,
                                  "days_per_camera": days, "build_s": round(build_s, 1),
                                  "reused": seeded is not None, **result}
        if http:
            with tempfile.TemporaryDirectory(prefix="vms-bench-timeline-http-") as data_dir:
                # other camera-days than the service pass, so neither warms the other's pages
                http_picks = _picks(cameras, days, queries, seed + 1)
                answer["http"] = asyncio.run(_measure_http(url, gw, http_picks, Path(data_dir)))
        return answer
    finally:
        gw.close()
        if cleanup is not None:
            cleanup()
        if folder is not None:
            for path in folder.glob("*"):
                path.unlink()
            folder.rmdir()


def drop_kept(rows: int) -> None:
    kept_file, kept_name = _kept_names(rows)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{kept_file}{suffix}").unlink(missing_ok=True)
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{kept_name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="segment rows to generate")
    parser.add_argument("--cameras", type=int, default=200, help="cameras the rows are spread over")
    parser.add_argument("--queries", type=int, default=200, help="timeline+playlist requests to time")
    parser.add_argument("--engines", default="sqlite,postgresql", help="sqlite, postgresql or both")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true",
                        help="keep the databases (stable names) and reuse them on the next run")
    parser.add_argument("--drop", action="store_true",
                        help="drop the kept databases of --rows and exit")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP handler timing")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() after start-up: a full collection then skips the ~85,000 "
                             "start-up objects (it otherwise takes ~45 ms here, ~1 query in 100)")
    args = parser.parse_args()
    logging.disable(logging.INFO)  # the access log of every timed request
    if args.drop:
        drop_kept(args.rows)
        return
    if args.gc_freeze:
        gc.collect()
        gc.freeze()
    results = [run_engine(engine.strip(), args.rows, args.cameras, args.queries, args.seed,
                          keep=args.keep, http=not args.no_http)
               for engine in args.engines.split(",") if engine.strip()]
    print(json.dumps({"bench": "timeline", "target_p99_ms": 50, "gc_freeze": args.gc_freeze,
                      "results": results}))


if __name__ == "__main__":
    main()
