"""Chaos benchmark: N camsim cameras recorded by a real ``vms serve`` under random faults and
``kill -9`` of the server; prints one JSON object.

Every camera gets a fault about every ``--fault-interval`` seconds (uniformly 0.5–1.5× that, so
they do not line up): ``drop`` (RTSP sessions cut), ``stall`` (packets stop, the TCP connection
stays), ``reboot`` (SOAP and RTSP gone, back on the same ports), ``refuse`` (new RTSP connections
refused), ``slow_soap`` (SOAP answers delayed) and ``clock`` (the camera's clock jumps by up to an
hour, and back at its next clock fault). The server is killed with SIGKILL ``--kills`` times,
evenly spaced, and started again at once. At the end the server is stopped and ``vms check`` runs.

Reported: for every camera, the timeline from its first recorded instant to the end, read through
the same code the API uses (``recorder.timeline.build_timeline``): seconds covered, gaps by reason,
and **unexplained** seconds — gaps whose reason says nothing about why (``missing``,
``not_recorded``, empty); target 0. Faults injected by kind sit beside the gaps by reason. Also
``vms check``'s problems after the run (target 0).

    python bench/chaos.py --cameras 20 --minutes 30            # the issue's figure
    python bench/chaos.py --cameras 4 --minutes 3 --kills 1     # a quick look

Traffic stays on 127.0.0.1. Every loop is bounded by ``--minutes``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import socket
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from camsim.fleet import Fleet
from recorder.timeline import build_timeline
from vms.auth import Accounts
from vms.clock import SystemClock
from vms.config import load_settings
from vms.db.gateway import Gateway
from vms.db.models import Camera, Segment

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests/
from tests.serve_process import ServeProcess  # noqa: E402

UNEXPLAINED = {"missing", "not_recorded", ""}
ADMIN_PASSWORD = secrets.token_urlsafe(12)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _adopt_all(server: ServeProcess, fleet: Fleet) -> list[int]:
    http, csrf = await server.session("admin", ADMIN_PASSWORD)
    async with http:
        limit = asyncio.Semaphore(4)

        async def adopt(info: dict[str, Any]) -> int:
            async with limit, http.post(
                    "/api/v1/cameras", headers={"X-CSRF-Token": csrf},
                    json={"onvif_url": info["onvif_url"], "username": info["username"],
                          "password": info["password"]}) as resp:
                body = await resp.json()
                if resp.status not in (200, 201):
                    raise RuntimeError(f"adopting {info['name']}: {resp.status} {body}")
                return int(body["id"])

        return list(await asyncio.gather(*(adopt(c.info()) for c in fleet.cameras)))


async def _chaos(fleet: Fleet, server: ServeProcess, *, duration_s: float, interval_s: float,
                 kills: int, rng: random.Random) -> tuple[list[dict[str, Any]], list[float]]:
    faults: list[dict[str, Any]] = []
    kill_times: list[float] = []
    start = time.monotonic()
    end = start + duration_s
    next_fault = {i: start + rng.uniform(0.5, 1.5) * interval_s for i in range(len(fleet.cameras))}
    kill_at = [start + duration_s * (k + 1) / (kills + 1) for k in range(kills)]
    offsets = [0.0] * len(fleet.cameras)
    while time.monotonic() < end:
        now = time.monotonic()
        if kill_at and now >= kill_at[0]:
            kill_at.pop(0)
            kill_times.append(time.time())
            await server.kill9()
            await server.start()
        for index, due in next_fault.items():
            if now < due:
                continue
            cam = fleet.cameras[index]
            kind = rng.choice(("drop", "stall", "reboot", "refuse", "slow_soap", "clock"))
            seconds = {"drop": 0.0, "stall": rng.uniform(2, 12), "reboot": rng.uniform(2, 6),
                       "refuse": rng.uniform(2, 10), "slow_soap": rng.uniform(1, 3),
                       "clock": 0.0}[kind]
            record: dict[str, Any] = {"camera": cam.name, "kind": kind,
                                      "at_us": int(time.time() * 1e6), "seconds": seconds}
            if kind == "clock":
                offsets[index] = 0.0 if offsets[index] else rng.choice((-1, 1)) * rng.uniform(
                    60, 3600)
                cam.set_clock_offset(offsets[index])
                record["offset_s"] = offsets[index]
            else:
                await cam.fault(kind, seconds)
            faults.append(record)
            next_fault[index] = now + rng.uniform(0.5, 1.5) * interval_s
        await asyncio.sleep(0.2)
    return faults, kill_times


def _analyse(gw: Gateway, camera_ids: list[int], end_us: int) -> dict[str, Any]:
    per_camera = []
    gaps_by_reason: Counter[str] = Counter()
    seconds_by_reason: dict[str, float] = defaultdict(float)
    unexplained_s = 0.0
    for camera_id in camera_ids:
        first = gw.read_sync(lambda cid=camera_id: Segment.select(Segment.start_us)
                             .where(Segment.camera == cid, Segment.stream == "main")
                             .order_by(Segment.start_us).first())
        if first is None:
            per_camera.append({"camera_id": camera_id, "recorded_s": 0.0, "unexplained_s": None})
            continue
        timeline = gw.read_sync(build_timeline, camera_id, first.start_us, end_us)
        recorded = sum(s.end_us - s.start_us for s in timeline.spans) / 1e6
        mine = 0.0
        for gap in timeline.gaps:
            length = (gap.end_us - gap.start_us) / 1e6
            gaps_by_reason[gap.reason] += 1
            seconds_by_reason[gap.reason] += length
            if gap.reason in UNEXPLAINED:
                mine += length
        unexplained_s += mine
        name = gw.read_sync(lambda cid=camera_id: Camera.get_by_id(cid).name)
        per_camera.append({"camera_id": camera_id, "name": name, "recorded_s": round(recorded, 1),
                           "gaps": len(timeline.gaps), "unexplained_s": round(mine, 2)})
    return {"unexplained_s": round(unexplained_s, 2), "gaps_by_reason": dict(gaps_by_reason),
            "gap_seconds_by_reason": {k: round(v, 1) for k, v in seconds_by_reason.items()},
            "cameras": per_camera}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--fault-interval", type=float, default=30.0,
                        help="mean seconds between faults of one camera")
    parser.add_argument("--kills", type=int, default=3, help="kill -9 of the server")
    parser.add_argument("--segment-seconds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()
    rng = random.Random(args.seed)

    work = Path(tempfile.mkdtemp(prefix="vms-chaos-"))
    port = _free_port()
    config = work / "vms.toml"
    config.write_text(f'data_dir = "data"\n[server]\nport = {port}\n'
                      f"[recording]\nsegment_seconds = {args.segment_seconds}\n")
    settings = load_settings(config, env={})
    settings.data_dir.mkdir(parents=True)
    gw = Gateway(settings.database_url)
    gw.migrate()
    gw.write_sync(lambda: Accounts(SystemClock()).create_user("admin", ADMIN_PASSWORD, "admin"))

    fleet = await Fleet(args.cameras, password=secrets.token_urlsafe(8)).start()
    server = ServeProcess(config, port, log_path=work / "server.log")
    started = time.time()
    try:
        await server.start()
        camera_ids = await _adopt_all(server, fleet)
        faults, kills = await _chaos(fleet, server, duration_s=args.minutes * 60,
                                     interval_s=args.fault_interval, kills=args.kills, rng=rng)
        end_us = int(time.time() * 1e6)
        await server.stop()
    finally:
        await server.stop()
        await fleet.stop()
    check = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vms.cli", "check", "--json", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _ = await check.communicate()
    report = json.loads(out) if out.strip() else {}
    analysis = _analyse(gw, camera_ids, end_us)
    gw.close()
    print(json.dumps({
        "cameras": args.cameras, "minutes": args.minutes, "segment_seconds": args.segment_seconds,
        "fault_interval_s": args.fault_interval, "seed": args.seed,
        "wall_s": round(time.time() - started, 1),
        "faults_injected": dict(Counter(f["kind"] for f in faults)),
        "server_kills": len(kills),
        "unexplained_missing_s": analysis["unexplained_s"],
        "gaps_by_reason": analysis["gaps_by_reason"],
        "gap_seconds_by_reason": analysis["gap_seconds_by_reason"],
        "check_problems": report.get("problems"), "check_exit": check.returncode,
        "check_in_quarantine": len(report.get("in_quarantine", [])),
        "per_camera": analysis["cameras"],
        "data_dir": str(work) if args.keep else None,
    }, indent=1))
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
