"""The lease protocol on a real PostgreSQL, without ffmpeg: a node whose database session is gone
(its session lock free) loses its leases after half a lease of silence, not a whole one; a node
whose session lives keeps them however late its heartbeat; a node whose own session is young takes
only expired leases; and a node cut off from the database stops recording before another takes its
cameras (self-fencing comes first)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg

from tests.cluster.conftest import TcpProxy
from vms.cluster import DB_NOW_US, NODE_LOCK_CLASS, NodeConfig, hold_node_lock, register, tick
from vms.cluster_node import ClusterNode
from vms.db.gateway import Gateway
from vms.db.models import Camera, Site

LEASE_S = 4


def _cameras(url: str, count: int) -> list[int]:
    gw = Gateway(url)

    def write() -> list[int]:
        now = int(time.time() * 1e6)
        site = Site.create(name="S", created_us=now)
        return [int(Camera.create(site=site, name=f"cam{i}", status_since_us=now, created_us=now,
                                  updated_us=now).id) for i in range(count)]

    try:
        return gw.write_sync(write)
    finally:
        gw.close()


def _config(name: str, url: str) -> NodeConfig:
    return NodeConfig(name=name, advertise_url="", max_cameras=0, lease_s=LEASE_S,
                      volumes=(f"vol-{name}",), database_url=url)


def _sql(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def test_a_dead_session_is_taken_from_after_half_a_lease(cluster_db: str) -> None:
    url = cluster_db
    cams = _cameras(url, 6)
    a, b = _config("a", url), _config("b", url)
    conn_a = psycopg.connect(url, autocommit=True)
    conn_b = psycopg.connect(url, autocommit=True)
    try:
        assert hold_node_lock(conn_a, register(conn_a, a))
        b_id = register(conn_b, b)
        assert hold_node_lock(conn_b, b_id)
        assert not hold_node_lock(conn_a, b_id)  # b's lock is b's session's alone
        tick(conn_a, a)
        b_held = tick(conn_b, b).held
        assert len(b_held) == 3 and len(tick(conn_a, a).held) == 3
        _sql(url, "INSERT INTO run (camera_id, uuid, stream, start_us, end_reason, mode, node) "
                  "VALUES (%s, 'r1', 'main', 1, '', 'continuous', 'b')", (min(b_held),))
        # long leases: only the session rule can move them in this test
        _sql(url, f"UPDATE camera_lease SET expires_us = {DB_NOW_US} + 600000000 "
                  "WHERE node = 'b'")

        def b_heartbeat_age(seconds: float) -> None:
            _sql(url, f"UPDATE node SET heartbeat_us = {DB_NOW_US} - %s WHERE name = 'b'",
                 (int(seconds * 1e6),))

        # b silent for 3 s (well past half a lease) but its session lives: a slow node, kept
        b_heartbeat_age(3)
        r = tick(conn_a, a, early=True)
        assert (len(r.held), r.dead, r.taken, r.recheck_s) == (3, [], {}, None)

        conn_b.close()  # b's process dies: PostgreSQL ends its backend, its lock goes with it
        deadline = time.monotonic() + 10
        while True:
            b_heartbeat_age(0.5)
            if (r := tick(conn_a, a, early=True)).recheck_s is not None:
                break
            assert r.taken == {} and time.monotonic() < deadline, "b's backend never ended"
            time.sleep(0.05)
        # its session is gone but it beat 0.5 s ago: not yet, but a looks again when it may
        assert r.taken == {} and r.dead == [] and 0 < r.recheck_s <= LEASE_S / 2 - 0.5

        b_heartbeat_age(LEASE_S / 2 + 0.2)
        # a's own session is young (a database restart): only expired leases, none here
        r = tick(conn_a, a, early=False)
        assert (r.taken, r.dead, r.target) == ({}, [], 3)
        r = tick(conn_a, a, early=True)
        assert r.dead == ["b"] and r.target == 6 and set(r.taken) == set(b_held)
        assert set(r.taken.values()) == {"node_lost"} and sorted(r.held) == cams
        assert all(r.held[c] == b_held[c] + 1 for c in b_held)  # the epoch moved on: fencing
        run = _sql(url, "SELECT end_reason, end_us FROM run WHERE uuid = 'r1'")[0]
        assert run == ("node_lost", 1)
    finally:
        conn_a.close()
        conn_b.close()


async def test_a_node_cut_off_stops_recording_before_its_cameras_are_taken(
        cluster_db: str) -> None:
    url = cluster_db
    _cameras(url, 4)
    proxy = TcpProxy(5432)
    await proxy.start()
    events: list[tuple[float, str, str, list[int]]] = []

    def recorder(node: str, what: str) -> Any:
        async def callback(ids: list[int]) -> None:
            events.append((time.monotonic(), node, what, ids))
        return callback

    nodes = []
    for name in ("a", "p"):
        db = url if name == "a" else "postgresql://postgres@127.0.0.1:{}/{}".format(
            proxy.port, url.rpartition("/")[2])
        nodes.append(ClusterNode(_config(name, db), on_taken=recorder(name, "taken"),
                                 on_lost=recorder(name, "lost")))
    a, p = nodes
    try:
        await a.start()
        started = time.monotonic()
        await p.start()
        deadline = started + 20
        while not (len(a.held) == 2 and len(p.held) == 2):
            assert time.monotonic() < deadline, (a.held, p.held)
            await asyncio.sleep(0.1)
        p_cams = set(p.held)
        # a may take early only once its own session is a lease old
        await asyncio.sleep(max(0.0, started + LEASE_S + 0.2 - time.monotonic()))
        proxy.cut()
        cut = time.monotonic()
        deadline = cut + LEASE_S * 3
        while not p_cams <= set(a.held):
            assert time.monotonic() < deadline, (a.held, p.held, events)
            await asyncio.sleep(0.05)
        took = time.monotonic() - cut
        await asyncio.sleep(0.2)  # the callbacks run on this loop
        stopped = [t for t, n, what, ids in events if t > cut and n == "p" and what == "lost"
                   and p_cams <= set(ids)]
        taken = [t for t, n, what, ids in events if t > cut and n == "a" and what == "taken"
                 and set(ids) & p_cams]
        assert stopped and taken and stopped[0] < taken[0] and p.held == {}, events
        # before the leases would have expired: the session rule, not the lease's lapse
        assert took < LEASE_S, f"took {took:.1f}s"
        reasons = _sql(url, "SELECT DISTINCT reason FROM camera_lease WHERE camera_id = ANY(%s)",
                       (list(p_cams),))
        assert reasons == [("node_lost",)]

        proxy.heal()  # p comes back: a new session holding its lock again
        ticks, deadline = p.ticks, time.monotonic() + LEASE_S * 3
        while not (p.ticks > ticks and _sql(
                url, "SELECT 1 FROM pg_locks l JOIN node n ON l.objid = n.id WHERE n.name = 'p' "
                     "AND l.locktype = 'advisory' AND l.classid = %s AND l.granted",
                (NODE_LOCK_CLASS,))):
            assert time.monotonic() < deadline, "p did not reconnect"
            await asyncio.sleep(0.1)
    finally:
        await asyncio.gather(a.stop(), p.stop(), return_exceptions=True)
        await proxy.stop()
