"""Multicast virtual cameras inside a network namespace made by ``test_multicast_netns.py``.

Run as ``ip netns exec NS python netns_camera.py --host 192.0.2.10 NAME...`` (``PYTHONPATH`` = the
repository root; the camera password comes from ``$NETNS_CAM_PASSWORD``). Never run it outside a
test-made namespace: each camera joins 239.255.255.250 and sends Hello/Bye on its interface.

Starts one camera (``multicast=True``, no RTSP) per NAME and prints its ``info()`` as one JSON line.
Then reads commands from stdin, one per line: ``start NAME`` starts another camera (its Hello goes
out; prints its info), ``stop NAME`` stops one (its Bye goes out; prints ``{"stopped": NAME}``).
End of stdin or SIGTERM stops every camera and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

from camsim.camera import VirtualCamera


def _emit(document: dict[str, object]) -> None:
    print(json.dumps(document), flush=True)


async def main() -> int:
    parser = argparse.ArgumentParser(description="multicast virtual cameras in a test namespace")
    parser.add_argument("--host", required=True, help="address of the camera host's interface")
    parser.add_argument("names", nargs="*", help="cameras to start at once")
    args = parser.parse_args()
    password = os.environ.get("NETNS_CAM_PASSWORD", "admin")
    loop = asyncio.get_running_loop()
    cameras: dict[str, VirtualCamera] = {}
    serial = 0

    async def start(name: str) -> None:
        nonlocal serial
        serial += 1
        camera = VirtualCamera(
            name=name, host=args.host, multicast=True, rtsp=False, password=password,
            mac=f"02:00:5e:00:01:{serial:02x}", serial=f"NS-{serial:04d}",
        )
        await camera.start()
        cameras[name] = camera
        _emit({"started": name, **camera.info()})

    async def stop(name: str) -> None:
        camera = cameras.pop(name, None)
        if camera is not None:
            await camera.stop()
        _emit({"stopped": name})

    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    try:
        for name in args.names:
            await start(name)
        stop_wait = asyncio.ensure_future(stopping.wait())
        while True:
            read = asyncio.ensure_future(reader.readline())
            await asyncio.wait({read, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not read.done():
                read.cancel()
                break
            line = read.result().decode().strip()
            if not line:
                break  # end of stdin
            command, _, name = line.partition(" ")
            if command == "start" and name:
                await start(name)
            elif command == "stop" and name:
                await stop(name)
            else:
                _emit({"error": f"unknown command {line!r}"})
        stop_wait.cancel()
    finally:
        for camera in cameras.values():
            await camera.stop()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(asyncio.run(main()))
