"""Cluster benchmark: N ``vms serve`` nodes on one PostgreSQL recording camsim cameras; prints one
JSON object.

1. **Database load** per node and per camera: every node reaches PostgreSQL through its own
   counting TCP proxy on loopback, which counts the bytes both ways and the statements the node
   sends (PostgreSQL protocol messages ``Query`` and ``Execute``); over ``--load-seconds`` of steady
   recording, divided by the cameras each node holds. ``pg_stat_database`` deltas of the (fresh)
   database give the transactions and rows written over the same time.
2. **Failover**: ``--kills`` times, one node (in turn) is killed with SIGKILL; measured are the
   time until none of its leases is held any more (``leases_taken_s``: the lease protocol's part)
   and the time until every camera is recorded exactly once again by the others (one RTSP
   session per camera at camsim, its lease held, one open run by the same live node, and that
   node recording it since it took the lease). The node is then started again and the cameras
   rebalance before the next kill. p50 and max are reported, with how many cameras the killed
   node held.

Light per camera, for a shared 2-core machine: the cameras are recorded from camsim's ``sub``
stream (640×360, 512 kbit/s; ``--stream main`` for 1080p at 4 Mbit/s), by stream copy, in
``--segment-seconds`` segments; the cameras are added once every node has joined (each takes its
share at once). The load average is sampled before the nodes start and during the run.

    python bench/cluster.py --nodes 3 --cameras 90 --kills 10        # the issue's figures
    python bench/cluster.py --nodes 3 --cameras 8 --kills 2          # a quick look

Traffic stays on 127.0.0.1. Every wait is bounded (``--timeout`` seconds each), and so is the
whole run (``--max-seconds``: no further kill starts after it; the kills done are reported).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests/
from tests.cluster.conftest import Cluster, TcpProxy  # noqa: E402
from tests.conftest import PG_ADMIN_URL, _pg_url  # noqa: E402
from vms.db.gateway import Gateway  # noqa: E402
from vms.db.models import CameraLease  # noqa: E402

UNTYPED_CODES = {80877103, 80877104}  # SSLRequest, GSSENCRequest: before the startup message


class CountingProxy(TcpProxy):
    """A :class:`TcpProxy` that counts bytes both ways and the statements a client sends."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self.bytes_up = 0
        self.bytes_down = 0
        self.statements = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, up_writer}

        async def client_to_server() -> None:
            typed = False
            buf = b""
            try:
                while data := await reader.read(65536):
                    self.bytes_up += len(data)
                    up_writer.write(data)
                    await up_writer.drain()
                    buf += data
                    while True:  # frame the frontend protocol: count Query and Execute
                        head = 5 if typed else 4
                        if len(buf) < head:
                            break
                        if typed:
                            kind, length = buf[:1], struct.unpack("!I", buf[1:5])[0]
                            if len(buf) < 1 + length:
                                break
                            if kind in (b"Q", b"E"):
                                self.statements += 1
                            buf = buf[1 + length:]
                        else:
                            length = struct.unpack("!I", buf[:4])[0]
                            if len(buf) < length:
                                break
                            code = struct.unpack("!I", buf[4:8])[0] if length >= 8 else 0
                            typed = code not in UNTYPED_CODES
                            buf = buf[length:]
            except (OSError, ConnectionError):
                pass
            up_writer.transport.abort()

        async def server_to_client() -> None:
            try:
                while data := await up_reader.read(65536):
                    self.bytes_down += len(data)
                    writer.write(data)
                    await writer.drain()
            except (OSError, ConnectionError):
                pass
            writer.transport.abort()

        for coro in (client_to_server(), server_to_client()):
            task = asyncio.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


class _Camera:
    """One camera of the ``vms sim`` child: what :class:`Cluster` reads of a camsim camera."""

    def __init__(self, info: dict[str, Any]) -> None:
        self._info = info

    def info(self) -> dict[str, Any]:
        return self._info


async def _start_sim(cameras: int, timeout_s: float) -> tuple[Any, list[_Camera]]:
    """The cameras run in a ``vms sim`` child of their own, so their RTP sending does not slow
    the counting proxies (and so the nodes' ticks) in this process."""
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vms.cli", "sim", "--cameras", str(cameras), "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    assert sim.stdout is not None
    try:
        lines = [await asyncio.wait_for(sim.stdout.readline(), timeout_s) for _ in range(cameras)]
        return sim, [_Camera(json.loads(line)) for line in lines]
    except BaseException:
        sim.kill()
        await sim.wait()
        raise


