"""Benchmark: how much CPU camsim's RTSP server needs to stream N 1080p ~4 Mbps cameras.

Starts N :class:`camsim.rtsp.RtspServer` instances (one per camera, each with a 1080p main stream)
in this process, and a separate reader process that opens one RTSP/TCP-interleaved session per
camera with a lightweight asyncio client and counts the bytes it receives. Prints one JSON object:
cameras, seconds, camsim_cpu_share_of_one_core (user+system CPU of the serving process over the
measured window, divided by the window), bytes_served, mbps, and a few extra figures.

    python bench/camsim_rtsp.py --cameras 50 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import sys
import time

from camsim.media import MAIN_SPEC, ensure_clip
from camsim.rtsp import RtspServer


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


SCRIPT = os.path.abspath(__file__)

# ----------------------------------------------------------------------------- reader process

playing: list[asyncio.Event] = []


async def _read_one(
    url: str, go: asyncio.Event, deadline: list[float], counts: list[int], index: int
) -> None:
    m = re.match(r"rtsp://([^:/]+):(\d+)(/.*)", url)
    assert m
    reader, writer = await asyncio.open_connection(m.group(1), int(m.group(2)), limit=1 << 20)
    cseq = 0
    session = ""

    async def request(method: str, target: str, extra: str = "") -> str:
        nonlocal cseq
        cseq += 1
        head = f"{method} {target} RTSP/1.0\r\nCSeq: {cseq}\r\n"
        if session:
            head += f"Session: {session}\r\n"
        writer.write((head + extra + "\r\n").encode())
        text = (await reader.readuntil(b"\r\n\r\n")).decode()
        length = re.search(r"Content-Length: (\d+)", text, re.I)
        body = (await reader.readexactly(int(length.group(1)))).decode() if length else ""
        assert " 200 " in text.split("\r\n")[0], text
        return text + body

    sdp = await request("DESCRIBE", url, "Accept: application/sdp\r\n")
    base = url + "/"
    for i, track in enumerate(re.findall(r"a=control:(trackID=\d+)", sdp)):
        reply = await request(
            "SETUP", base + track, f"Transport: RTP/AVP/TCP;unicast;interleaved={2 * i}-{2 * i + 1}\r\n"
        )
        sm = re.search(r"Session: ([^;\r\n]+)", reply)
        assert sm
        session = sm.group(1)
    await request("PLAY", base)
    counts[index] = 0
    playing[index].set()
    await go.wait()
    next_keepalive = time.monotonic() + 20
    while (left := deadline[0] - time.monotonic()) > 0:
        try:
            data = await asyncio.wait_for(reader.read(1 << 16), left)
        except TimeoutError:
            break
        if not data:
            break
        counts[index] += len(data)
        if time.monotonic() > next_keepalive:
            cseq += 1
            keepalive = f"GET_PARAMETER {base} RTSP/1.0\r\nCSeq: {cseq}\r\nSession: {session}\r\n\r\n"
            writer.write(keepalive.encode())
            next_keepalive += 20
    writer.close()


async def reader_main(urls: list[str], seconds: float) -> None:
    counts = [0] * len(urls)
    go = asyncio.Event()
    deadline: list[float] = []
    playing.extend(asyncio.Event() for _ in urls)
    tasks = [asyncio.create_task(_read_one(u, go, deadline, counts, i)) for i, u in enumerate(urls)]
    # Wait until every session is playing (or failed), then tell the parent and start the clock.
    waits = [asyncio.create_task(e.wait()) for e in playing]
    for wait, task in zip(waits, tasks, strict=True):
        await asyncio.wait({wait, task}, return_when=asyncio.FIRST_COMPLETED)
        if task.done() and task.exception():
            raise SystemExit(f"reader failed: {task.exception()!r}")
    start_cpu = cpu_s()
    print("ready", flush=True)
    for i in range(len(counts)):
        counts[i] = 0
    deadline.append(time.monotonic() + seconds)
    go.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({
        "received_bytes": sum(counts),
        "min_camera_bytes": min(counts),
        "reader_cpu_s": round(cpu_s() - start_cpu, 2),
    }), flush=True)


# ----------------------------------------------------------------------------- serving process


async def serve_main(cameras: int, seconds: float) -> dict[str, object]:
    t = time.monotonic()
    await asyncio.to_thread(ensure_clip, MAIN_SPEC)
    clip_s = time.monotonic() - t
    servers = []
    for _ in range(cameras):
        srv = RtspServer("127.0.0.1", 0)
        srv.session_timeout_s = int(seconds) + 60
        srv.add_stream("/main", MAIN_SPEC)
        await srv.start()
        servers.append(srv)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, SCRIPT, "--reader", "--seconds", str(seconds),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write(("\n".join(s.url("/main") for s in servers) + "\n").encode())
    proc.stdin.close()
    line = await proc.stdout.readline()
    assert line.strip() == b"ready", line
    cpu0, wall0 = cpu_s(), time.monotonic()
    bytes0 = sum(s.bytes_sent for s in servers)
    result_line = await proc.stdout.readline()
    cpu1, wall1 = cpu_s(), time.monotonic()
    bytes1 = sum(s.bytes_sent for s in servers)
    await proc.wait()
    for srv in servers:
        await srv.stop()
    reader = json.loads(result_line)
    window = wall1 - wall0
    served = bytes1 - bytes0
    return {
        "cameras": cameras,
        "seconds": round(window, 2),
        "camsim_cpu_share_of_one_core": round((cpu1 - cpu0) / window, 4),
        "bytes_served": served,
        "mbps": round(served * 8 / window / 1e6, 2),
        "mbps_per_camera": round(served * 8 / window / 1e6 / cameras, 3),
        "received_bytes": reader["received_bytes"],
        "min_camera_mbps": round(reader["min_camera_bytes"] * 8 / window / 1e6, 3),
        "reader_cpu_share_of_one_core": round(reader["reader_cpu_s"] / window, 4),
        "clip_ready_s": round(clip_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--reader", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reader:
        urls = [line.strip() for line in sys.stdin if line.strip()]
        asyncio.run(reader_main(urls, args.seconds))
        return
    print(json.dumps(asyncio.run(serve_main(args.cameras, args.seconds))))


if __name__ == "__main__":
    main()
