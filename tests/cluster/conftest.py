"""A cluster on loopback for the scale-out tests: real ``vms serve`` nodes (tests/serve_process.py)
sharing a fresh PostgreSQL database per test, camsim cameras seeded straight into the database
(one shared camera-password key file, as a real cluster needs), each node with a storage volume of
its own, and a TCP proxy the test can cut between a node and the database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from recorder.volumes import database_uuid, mark_volume
from tests.conftest import PG_ADMIN_URL, _pg_url
from tests.core.test_serve import free_port
from tests.serve_process import ServeProcess
from vms.auth import Accounts
from vms.clock import SystemClock
from vms.config import Volume
from vms.db.gateway import Gateway
from vms.db.models import Camera, CameraLease, CameraStream, Run, Segment, Site
from vms.secrets import SecretBox

PASSWORD = "cluster-test-pw-4"
LEASE_S = 4


@pytest.fixture
def cluster_db() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test alone."""
    name = f"vms_cluster_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = _pg_url(PG_ADMIN_URL, name)
    gw = Gateway(url)
    gw.migrate()
    gw.close()
    try:
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class TcpProxy:
    """Forwards loopback TCP to ``target``; :meth:`cut` resets every connection and refuses new
    ones (a partition between a node and the database), :meth:`heal` lets them through again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cut_now = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_now:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()
            self._writers.discard(dst)

        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def cut(self) -> None:
        self.cut_now = True
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    def heal(self) -> None:
        self.cut_now = False

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class Cluster:
    """N nodes (``a``, ``b``, …) over one database and a camsim fleet seeded into it."""

    def __init__(self, root: Path, db_url: str, fleet: Any) -> None:
        self.root, self.db_url, self.fleet = root, db_url, fleet
        self.gw = Gateway(db_url)
        self.nodes: dict[str, ServeProcess] = {}
        self.camera_ids: list[int] = []
        self.control: dict[int, str] = {}  # camera id → camsim control URL
        self.volume_of: dict[str, Path] = {}

    def add_node(self, name: str, *, db_url: str | None = None, lease_s: int = LEASE_S,
                 segment_s: int = 2) -> ServeProcess:
        port = free_port()
        folder = self.root / name
        (folder / "data").mkdir(parents=True)
        (folder / "rec").mkdir()
        self.volume_of[f"vol-{name}"] = folder / "rec"
        config = folder / "vms.toml"
        config.write_text(
            f'data_dir = "data"\n[server]\nport = {port}\n'
            f'[database]\nurl = "{db_url or self.db_url}"\n'
            f'[recording]\nsegment_seconds = {segment_s}\n'
            f'[cluster]\nnode_name = "{name}"\nlease_seconds = {lease_s}\n'
            f'[[storage.volumes]]\nname = "vol-{name}"\npath = "rec"\n')
        first = next(iter(self.nodes.values()), None)
        key = folder / "data" / "secret.key"
        if first is None:
            SecretBox.from_key_file(key)  # made here; every node gets a copy
        else:
            shutil.copy(first.config.parent / "data" / "secret.key", key)
        db_uuid = self.gw.write_sync(database_uuid)
        mark_volume(Volume(name=f"vol-{name}", path=folder / "rec"), db_uuid,
                    int(time.time() * 1e6))  # `vms storage init`
        node = ServeProcess(config, port)
        self.nodes[name] = node
        return node

    def seed(self, stream: str = "main") -> None:
        """A site, an administrator and every camsim camera, recording camsim's ``stream``
        (``sub``: 640×360 at 512 kbit/s, a lighter load than ``main``'s 1080p at 4 Mbit/s)."""
        box = SecretBox.from_key_file(next(iter(self.nodes.values())).config.parent / "data"
                                      / "secret.key")
        accounts = Accounts(SystemClock())

        def write() -> list[int]:
            now = int(time.time() * 1e6)
            site = Site.create(name="S", created_us=now)
            accounts.create_user("admin1", PASSWORD, "admin")
            ids = []
            for cam in self.fleet.cameras:
                info = cam.info()
                row = Camera.create(site=site, name=info["name"], username=info["username"],
                                    onvif_url=info["onvif_url"],
                                    password_enc=box.encrypt(info["password"]),
                                    status_since_us=now, created_us=now, updated_us=now)
                CameraStream.create(camera=row, kind="main", rtsp_url=info["rtsp"][stream])
                self.control[int(row.id)] = info["control_url"]
                ids.append(int(row.id))
            return ids

        self.camera_ids = self.gw.write_sync(write)

    async def sessions(self) -> dict[int, int]:
        """camera id → RTSP sessions camsim serves now (its control API's ``/state``)."""
        async with aiohttp.ClientSession() as http:
            async def one(cid: int) -> tuple[int, int]:
                async with http.get(f"{self.control[cid]}/state") as resp:
                    return cid, int((await resp.json())["rtsp_sessions"])

            return dict(await asyncio.gather(*(one(c) for c in self.camera_ids)))

    def holders(self) -> dict[int, str]:
        """camera id → node holding its lease now (database clock), '' when none."""
        def read() -> dict[int, str]:
            now = self.gw.db.execute_sql("SELECT (extract(epoch from clock_timestamp()) "
                                         "* 1000000)::bigint").fetchone()[0]
            return {cid: (node if exp > now else "") for cid, node, exp in
                    CameraLease.select(CameraLease.camera, CameraLease.node,
                                       CameraLease.expires_us).tuples()}
        return self.gw.read_sync(read)

    def open_runs(self) -> dict[int, set[str]]:
        """camera id → nodes with an open run of its main stream."""
        out: dict[int, set[str]] = {c: set() for c in self.camera_ids}
        for cid, node in self.gw.read_sync(lambda: list(
                Run.select(Run.camera, Run.node).where(Run.end_us.is_null()).tuples())):
            out.setdefault(cid, set()).add(node)
        return out

    def segments(self) -> list[tuple[int, int, int, str, str, str]]:
        """(camera, start, end, volume, path, node) of every indexed segment."""
        return self.gw.read_sync(lambda: list(
            Segment.select(Segment.camera, Segment.start_us, Segment.end_us, Segment.volume,
                           Segment.path, Run.node).join(Run).order_by(Segment.camera,
                                                                      Segment.start_us).tuples()))

    async def wait(self, what: str, timeout_s: float,
                   check: Callable[[], Any], interval_s: float = 0.25) -> float:
        """Poll ``check`` (sync or async) until truthy; the seconds it took."""
        start = time.monotonic()
        last: Any = None
        while time.monotonic() - start < timeout_s:
            last = check()
            if asyncio.iscoroutine(last):
                last = await last
            if last:
                return time.monotonic() - start
            await asyncio.sleep(interval_s)
        logs = "\n".join(f"--- {n}:\n" + "\n".join(
            line for line in p.log_tail(200_000).splitlines()
            if "apscheduler" not in line and "INFO" not in line)[-3000:]
            for n, p in self.nodes.items())
        state = (f"holders {self.holders()}\nopen runs {self.open_runs()}\n"
                 f"sessions {await self.sessions()}")
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what}\n{state}\n{logs}")

    def recording_since_take(self) -> set[int]:
        """Cameras whose status is ``recording`` since their lease was last taken: written by
        the holder once its ffmpeg got media (only the holder writes a camera's status), so the
        one RTSP session camsim counts is the holder's, not a previous holder's still closing."""
        def read() -> set[int]:
            return {cid for (cid,) in self.gw.db.execute_sql(
                "SELECT c.id FROM camera c JOIN camera_lease l ON l.camera_id = c.id "
                "WHERE c.status = 'recording' AND c.status_since_us >= l.taken_us").fetchall()}
        return self.gw.read_sync(read)

    async def recorded_once(self, nodes: set[str]) -> bool:
        """Every camera: one RTSP session, its lease held by one of ``nodes``, exactly one open
        run, by that same node, which has been recording it since it took the lease (camsim and
        the index agree)."""
        holders = self.holders()
        runs = self.open_runs()
        recording = self.recording_since_take()
        if not all(holders.get(c) in nodes and runs.get(c) == {holders[c]} and c in recording
                   for c in self.camera_ids):
            return False  # camsim is asked only when the index agrees (a light poll)
        sessions = await self.sessions()
        return all(sessions[c] == 1 for c in self.camera_ids)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for node in self.holders().values():
            out[node] = out.get(node, 0) + 1
        return out

    async def stop(self) -> None:
        await asyncio.gather(*(n.stop() for n in self.nodes.values()), return_exceptions=True)
        self.gw.close()


