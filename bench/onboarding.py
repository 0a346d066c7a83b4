"""Benchmark: find and fully interrogate N camsim cameras; prints one JSON document.

``python bench/onboarding.py --cameras 50 --window 2`` starts N virtual cameras on 127.0.0.1
(not timed), then runs the installer's scan — unicast WS-Discovery probes to every camera's
discovery port, and full ONVIF interrogation of each (device information, MAC, services, clock,
profiles, stream and snapshot URIs) as soon as it answers — and reports the seconds from the
first probe until the last report, discovery window included. Target: under 5 s for 50 cameras.
Loopback only; nothing is multicast.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time

from camsim.fleet import Fleet
from onvif_bridge.models import Status
from onvif_bridge.scan import scan

PASSWORD = "bench-pass-123"


async def run(cameras: int, window_s: float, concurrency: int) -> dict[str, object]:
    async with Fleet(cameras, "127.0.0.1", password=PASSWORD, rtsp=False) as fleet:
        targets = [camera.info()["discovery"] for camera in fleet.cameras]
        started = time.monotonic()
        found_at: list[float] = []
        reported_at: list[float] = []
        statuses: dict[str, int] = {}
        profiles = 0
        async for update in scan(targets, "admin", PASSWORD, timeout_s=window_s,
                                 concurrency=concurrency, interfaces=[]):
            now = time.monotonic() - started
            if update.kind == "found":
                found_at.append(now)
            elif update.report is not None:
                reported_at.append(now)
                statuses[str(update.report.status)] = statuses.get(str(update.report.status), 0) + 1
                if update.report.status == Status.OK:
                    profiles += len(update.report.profiles)
        total_s = time.monotonic() - started
    return {
        "benchmark": "onboarding",
        "cameras": cameras,
        "found": len(found_at),
        "interrogated_ok": statuses.get("ok", 0),
        "statuses": statuses,
        "profiles": profiles,
        "discovery_window_s": window_s,
        "concurrency": concurrency,
        "all_found_s": round(max(found_at), 3) if found_at else None,
        "last_report_s": round(max(reported_at), 3) if reported_at else None,
        "seconds": round(total_s, 3),
        "target_s": 5.0,
        "within_target": total_s < 5.0 and statuses.get("ok", 0) == cameras,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=50)
    parser.add_argument("--window", type=float, default=2.0,
                        help="discovery window in seconds (listening for ProbeMatches)")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger().setLevel(logging.ERROR)
    print(json.dumps(asyncio.run(run(args.cameras, args.window, args.concurrency))))


if __name__ == "__main__":
    main()
