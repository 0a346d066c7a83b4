"""Exports in a cluster belong to the node that makes them (``export.node``, migration 016): an
alive node takes over only the unfinished exports of dead nodes, each once; a running export is
cancelled only through its maker. Real PostgreSQL, no cluster processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recorder.export import ExportService
from recorder.export_plan import ExportError
from vms.clock import SystemClock
from vms.cluster import db_now_us
from vms.config import load_settings
from vms.db.gateway import Gateway
from vms.db.models import Export, Node

LEASE_S = 4.0


def _service(tmp_path: Path, db_url: str, node: str, gw: Gateway) -> ExportService:
    settings = load_settings(None, env={}, overrides={
        "data_dir": tmp_path / node, "database.url": db_url, "cluster.node_name": node})
    return ExportService(gw, settings, SystemClock(), ffmpeg_exe="ffmpeg")


async def test_dead_nodes_exports_are_taken_once_by_an_alive_node(tmp_path: Path,
                                                                   cluster_db: str) -> None:
    gw = Gateway(cluster_db)
    try:
        def seed() -> dict[str, int]:
            now = db_now_us(gw.db)
            for name, beat in (("a", now), ("b", now - 60_000_000), ("c", now)):
                Node.create(name=name, advertise_url=f"http://{name}", heartbeat_us=beat)
            rows = {}
            for key, node, state in (("b_running", "b", "running"), ("b_queued", "b", "queued"),
                                     ("b_done", "b", "done"), ("c_running", "c", "running")):
                rows[key] = Export.create(state=state, camera_ids=json.dumps([1]), from_us=0,
                                          to_us=1, created_us=now, node=node).id
            return rows

        rows = gw.write_sync(seed)
        a = _service(tmp_path, cluster_db, "a", gw)
        c = _service(tmp_path, cluster_db, "c", gw)
        assert sorted(await a.adopt(LEASE_S)) == sorted([rows["b_running"], rows["b_queued"]])
        assert await c.adopt(LEASE_S) == []  # each export taken once
        states = gw.read_sync(lambda: {r.id: (r.node, r.state) for r in Export.select()})
        assert states[rows["b_running"]] == ("a", "queued")
        assert states[rows["b_queued"]] == ("a", "queued")
        assert states[rows["b_done"]] == ("b", "done")  # its file stays b's
        assert states[rows["c_running"]] == ("c", "running")  # c is alive
        assert a.queued_count() == 2

        # a running export is cancelled through its maker only
        with pytest.raises(ExportError, match="being made on node 'c'"):
            await a.cancel(None, rows["c_running"])
        # a node that is not alive itself adopts nothing
        gw.write_sync(lambda: Node.update(heartbeat_us=0).where(Node.name == "c").execute())
        gw.write_sync(lambda: Export.update(node="b", state="running").where(
            Export.id == rows["b_running"]).execute())
        assert await c.adopt(LEASE_S) == []
    finally:
        gw.close()
