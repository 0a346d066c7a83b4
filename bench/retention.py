"""Retention benchmark: purge 100,000 expired segments from an index of 1,000,000 rows while a
client hammers the timeline API, on SQLite and PostgreSQL; one JSON object.

The index is built as bench/timeline.py builds it (contiguous 60-second segments over
``--cameras`` cameras, one run per camera-day; no files on disk, so the figure is the database's
and the engine's, not the disk's). The clock is set so that the oldest ``--expired`` segments
(the same number per camera) are older than ``continuous_days = 1``. Then, with the real app
(``create_app`` on the same database, an aiohttp test client signed in as an administrator):

1. idle: ``--requests`` ``GET /api/v1/cameras/{id}/timeline`` of random camera-days, one after
   another, timed;
2. during: the same requests, as long as one retention pass (recorder/retention.py
   ``Purger.run_pass``, chunks of 1,000) is deleting — once on a thread of the server (``thread``,
   how the server ran it before), once in a child process (``child``,
   recorder/retention_child.py, how the server runs its scheduled pass), each deleting half of
   the expired segments; idle requests are timed again after each, as the machine's load drifts.

It prints, per mode, the purge's seconds and deleted count, and p50/p99 of both phases and their
ratio.
Target: p99 during the purge ≤ 1.5 × idle p99 and under 100 ms.

    python bench/retention.py --engines sqlite,postgresql
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import os
import random
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from recorder.retention import Purger, RetentionOptions
from recorder.retention_child import ChildPass
from vms.app import create_app
from vms.auth import Accounts
from vms.clock import FakeClock, SystemClock
from vms.config import load_settings
from vms.db.gateway import Gateway
from vms.db.models import Segment, User
from web.keys import GATEWAY

PG_ADMIN_URL = os.environ.get("VMS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
USER, PASSWORD = "bench_admin", "bench-Retention-42"
MODES = ("thread", "child")
"""How the pass runs: on a thread of the server (before), in a child process (as the server runs
its scheduled pass now)."""


def _timeline_bench() -> ModuleType:
    """bench/timeline.py (its seeding), loaded by path: bench/ is not a package."""
    spec = importlib.util.spec_from_file_location("bench_timeline",
                                                  Path(__file__).with_name("timeline.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TL = _timeline_bench()


def _percentiles(times_ms: list[float]) -> dict[str, float]:
    out: dict[str, float] = TL._percentiles(times_ms)
    out["requests"] = len(times_ms)
    return out


async def _hammer(client: TestClient, cameras: int, days: int, rnd: random.Random,
                  until: Any, min_requests: int) -> list[float]:
    """Timeline requests one after another until ``until()`` is true (and at least
    ``min_requests``); their times in ms."""
    times: list[float] = []
    while len(times) < min_requests or not until():
        cam = rnd.randint(1, cameras)
        day = TL.T0_US + rnd.randint(0, days - 1) * TL.DAY_US
        start = time.perf_counter()
        resp = await client.get(f"/api/v1/cameras/{cam}/timeline",
                                params={"from": str(day), "to": str(day + TL.DAY_US)})
        await resp.read()
        times.append((time.perf_counter() - start) * 1000)
        assert resp.status == 200, resp.status
        if len(times) > 1_000_000:  # bounded, whatever happens
            break
    return times


async def _measure(url: str, gw: Gateway, cameras: int, days: int, expired_per_camera: int,
                   requests: int, data_dir: Path) -> dict[str, Any]:
    def ensure_user() -> None:
        if not User.select().where(User.username == USER).exists():
            Accounts(SystemClock()).create_user(USER, PASSWORD, "admin")

    gw.write_sync(ensure_user)
    settings = load_settings(None, env={}, overrides={
        "data_dir": data_dir, "server.port": 0, "database.url": url,
        "retention.continuous_days": 1, "retention.event_days": 1})
    client = TestClient(TestServer(create_app(settings, start_recorder=False)))
    await client.start_server()
    try:
        resp = await client.post("/api/v1/auth/login", json={"username": USER,
                                                              "password": PASSWORD})
        assert resp.status == 200, await resp.text()
        rnd = random.Random(11)
        await _hammer(client, cameras, days, rnd, lambda: True, 20)  # warm-up
        idle = await _hammer(client, cameras, days, rnd, lambda: True, requests)
        modes: dict[str, Any] = {}
        per_mode = expired_per_camera // len(MODES)
        for i, mode in enumerate(MODES):
            # each mode purges its own slice: the next per_mode segments of every camera
            now_us = TL.T0_US + (i + 1) * per_mode * TL.SEG_US + TL.DAY_US
            clock = FakeClock(now_us)
            if mode == "thread":
                # the app's own gateway: the models are bound to the last gateway made, and the
                # purge's writes take turns on its writer thread with the server's
                run = Purger(client.app[GATEWAY], settings, clock).run_pass
            else:  # as the server runs its scheduled pass (recorder/retention_service.py)
                run = ChildPass(settings, clock, RetentionOptions()).run
            started = time.perf_counter()
            task = asyncio.create_task(asyncio.to_thread(run))
            during = await _hammer(client, cameras, days, rnd, task.done, 1)
            report = await task
            purge_s = time.perf_counter() - started
            # idle again, just before the next mode: the machine's load drifts
            idle_after = await _hammer(client, cameras, days, rnd, lambda: True, requests // 2)
            modes[mode] = _mode_figures(idle + idle_after, during, report, purge_s)
            idle = idle_after
    finally:
        await client.close()
    return modes


def _mode_figures(idle: list[float], during: list[float], report: Any,
                  purge_s: float) -> dict[str, Any]:
    idle_p = _percentiles(idle)
    during_p = _percentiles(during)
    age = report.by_reason.get("age")
    return {"purge_s": round(purge_s, 2), "deleted_segments": age.segments if age else 0,
            "segments_per_s": round((age.segments if age else 0) / purge_s),
            "idle": idle_p, "during_purge": during_p,
            "p99_ratio": round(during_p["p99_ms"] / idle_p["p99_ms"], 2) if idle_p["p99_ms"]
            else None}


def run_engine(engine: str, rows: int, cameras: int, expired: int, requests: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="vms-bench-retention-"))
    drop = None
    if engine == "sqlite":
        url = f"sqlite:///{folder / 'bench.sqlite3'}"
    elif engine == "postgresql":
        import psycopg

        name = f"vms_bench_retention_{os.getpid()}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            admin.execute(f'CREATE DATABASE "{name}"')
        url = f"{PG_ADMIN_URL.rpartition('/')[0]}/{name}"

        def drop() -> None:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        raise SystemExit(f"unknown engine {engine!r} (sqlite or postgresql)")
    gw = Gateway(url)
    try:
        gw.migrate()
        days, build_s = TL._seed_sql(gw, rows, cameras)
        count = gw.read_sync(lambda: Segment.select().count())
        expired_per_camera = expired // cameras
        modes = asyncio.run(_measure(url, gw, cameras, days, expired_per_camera, requests,
                                     folder / "data"))
        left = gw.read_sync(lambda: Segment.select().count())
        return {"engine": engine, "rows": count, "cameras": cameras, "build_s": round(build_s, 1),
                "expired": expired_per_camera * cameras, "rows_left": left, "modes": modes}
    finally:
        gw.close()
        if drop is not None:
            drop()
        for path in sorted(folder.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        folder.rmdir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="segment rows in the index")
    parser.add_argument("--cameras", type=int, default=100)
    parser.add_argument("--expired", type=int, default=100_000, help="segments to purge")
    parser.add_argument("--requests", type=int, default=300, help="idle timeline requests")
    parser.add_argument("--engines", default="sqlite,postgresql")
    args = parser.parse_args()
    if args.expired // args.cameras >= 1439:
        raise SystemExit("--expired must stay inside each camera's first day (< 1439 per camera)")
    logging.disable(logging.INFO)
    results = [run_engine(e.strip(), args.rows, args.cameras, args.expired, args.requests)
               for e in args.engines.split(",") if e.strip()]
    print(json.dumps({"bench": "retention", "results": results}, indent=2))


if __name__ == "__main__":
    main()
