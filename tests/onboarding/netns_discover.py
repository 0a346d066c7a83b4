"""The installer's side of ``test_multicast_netns.py``, run inside a test-made network namespace.

``ip netns exec NS python netns_discover.py discover --interface 192.0.2.20 [--timeout S]
[--listen]`` multicasts a Probe from that interface (no unicast target) through
:func:`onvif_bridge.discovery.discover` and prints one JSON line per device as it arrives
(``DiscoveredDevice`` fields), then ``{"done": true, "elapsed_s": ...}``.

``ip netns exec NS python netns_discover.py interrogate XADDR --user U`` interrogates one camera
(password from ``$NETNS_CAM_PASSWORD``) and prints ``{"status", "message", "mac", "address",
"model"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
import time

from onvif_bridge.client import interrogate
from onvif_bridge.discovery import discover


def _emit(document: dict[str, object]) -> None:
    print(json.dumps(document, default=str), flush=True)


async def run_discover(interface: str, timeout_s: float, listen: bool) -> None:
    started = time.monotonic()
    async for device in discover(interfaces=[interface], timeout_s=timeout_s,
                                 listen_announcements=listen):
        _emit(dataclasses.asdict(device))
    _emit({"done": True, "elapsed_s": round(time.monotonic() - started, 3)})


async def run_interrogate(xaddr: str, user: str) -> None:
    report = await interrogate(xaddr, user, os.environ.get("NETNS_CAM_PASSWORD", "admin"),
                               timeout_s=5.0)
    _emit({
        "status": str(report.status), "message": report.message, "mac": report.mac,
        "address": report.address,
        "model": report.device_info.model if report.device_info is not None else None,
    })


def main() -> int:
    parser = argparse.ArgumentParser(description="WS-Discovery client in a test namespace")
    commands = parser.add_subparsers(dest="command", required=True)
    disc = commands.add_parser("discover")
    disc.add_argument("--interface", required=True, help="IPv4 address to multicast from")
    disc.add_argument("--timeout", type=float, default=3.0)
    disc.add_argument("--listen", action="store_true", help="also listen for Hello/Bye")
    inter = commands.add_parser("interrogate")
    inter.add_argument("xaddr")
    inter.add_argument("--user", default="admin")
    args = parser.parse_args()
    if args.command == "discover":
        asyncio.run(run_discover(args.interface, args.timeout, args.listen))
    else:
        asyncio.run(run_interrogate(args.xaddr, args.user))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(main())
