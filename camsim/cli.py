"""``vms sim``: run a fleet of virtual cameras until interrupted.

:func:`run_sim` prints one JSON line per camera (the :meth:`VirtualCamera.info` dict) or a short
human line, then waits for cancellation, SIGINT or SIGTERM and stops the cameras cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

from camsim.fleet import Fleet
from vms.clock import Clock

logger = logging.getLogger(__name__)


async def run_sim(
    cameras: int,
    host: str = "127.0.0.1",
    json_out: bool = False,
    *,
    username: str = "admin",
    password: str | None = None,
    seed: str = "camsim",
    clock: Clock | None = None,
    cache_dir: Path | None = None,
    out: TextIO | None = None,
    ready: asyncio.Event | None = None,
    **options: Any,
) -> None:
    """Start ``cameras`` virtual cameras on ``host`` and run until cancelled or signalled."""
    stream = out or sys.stdout
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        async with Fleet(cameras, host, clock=clock, username=username, password=password,
                         seed=seed, cache_dir=cache_dir, **options) as fleet:
            for camera in fleet:
                info = camera.info()
                if json_out:
                    stream.write(json.dumps(info) + "\n")
                else:
                    stream.write(
                        f"{info['name']}  onvif {info['onvif_url']}  user {info['username']}  "
                        f"password {info['password']}  rtsp {info['rtsp']['main']}  "
                        f"control {info['control_url']}\n"
                    )
            stream.flush()
            if ready is not None:
                ready.set()
            await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