async def verify_export(http: aiohttp.ClientSession, export_id: int, clip: Path) -> None:
    """Fetch the export's manifest beside ``clip`` (already downloaded) and check both with
    ``vms verify``, as a user receiving the evidence would."""
    async with http.get(f"/api/v1/exports/{export_id}/manifest") as resp:
        assert resp.status == 200, await resp.text()
        clip.with_name(clip.name + ".manifest.json").write_bytes(await resp.read())
    verify = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vms.cli", "verify", str(clip), "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await verify.communicate()
    assert verify.returncode == 0, (out.decode(), err.decode())
    assert json.loads(out)["ok"] is True


def no_overlap(segments: list[tuple[int, int, int, str, str, str]],
               tolerance_us: int = 300_000) -> list[str]:
    """Pairs of segments of one camera whose times overlap (beyond rounding of the run clocks)."""
    bad = []
    prev: dict[int, tuple[int, int, int, str, str, str]] = {}
    for seg in segments:
        before = prev.get(seg[0])
        if before is not None and seg[1] < before[2] - tolerance_us:
            bad.append(f"camera {seg[0]}: {before[4]} ({before[5]}) [{before[1]}, {before[2]}) "
                       f"and {seg[4]} ({seg[5]}) [{seg[1]}, {seg[2]})")
        if before is None or seg[2] > before[2]:
            prev[seg[0]] = seg
    return bad


@pytest.fixture
async def cluster_factory(tmp_path: Path, cluster_db: str,
                          camsim_factory: Any) -> AsyncIterator[Callable[..., Any]]:
    made: list[Cluster] = []

    async def make(cameras: int) -> Cluster:
        fleet = await camsim_factory(count=cameras)
        cluster = Cluster(tmp_path, cluster_db, fleet)
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            await cluster.stop()