def _db_stats(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback, tup_inserted, tup_updated, tup_deleted, "
            "tup_returned + tup_fetched FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return dict(zip(("transactions", "inserted", "updated", "deleted", "read"), row, strict=True))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    name = f"vms_bench_cluster_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = _pg_url(PG_ADMIN_URL, name)
    gw = Gateway(url)
    gw.migrate()
    gw.close()
    began = time.monotonic()
    loads: list[float] = []

    def sample_load() -> None:
        loads.append(round(os.getloadavg()[0], 2))

    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                           "nodes": args.nodes, "cameras": args.cameras,
                           "lease_seconds": args.lease, "segment_seconds": args.segment_seconds,
                           "stream": args.stream, "load_average_before": os.getloadavg()[0]}
    sim, cameras = await _start_sim(args.cameras, args.timeout)
    fleet = SimpleNamespace(cameras=cameras)
    proxies: dict[str, CountingProxy] = {}
    with tempfile.TemporaryDirectory(prefix="vms-bench-cluster-") as scratch:
        tmp = args.keep or scratch
        cluster = Cluster(Path(tmp), url, fleet)
        try:
            names = [chr(ord("a") + i) for i in range(args.nodes)]
            for n in names:
                proxy = CountingProxy(5432)
                await proxy.start()
                proxies[n] = proxy
                cluster.add_node(n, db_url=f"postgresql://postgres@127.0.0.1:{proxy.port}/{name}",
                                 lease_s=args.lease, segment_s=args.segment_seconds)
            await asyncio.gather(*(cluster.nodes[n].start(timeout_s=args.timeout)
                                   for n in names))
            started = time.monotonic()
            cluster.seed(args.stream)
            share = -(-args.cameras // args.nodes)
            await cluster.wait("every camera recorded once, balanced", args.timeout, lambda: (
                max(cluster.counts().values(), default=0) <= share
                and cluster.recorded_once(set(names))))
            out["cameras_added_to_balanced_s"] = round(time.monotonic() - started, 1)
            sample_load()

            # 1. database load while recording steadily
            held = cluster.counts()
            before = _db_stats(url)
            for p in proxies.values():
                p.bytes_up = p.bytes_down = p.statements = 0
            await asyncio.sleep(args.load_seconds / 2)
            sample_load()
            await asyncio.sleep(args.load_seconds / 2)
            after = _db_stats(url)
            per_node = {}
            for n in names:
                p, cams = proxies[n], max(1, held.get(n, 0))
                per_node[n] = {
                    "cameras": held.get(n, 0),
                    "queries_per_s": round(p.statements / args.load_seconds, 2),
                    "bytes_per_s": round((p.bytes_up + p.bytes_down) / args.load_seconds),
                    "queries_per_s_per_camera": round(p.statements / args.load_seconds / cams, 3),
                    "bytes_per_s_per_camera": round((p.bytes_up + p.bytes_down)
                                                    / args.load_seconds / cams)}
            print(json.dumps({"db_load_per_node": per_node}), file=sys.stderr, flush=True)
            out["db_load"] = {
                "seconds": args.load_seconds, "per_node": per_node,
                "database_per_s": {k: round((after[k] - before[k]) / args.load_seconds, 1)
                                   for k in before}}

            # 2. failover after SIGKILL
            failovers: list[float] = []
            victim_held: list[int] = []
            moved: list[float] = []  # kill → none of its leases held any more
            for k in range(args.kills):
                if time.monotonic() - began > args.max_seconds:
                    out["stopped_early"] = f"--max-seconds {args.max_seconds} reached"
                    break
                victim = names[k % len(names)]
                others = set(names) - {victim}
                node = cluster.nodes[victim]
                victim_held.append(cluster.counts().get(victim, 0))
                killed = time.monotonic()
                await node.kill9()
                await cluster.wait(f"leases of {victim} taken", args.timeout,
                                   lambda v=victim: not cluster.gw.read_sync(  # type: ignore[misc]
                                       lambda: CameraLease.select().where(
                                           CameraLease.node == v).exists()), interval_s=0.1)
                moved.append(round(time.monotonic() - killed, 2))
                await cluster.wait(f"failover {k + 1} (node {victim})", args.timeout,
                                   lambda o=others: cluster.recorded_once(o),  # type: ignore[misc]
                                   interval_s=0.2)
                failovers.append(round(time.monotonic() - killed, 2))
                sample_load()
                print(json.dumps({"kill": k + 1, "node": victim, "cameras": victim_held[-1],
                                  "leases_taken_s": moved[-1], "failover_s": failovers[-1],
                                  "load": loads[-1]}), file=sys.stderr, flush=True)
                await node.start(timeout_s=args.timeout * 2)  # reconciles its volume first
                await cluster.wait("rebalanced", args.timeout, lambda: (
                    max(cluster.counts().values(), default=0) <= share
                    and cluster.recorded_once(set(names))), interval_s=0.5)
            if failovers:
                out["failover_s"] = {"each": failovers, "cameras_of_killed_node": victim_held,
                                     "p50": round(statistics.median(failovers), 2),
                                     "max": max(failovers)}
                out["leases_taken_s"] = {"each": moved, "p50": round(statistics.median(moved), 2),
                                         "max": max(moved)}
            out["load_average_during"] = {"samples": loads, "min": min(loads),
                                          "max": max(loads)}
            out["wall_s"] = round(time.monotonic() - began)
        finally:
            await cluster.stop()
            for p in proxies.values():
                await p.stop()
            sim.terminate()
            await sim.wait()
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--cameras", type=int, default=90, help="cameras in all (3 × 30: 90)")
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--lease", type=int, default=10, help="[cluster] lease_seconds")
    ap.add_argument("--segment-seconds", type=int, default=4,
                    help="[recording] segment_seconds")
    ap.add_argument("--stream", choices=("sub", "main"), default="sub",
                    help="camsim stream recorded (sub: 640x360 512 kbit/s)")
    ap.add_argument("--max-seconds", type=float, default=1200.0,
                    help="no kill starts after this many seconds of the run")
    ap.add_argument("--load-seconds", type=float, default=30.0)
    ap.add_argument("--timeout", type=float, default=120.0, help="bound of every wait, seconds")
    ap.add_argument("--keep", metavar="DIR", help="keep the nodes' folders and logs in DIR")
    args = ap.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
