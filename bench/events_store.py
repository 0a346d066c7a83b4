"""Benchmark: the event store's searches over N million events on PostgreSQL.

Makes a scratch database (migrated to head), fills ``event`` with ``--rows`` rows over 20 sites of
10 cameras and 30 days (10 % plates, random ``[0-9]{3}[A-Z]{3}[0-9]{2}`` texts) with
``generate_series``, analyses it, then times the searches of ``GET /api/v1/events`` through
:func:`vms.events.search` (each the median of 5 runs, warm cache): newest page of one site, of
every site (administrator), of one camera, of one type, a page deep through the cursor, and a
partial plate search. Prints one JSON object; the database is dropped.

    python bench/events_store.py --rows 2000000
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import time

import psycopg

from vms.auth import ROLE_RIGHTS, Principal
from vms.db import models as m
from vms.db.gateway import Gateway
from vms.events import EventQuery, search

FILL = """
INSERT INTO event (camera_id, site_id, type, start_us, end_us, topic, plate, data)
  SELECT cam.id, cam.site_id,
         CASE WHEN i % 10 = 0 THEN 'plate' WHEN i % 10 < 7 THEN 'motion' ELSE 'doorbell' END,
         {t0} + (i::bigint * {step}), {t0} + (i::bigint * {step}) + 1000000, '',
         CASE WHEN i % 10 = 0 THEN lpad(((i / 10) % 1000)::text, 3, '0')
              || chr(65 + (i / 7) % 26) || chr(65 + (i / 11) % 26) || chr(65 + (i / 13) % 26)
              || lpad((i % 97)::text, 2, '0') ELSE '' END,
         '{{}}'
  FROM generate_series(1, {rows}) i
  JOIN camera cam ON cam.id = 1 + (i % 200);
ANALYZE event;
"""


def timed(fn, runs: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    name = f"vms_bench_events_{secrets.token_hex(4)}"
    with psycopg.connect(args.admin_url, autocommit=True) as server:
        server.execute(f'CREATE DATABASE "{name}"')
    url = args.admin_url.rpartition("/")[0] + "/" + name
    try:
        gw = Gateway(url)
        gw.migrate()
        t0 = 1_780_000_000_000_000
        step = 30 * 86_400_000_000 // args.rows
        def cameras() -> None:
            for i in range(1, 21):
                site = m.Site.create(name=f"site {i}", created_us=0)
                for c in range(1, 11):
                    m.Camera.create(site=site, name=f"cam {i}-{c}", status_since_us=0,
                                    created_us=0, updated_us=0)

        gw.write_sync(cameras)
        started = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(FILL.format(t0=t0, step=step, rows=args.rows))
            row = conn.execute("SELECT pg_total_relation_size('event')").fetchone()
            size = row[0] if row else 0
        fill_s = time.perf_counter() - started
        admin = Principal(user_id=0, username="bench", role="admin", site_ids=None,
                          rights=ROLE_RIGHTS["admin"])
        one_site = Principal(user_id=0, username="bench", role="viewer", site_ids=frozenset({3}),
                             rights=ROLE_RIGHTS["viewer"])

        def run(p: Principal, q: EventQuery) -> dict:  # type: ignore[type-arg]
            return gw.read_sync(search, p, q)

        page = run(one_site, EventQuery(limit=100))
        for _ in range(9):
            page = run(one_site, EventQuery(limit=100, cursor=page["next_cursor"]))
        deep_cursor = page["next_cursor"]
        found = run(admin, EventQuery(plate="123 а", limit=100))
        figures = {
            "rows": args.rows, "fill_s": round(fill_s, 1), "event_table_bytes": size,
            "site_page_ms": timed(lambda: run(one_site, EventQuery(limit=100))),
            "all_sites_page_ms": timed(lambda: run(admin, EventQuery(limit=100))),
            "camera_page_ms": timed(lambda: run(admin, EventQuery(camera_id=57, limit=100))),
            "type_page_ms": timed(lambda: run(admin, EventQuery(type="doorbell", limit=100))),
            "site_page_11_ms": timed(lambda: run(one_site, EventQuery(limit=100,
                                                                      cursor=deep_cursor))),
            "plate_partial_ms": timed(lambda: run(admin, EventQuery(plate="123 а", limit=100))),
            "plate_partial_hits": len(found["events"]),
            "plate_rare_ms": timed(lambda: run(admin, EventQuery(plate="999XQ", limit=100))),
        }
        gw.close()
    finally:
        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
