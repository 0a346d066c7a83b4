"""Sign-in flood benchmark: segment-index insert latency while sign-ins pile up, as one JSON object.

Runs the whole web server (``create_app``, no recorder) on a real socket, with a camera and a run
in its database, and times ``recorder.index.insert_segment`` written through the server's own
database gateway exactly as the recorder does (``await gateway.write(index.insert_segment, row)``),
one insert every ``--interval-ms``:

- ``idle``: nothing else happening;
- ``flood``: a child process keeps ``--logins`` sign-ins for unknown users in flight at once, each
  from its own loopback address (127.0.x.y, as a botnet would: the per-address throttle does not
  apply), each client sending its next attempt as soon as the last is answered and honouring
  ``Retry-After`` when told the server is busy (503) or throttled (429). The child runs at nice
  19: an attacker's clients run elsewhere, here they take only the processor the server leaves;
- ``hammer`` (with ``--hammer``): the same, but the clients ignore ``Retry-After`` and resend at
  once, the worst a flood can do to the event loop.

Prints p50/p99/max insert latency per phase (as awaited by the caller, and the part spent inside
the write transaction on the writer thread), the ratio of each phase's p99 to idle's, how the
sign-ins were answered, and how many password checks were under way (the password pool is
capped: every argon2 check runs there, never on the database threads). Target: flood p99 under
50 ms and at most 2x idle. (Before the password pool, 300 sign-ins queued ~40 s of argon2 on the
database writer: an insert waited tens of seconds.) A ``hammer`` flood saturates the event loop
with HTTP alone, whatever the route: that is for a reverse proxy's rate limit to stop.

    python bench/login_flood.py [--engine sqlite|postgresql] [--logins 300] [--inserts 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from recorder import index
from vms.app import create_app, freeze_startup_objects
from vms.config import load_settings
from vms.db import models as m
from web.keys import ACCOUNTS, CLOCK, GATEWAY, PASSWORDS

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("VMS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
SEGMENT_US = 4_000_000


# --- the flood (child process) ----------------------------------------------------------------

def _address(i: int) -> str:
    return f"127.0.{2 + i // 250}.{1 + i % 250}"


async def _flood(url: str, logins: int, honour_retry: bool) -> dict[str, Any]:
    """Keep ``logins`` sign-ins in flight until SIGTERM; return how they were answered."""
    os.nice(19)  # an attacker's clients run elsewhere: here, they take only the processor left
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    statuses: Counter[int] = Counter()
    latencies_ms: list[float] = []
    sessions = [aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(local_addr=(_address(i), 0), limit=1),
        timeout=aiohttp.ClientTimeout(total=300)) for i in range(logins)]

    async def worker(i: int, session: aiohttp.ClientSession) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            body = {"username": f"nobody-{i}-{n}", "password": "not-the-password-1"}
            start = time.perf_counter()
            try:
                async with session.post(f"{url}/api/v1/auth/login", json=body) as resp:
                    await resp.read()
                    statuses[resp.status] += 1
                    retry_s = float(resp.headers.get("Retry-After", "0") or 0)
            except aiohttp.ClientError as exc:
                statuses[type(exc).__name__] += 1  # type: ignore[index]
                retry_s = 0.2
            latencies_ms.append((time.perf_counter() - start) * 1000)
            if honour_retry and retry_s:
                try:
                    await asyncio.wait_for(stop.wait(), retry_s)
                except TimeoutError:
                    pass

    print("ready", flush=True)
    tasks = [asyncio.create_task(worker(i, s)) for i, s in enumerate(sessions)]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*(s.close() for s in sessions))
    return {"answers": {str(k): v for k, v in sorted(statuses.items(), key=str)},
            "answer_ms": _percentiles(latencies_ms)}


# --- the server and the measurement -----------------------------------------------------------

def _percentiles(times_ms: list[float]) -> dict[str, float]:
    if not times_ms:
        return {}
    ordered = sorted(times_ms)
    return {"n": len(ordered), "p50": round(statistics.median(ordered), 2),
            "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
            "max": round(ordered[-1], 2)}


def _database(engine: str, tmp: Path) -> tuple[str, Any]:
    if engine == "sqlite":
        return f"sqlite:///{tmp / 'vms.sqlite3'}", None
    import secrets

    import psycopg

    name = f"vms_bench_login_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", drop


def _timed_insert(row: index.SegmentRow) -> float:
    """``index.insert_segment`` on the writer thread; the milliseconds it took there."""
    start = time.perf_counter()
    index.insert_segment(row)
    return (time.perf_counter() - start) * 1000


class Inserter:
    """Times segment inserts through the gateway, as the recorder makes them."""

    def __init__(self, app: web.Application, camera_id: int, run_id: int) -> None:
        self.gateway = app[GATEWAY]
        self.pool = app[PASSWORDS]
        self.camera_id = camera_id
        self.run_id = run_id
        self.n = 0

    async def phase(self, count: int, interval_s: float) -> dict[str, Any]:
        times_ms: list[float] = []
        in_db_ms: list[float] = []
        under_way: list[int] = []
        for _ in range(count):
            start_us = T0_US + self.n * SEGMENT_US
            row = index.SegmentRow(
                camera_id=self.camera_id, stream="main", run_id=self.run_id, volume="default",
                path=f"bench/r{self.run_id}-{self.n:06d}.mp4", start_us=start_us,
                end_us=start_us + SEGMENT_US, size_bytes=2_000_000, video_codec="h264",
                audio_codec="", width=1920, height=1080)
            self.n += 1
            under_way.append(self.pool.under_way)
            t = time.perf_counter()
            in_db_ms.append(await self.gateway.write(_timed_insert, row))
            times_ms.append((time.perf_counter() - t) * 1000)
            await asyncio.sleep(interval_s)
        return {"insert_ms": _percentiles(times_ms), "insert_in_transaction_ms":
                _percentiles(in_db_ms),
                "password_checks_under_way": {"mean": round(statistics.mean(under_way), 1),
                                              "max": max(under_way)}}


async def _with_flood(url: str, args: argparse.Namespace, inserter: Inserter,
                      honour_retry: bool) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--flood-client", url, "--logins", str(args.logins)]
    if not honour_retry:
        cmd.append("--hammer")
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE,
                                                env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                                    [str(ROOT), os.environ.get("PYTHONPATH", "")])})
    assert proc.stdout is not None
    ready = await proc.stdout.readline()
    if ready.strip() != b"ready":
        raise RuntimeError(f"the flood client did not start: {ready!r}")
    await asyncio.sleep(args.ramp_s)  # let the sign-ins reach the server and fill the pool
    result = await inserter.phase(args.inserts, args.interval_ms / 1000)
    proc.send_signal(signal.SIGTERM)
    out, _ = await proc.communicate()
    result.update(json.loads(out))
    return result


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vms-bench-login-") as tmp:
        url, drop = _database(args.engine, Path(tmp))
        try:
            settings = load_settings(None, env={}, overrides={
                "data_dir": Path(tmp) / "data", "database.url": url,
                "server.password_threads": args.password_threads})
            app = create_app(settings, start_recorder=False)
            app.on_startup.append(freeze_startup_objects)  # as `vms serve` does
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            server_url = f"http://127.0.0.1:{port}"
            try:
                clock = app[CLOCK]

                def seed() -> tuple[int, int]:
                    site_row = app[ACCOUNTS].create_site("Bench", "UTC")
                    now = clock.now_us()
                    cam = m.Camera.create(site=site_row, name="bench", username="",
                                          password_enc="", onvif_url="", status_since_us=now,
                                          created_us=now, updated_us=now)
                    return cam.id, index.insert_run(cam.id, "main", T0_US)[0]

                camera_id, run_id = await app[GATEWAY].write(seed)
                inserter = Inserter(app, camera_id, run_id)
                await inserter.phase(20, args.interval_ms / 1000)  # warm the connections
                phases: dict[str, Any] = {
                    "idle": await inserter.phase(args.inserts, args.interval_ms / 1000)}
                phases["flood"] = await _with_flood(server_url, args, inserter, True)
                if args.hammer:
                    phases["hammer"] = await _with_flood(server_url, args, inserter, False)
            finally:
                await runner.cleanup()
        finally:
            if drop is not None:
                drop()
    idle_p99 = phases["idle"]["insert_ms"]["p99"]
    for name in ("flood", "hammer"):
        if name in phases:
            p99 = phases[name]["insert_ms"]["p99"]
            phases[name]["p99_vs_idle"] = round(p99 / idle_p99, 2) if idle_p99 else None
            phases[name]["meets_target"] = p99 < 50 and p99 <= 2 * idle_p99
    return {"bench": "login_flood", "engine": args.engine, "logins_in_flight": args.logins,
            "password_threads": args.password_threads, "cpus": os.cpu_count(),
            "inserts_per_phase": args.inserts, "interval_ms": args.interval_ms, **phases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--logins", type=int, default=300, help="sign-ins kept in flight")
    parser.add_argument("--inserts", type=int, default=300, help="timed inserts per phase")
    parser.add_argument("--interval-ms", type=float, default=20, help="pause between inserts")
    parser.add_argument("--ramp-s", type=float, default=2.0,
                        help="seconds of flood before the timed inserts")
    parser.add_argument("--password-threads", type=int, default=1,
                        help="server.password_threads of the server")
    parser.add_argument("--hammer", action="store_true",
                        help="also a phase whose clients ignore Retry-After")
    parser.add_argument("--flood-client", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    if args.flood_client:
        print(json.dumps(asyncio.run(_flood(args.flood_client, args.logins,
                                            honour_retry=not args.hammer))), flush=True)
        return
    print(json.dumps(asyncio.run(_run(args)), indent=2))


if __name__ == "__main__":
    main()
