"""Scale-out: this server as one node of a cluster sharing one PostgreSQL database.

Owns the lease protocol (docs/design/cluster.md): each node registers a ``node`` row and, every
``lease_seconds / 3``, runs one **tick** — one transaction on a connection of its own, in a thread
of its own (vms/cluster_node.py), never the gateway's writer, which a cut network would block —
that heart-beats, renews the node's camera leases, and takes expired or free ones up to its share
(``SELECT … FOR UPDATE SKIP LOCKED``), all timed by the database's clock (``clock_timestamp()``),
never the node's. A take bumps the lease's
``epoch``: the segment index accepts a recorder's rows only while its epoch is current
(recorder/index.py), so a node cut off from the database can never index time twice. A node that
cannot renew for ``lease_seconds − tick`` stops its recorders itself (self-fencing: by then its
leases may be someone else's). A lease taken from a node that stopped heart-beating closes that
node's open runs with end reason ``node_lost`` (the timeline's gap reason). Balance is by camera
count, capped by each node's ``max_cameras``; a node over its share while another is under it hands
over up to two cameras at a time (stop the recorder first, then free the lease: reason
``handover``), so a joining node fills gradually. ``draining`` hands every camera over.

**A dead node's session**: each node's lease connection holds a session-level advisory lock keyed
on its node id (:func:`hold_node_lock`); PostgreSQL drops it the moment that connection ends (a
killed process's socket is closed by its kernel). A tick may take the leases of a node whose lock
is free and whose heartbeat is older than ``lease / 2`` before they expire (``early``; never in the
first ``lease`` after this node's own session began, so a database restart does not make the nodes
that reconnect first take from the ones reconnecting later); the node whose session is gone stops
recording by then (vms/cluster_node.py).

Also: node-to-node request signatures (HMAC-SHA256 with the cluster secret kept in the database's
``installation`` row), and the node list for the API, the admin page and ``vms node``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import peewee as pw

from vms.db.models import CameraLease, Installation, Node

log = logging.getLogger(__name__)

DB_NOW_US = "(extract(epoch from clock_timestamp()) * 1000000)::bigint"
"""The database's clock in UTC microseconds: every lease and heartbeat time comes from it."""
SIGNATURE_WINDOW_S = 300
"""A node-to-node signature is accepted this long either side of the receiver's clock."""
FREE_TAKES_PER_TICK = 4
"""Free leases one tick takes at most (or a quarter of the node's share, when more)."""
HANDOVERS_AT_ONCE = 2
"""Cameras a node over its share hands over at the same time (started together, and more as
those finish)."""
NODE_LOCK_CLASS = 0x766D6E64
"""First key of every node's session advisory lock (``"vmnd"``); the second is the node's id."""
LEASE_CHANNEL = "vms_lease"
"""Notified when leases are freed or a node joins: every node's lease thread LISTENs on its
connection and ticks at once (a freed lease is taken, a joining node gets its first hand-overs)
instead of a tick later."""
ORPHAN_TICKS = 1.5
"""A node whose lock is free and whose heartbeat is this many ticks old is dead: its leases are
taken before they expire."""
NODE_HEADER = "X-VMS-Node"
NODE_TIME_HEADER = "X-VMS-Node-Time"
NODE_AUTH_HEADER = "X-VMS-Node-Auth"


class ClusterError(Exception):
    """This node cannot join the cluster; the message says why."""


@dataclass(frozen=True)
class NodeConfig:
    name: str
    advertise_url: str
    max_cameras: int
    lease_s: float
    volumes: tuple[str, ...]
    database_url: str

    @property
    def lease_us(self) -> int:
        return int(self.lease_s * 1_000_000)

    @property
    def tick_s(self) -> float:
        return self.lease_s / 3

    @property
    def timeout_s(self) -> float:
        """The longest one tick (or connection) may take; it fails after that."""
        return self.lease_s - self.tick_s

    @property
    def orphan_s(self) -> float:
        """Heartbeat age after which a node without a database session is taken from."""
        return self.tick_s * ORPHAN_TICKS


@dataclass
class TickResult:
    now_us: int
    held: dict[int, int]
    """camera id → epoch of every lease this node holds after the tick."""
    taken: dict[int, str] = field(default_factory=dict)
    """camera id → how it was freed before (``node_lost``, ``handover``, '')."""
    target: int = 0
    release: list[int] = field(default_factory=list)
    """Cameras to hand over: stop their recorders, then :func:`release`."""
    draining: bool = False
    dead: list[str] = field(default_factory=list)
    """Nodes found without a session and silent for ``orphan_s``: their leases were takeable."""
    recheck_s: float | None = None
    """A node's session is gone but its heartbeat is younger than ``orphan_s``: tick again in
    this many seconds (its leases become takeable then), not a whole tick later."""


def targets(nodes: Iterable[tuple[str, int]], cameras: int) -> dict[str, int]:
    """Each eligible node's share of ``cameras`` (water-filling by ``max_cameras``, 0 = no cap):
    an upper bound per node whose sum covers every camera the caps allow."""
    order = sorted(nodes, key=lambda n: (n[1] == 0, n[1], n[0]))
    out: dict[str, int] = {}
    remaining = cameras
    for i, (name, cap) in enumerate(order):
        share = math.ceil(remaining / (len(order) - i)) if remaining > 0 else 0
        out[name] = min(cap, share) if cap else share
        remaining -= out[name]
    return out


def _one(conn: Any, sql: str, params: tuple[Any, ...] = ()) -> Any:
    return conn.execute(sql, params).fetchone()


def _all(conn: Any, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    rows: list[Any] = conn.execute(sql, params).fetchall()
    return rows


def register(conn: Any, cfg: NodeConfig) -> int:
    """Insert or refresh this node's row; refuse volume names another node already uses. The
    node's id (the key of its session lock)."""
    with conn.transaction():
        now_us = (_one(conn, f"SELECT {DB_NOW_US}"))[0]
        for name, volumes in _all(conn, "SELECT name, volumes FROM node WHERE name <> %s",
                                        (cfg.name,)):
            shared = set(cfg.volumes) & {v for v in volumes.split(",") if v}
            if shared:
                raise ClusterError(
                    f"node {cfg.name!r}: storage volume {sorted(shared)[0]!r} is already node "
                    f"{name!r}'s; give each node's [[storage.volumes]] names of their own")
        row = _one(
            conn,
            "INSERT INTO node (name, advertise_url, started_us, heartbeat_us, max_cameras, volumes)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
            "advertise_url = EXCLUDED.advertise_url, started_us = EXCLUDED.started_us, "
            "heartbeat_us = EXCLUDED.heartbeat_us, max_cameras = EXCLUDED.max_cameras, "
            "volumes = EXCLUDED.volumes RETURNING id",
            (cfg.name, cfg.advertise_url, now_us, now_us, cfg.max_cameras, ",".join(cfg.volumes)))
        _notify(conn, cfg.name)
    return int(row[0])


def _notify(conn: Any, node: str) -> None:
    """Wake every node's lease thread when this transaction commits."""
    conn.execute("SELECT pg_notify(%s, %s)", (LEASE_CHANNEL, node))


def hold_node_lock(conn: Any, node_id: int) -> bool:
    """Take this node's session lock on ``conn`` (autocommit; held until the connection ends).
    False: another session holds it — a lingering session of this node's previous process, or
    another process under the same node name; try again next tick."""
    return bool(_one(conn, "SELECT pg_try_advisory_lock(%s, %s)", (NODE_LOCK_CLASS, node_id))[0])


def drop_node_lock(conn: Any, node_id: int) -> None:
    """Give up the session lock of a node id this session no longer stands for."""
    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (NODE_LOCK_CLASS, node_id))


def tick(conn: Any, cfg: NodeConfig, releasing: frozenset[int] = frozenset(),
         early: bool = False) -> TickResult:
    """One lease round in one transaction (see the module docstring). ``releasing``: cameras
    already being handed over (not counted, not chosen again). ``early``: this node's own session
    lock has been held for a lease, so it may take the leases of nodes whose session is gone
    before they expire."""
    me, lease_us, orphan_us = cfg.name, cfg.lease_us, int(cfg.orphan_s * 1_000_000)
    with conn.transaction():
        now_us = (_one(conn, f"SELECT {DB_NOW_US}"))[0]
        row = _one(conn, "UPDATE node SET heartbeat_us = %s WHERE name = %s "
                               "RETURNING draining", (now_us, me))
        if row is None:
            raise ClusterError(f"node {me!r}: its row was deleted; registering again")
        draining = bool(row[0])
        conn.execute("DELETE FROM camera_lease WHERE camera_id IN "
                           "(SELECT id FROM camera WHERE archived_us IS NOT NULL)")
        conn.execute(
            "INSERT INTO camera_lease (camera_id) SELECT c.id FROM camera c "
            "WHERE c.archived_us IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM camera_lease l WHERE l.camera_id = c.id) "
            "ON CONFLICT (camera_id) DO NOTHING")
        held = dict(_all(conn, "UPDATE camera_lease SET expires_us = %s WHERE node = %s "
                                     "RETURNING camera_id, epoch", (now_us + lease_us, me)))
        # a live peer's session holds its lock: the shared try fails. Free means its connection
        # ended (crash, kill, cut): a try that succeeds is released at commit
        nodes = _all(conn, "SELECT name, max_cameras, draining, heartbeat_us, CASE WHEN %s "
                           "AND name <> %s AND heartbeat_us > %s THEN "
                           "pg_try_advisory_xact_lock_shared(%s, id) ELSE false END FROM node",
                     (early, me, now_us - lease_us, NODE_LOCK_CLASS))
        counts = dict(_all(conn, "SELECT node, count(*) FROM camera_lease WHERE node <> '' "
                                       "AND expires_us > %s GROUP BY node", (now_us,)))
        cameras = (_one(conn, "SELECT count(*) FROM camera_lease"))[0]
        dead = [n for n, _, _, beat, gone in nodes if gone and beat <= now_us - orphan_us]
        waits = [beat + orphan_us - now_us for _, _, _, beat, gone in nodes
                 if gone and beat > now_us - orphan_us]
        eligible = [(n, cap) for n, cap, drain, beat, _ in nodes
                    if not drain and beat > now_us - lease_us and n not in dead]
        shares = targets(eligible, cameras)
        target = 0 if draining else shares.get(me, 0)
        result = TickResult(now_us=now_us, held=held, target=target, draining=draining,
                            dead=dead, recheck_s=min(waits) / 1e6 if waits else None)
        mine = len(set(held) - releasing)
        if mine < target:
            # a dead node's cameras (expired, or its session gone) are taken at once; free ones
            # (a cold start, a hand-over) a few a tick, so nodes starting together share them
            # without hand-overs
            free = _all(conn, "SELECT camera_id FROM camera_lease WHERE node <> '' AND "
                                "(expires_us <= %s OR node = ANY(%s)) ORDER BY camera_id "
                                "LIMIT %s FOR UPDATE SKIP LOCKED", (now_us, dead, target - mine))
            if len(free) < target - mine:
                free += _all(conn, "SELECT camera_id FROM camera_lease WHERE node = '' AND "
                                   "expires_us <= %s ORDER BY camera_id LIMIT %s "
                                   "FOR UPDATE SKIP LOCKED", (now_us, min(
                                       target - mine - len(free),
                                       max(FREE_TAKES_PER_TICK, target // 4))))
            ids = [r[0] for r in free]
            if ids:
                taken = _all(
                    conn, "UPDATE camera_lease SET epoch = epoch + 1, expires_us = %s, "
                          "taken_us = %s, reason = CASE WHEN node <> '' THEN 'node_lost' "
                          "ELSE reason END, node = %s WHERE camera_id = ANY(%s) "
                          "RETURNING camera_id, epoch, reason",
                    (now_us + lease_us, now_us, me, ids))
                lost = [cid for cid, _, reason in taken if reason == "node_lost"]
                if lost:  # the runs a dead (or cut-off) node left open end where its footage does
                    conn.execute(
                        "UPDATE run SET end_reason = 'node_lost', end_us = COALESCE("
                        "(SELECT max(s.end_us) FROM segment s WHERE s.run_id = run.id), "
                        "run.start_us) WHERE camera_id = ANY(%s) AND end_us IS NULL "
                        "AND node <> %s", (lost, me))
                for cid, epoch, reason in taken:
                    held[cid] = epoch
                    result.taken[cid] = reason
        elif mine > target:
            under = any(counts.get(n, 0) < shares[n] for n, _ in eligible if n != me)
            if draining or (under and len(releasing) < HANDOVERS_AT_ONCE):
                spare = sorted(set(held) - releasing, reverse=True)
                result.release = spare[:mine - target] if draining else spare[:min(
                    mine - target, HANDOVERS_AT_ONCE - len(releasing))]
    return result


def release(conn: Any, cfg: NodeConfig, camera_ids: list[int]) -> list[int]:
    """Free these leases of this node for another to take (after their recorders stopped)."""
    with conn.transaction():
        rows = _all(conn, "UPDATE camera_lease SET node = '', expires_us = 0, "
                                "reason = 'handover' WHERE camera_id = ANY(%s) AND node = %s "
                                "RETURNING camera_id", (camera_ids, cfg.name))
        if rows:
            _notify(conn, cfg.name)
    return [r[0] for r in rows]


def leave(conn: Any, cfg: NodeConfig) -> None:
    """A clean stop: every lease freed at once (``handover``), the node no longer alive."""
    with conn.transaction():
        conn.execute("UPDATE camera_lease SET node = '', expires_us = 0, "
                           "reason = 'handover' WHERE node = %s", (cfg.name,))
        conn.execute("UPDATE node SET heartbeat_us = 0 WHERE name = %s", (cfg.name,))
        _notify(conn, cfg.name)


# --- node-to-node credentials ----------------------------------------------------------------

def cluster_secret() -> bytes:
    """The cluster's signing key (made on first use; a write transaction)."""
    Installation.update(cluster_secret=secrets.token_hex(32)).where(
        Installation.cluster_secret == "").execute()
    row = Installation.select(Installation.cluster_secret).order_by(Installation.id).first()
    if row is None:
        raise ClusterError("the database has no installation row (run `vms migrate`)")
    return bytes.fromhex(row.cluster_secret)


def sign(secret: bytes, node: str, method: str, path_qs: str, at_s: int) -> str:
    message = f"{node}\n{method.upper()}\n{path_qs}\n{at_s}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def signed_headers(secret: bytes, node: str, method: str, path_qs: str,
                   now_s: int | None = None) -> dict[str, str]:
    at_s = int(time.time()) if now_s is None else now_s
    return {NODE_HEADER: node, NODE_TIME_HEADER: str(at_s),
            NODE_AUTH_HEADER: sign(secret, node, method, path_qs, at_s)}


def verify(secret: bytes, headers: Any, method: str, path_qs: str,
           now_s: int | None = None) -> str | None:
    """The calling node's name when the headers carry a valid signature of this request."""
    node, at, given = (headers.get(NODE_HEADER), headers.get(NODE_TIME_HEADER),
                       headers.get(NODE_AUTH_HEADER))
    if not node or not at or not given or not at.isdigit():
        return None
    now = int(time.time()) if now_s is None else now_s
    if abs(now - int(at)) > SIGNATURE_WINDOW_S:
        return None
    expected = sign(secret, node, method, path_qs, int(at))
    return node if hmac.compare_digest(expected, given) else None


async def fetch_segment(gateway: Any, secret: bytes, node: str, camera_id: int, segment_id: int,
                        dest: Path) -> None:
    """Copy segment ``segment_id`` of ``camera_id`` from the node whose volume holds it to
    ``dest`` (an export made on this node of footage recorded on another), through the owner's
    media route with a signed node-to-node request. Raises OSError naming the node on failure."""
    import aiohttp

    from vms.db.models import Segment

    volume = await gateway.read(lambda: Segment.select(Segment.volume).where(
        Segment.id == segment_id).scalar())
    owners = await gateway.read(volume_nodes)
    if volume not in owners:
        raise OSError(f"segment {segment_id}: no node owns storage volume {volume!r}")
    owner, base = owners[volume]
    path_qs = f"/api/v1/cameras/{camera_id}/media/{segment_id}"
    timeout = aiohttp.ClientTimeout(total=None, connect=5, sock_read=30)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http, \
                http.get(base + path_qs, headers=signed_headers(secret, node, "GET", path_qs)) \
                as answer:
            if answer.status != 200:
                raise OSError(f"node {owner!r} answered {answer.status} for segment {segment_id}")
            with dest.open("wb") as fh:
                async for chunk in answer.content.iter_chunked(256 * 1024):
                    await asyncio.to_thread(fh.write, chunk)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise OSError(f"node {owner!r} ({base}) unreachable for segment {segment_id}: "
                      f"{exc}") from None


# --- the node list (API, admin page, CLI) ----------------------------------------------------

def db_now_us(db: pw.Database) -> int:
    return int(db.execute_sql(f"SELECT {DB_NOW_US}").fetchone()[0])


def node_list(lease_s: float) -> list[dict[str, Any]]:
    """Every node: ``name``, ``advertise_url``, ``alive``, ``draining``, ``max_cameras``,
    ``heartbeat_age_s``, ``camera_ids`` and ``epochs`` (camera id → lease epoch) of the leases
    it holds now. A read (PostgreSQL)."""
    now_us = db_now_us(Node._meta.database)
    lease_us = int(lease_s * 1_000_000)
    held: dict[str, list[tuple[int, int]]] = {}
    for cid, node, epoch in (CameraLease.select(CameraLease.camera, CameraLease.node,
                                                CameraLease.epoch)
                             .where((CameraLease.node != "") & (CameraLease.expires_us > now_us))
                             .order_by(CameraLease.camera).tuples()):
        held.setdefault(node, []).append((cid, epoch))
    out = []
    for n in Node.select().order_by(Node.name):
        mine = held.get(n.name, [])
        out.append({
            "name": n.name, "advertise_url": n.advertise_url,
            "alive": n.heartbeat_us > now_us - lease_us, "draining": bool(n.draining),
            "max_cameras": n.max_cameras, "volumes": [v for v in n.volumes.split(",") if v],
            "heartbeat_age_s": round(max(0, now_us - n.heartbeat_us) / 1e6, 1)
            if n.heartbeat_us else None,
            "camera_ids": [cid for cid, _ in mine],
            "epochs": {str(cid): epoch for cid, epoch in mine},
        })
    return out


def set_draining(name: str, draining: bool) -> bool:
    """Mark a node draining (it hands every camera over) or not; False: no such node."""
    return bool(Node.update(draining=draining).where(Node.name == name).execute())


def volume_nodes() -> dict[str, tuple[str, str]]:
    """Storage volume name → (node name, advertise_url): where another node's footage lives."""
    out: dict[str, tuple[str, str]] = {}
    for n in Node.select(Node.name, Node.advertise_url, Node.volumes):
        for v in n.volumes.split(","):
            if v:
                out[v] = (n.name, n.advertise_url)
    return out


def live_holder(camera_id: int, lease_s: float) -> tuple[str, str] | None:
    """(node name, advertise_url) of the alive node holding ``camera_id``'s lease now (database
    clock), or None when the lease is free, expired or its holder stopped heart-beating. A read:
    where live view of the camera is served (web/cluster_proxy.py)."""
    now_us = db_now_us(Node._meta.database)
    row = (CameraLease.select(CameraLease.node, Node.advertise_url)
           .join(Node, on=(Node.name == CameraLease.node))
           .where((CameraLease.camera == camera_id) & (CameraLease.node != "")
                  & (CameraLease.expires_us > now_us)
                  & (Node.heartbeat_us > now_us - int(lease_s * 1_000_000)))
           .tuples().first())
    return (row[0], row[1]) if row else None


def node_url(name: str) -> str | None:
    """A node's advertise_url (None: no such node). A read."""
    row = Node.select(Node.advertise_url).where(Node.name == name).tuples().first()
    return row[0] if row else None


def dead_nodes(lease_s: float) -> list[str]:
    """Nodes whose heartbeat lapsed more than ``lease_s`` ago (database clock). A read."""
    now_us = db_now_us(Node._meta.database)
    return [n for (n,) in Node.select(Node.name).where(
        Node.heartbeat_us <= now_us - int(lease_s * 1_000_000)).tuples()]


class ClusterCollector:
    """Prometheus figures, computed when scraped (on a gateway reader thread, like
    vms/storage_metrics.py): per node of the cluster ``vms_cluster_node_alive{node}`` and
    ``vms_cluster_node_cameras{node}`` (leases held), and this node's lease loop —
    ``vms_cluster_ticks_total``, ``vms_cluster_tick_failures_total``,
    ``vms_cluster_leases_taken_total``, ``vms_cluster_leases_lost_total``,
    ``vms_cluster_handovers_total``, ``vms_cluster_lease_target``, ``vms_cluster_tick_seconds``."""

    def __init__(self, node: Any) -> None:  # vms.cluster_node.ClusterNode
        self.node = node

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        n = self.node
        label = [n.name]
        for metric, help_text, value in (
                ("vms_cluster_ticks", "Lease ticks this node completed", n.ticks),
                ("vms_cluster_tick_failures", "Lease ticks that could not reach the database",
                 n.tick_failures),
                ("vms_cluster_leases_taken", "Camera leases this node took", n.takes),
                ("vms_cluster_leases_lost", "Camera leases this node lost or gave up unrenewed",
                 n.losses),
                ("vms_cluster_handovers", "Cameras this node handed over", n.handovers)):
            counter = CounterMetricFamily(metric, help_text, labels=["node"])
            counter.add_metric(label, value)
            yield counter
        gauges: tuple[tuple[str, str, float], ...] = (
                ("vms_cluster_lease_target", "This node's share of the cameras", n.last_target),
                ("vms_cluster_tick_seconds", "Duration of the last lease tick", n.tick_seconds))
        for metric, help_text, gauge_value in gauges:
            gauge = GaugeMetricFamily(metric, help_text, labels=["node"])
            gauge.add_metric(label, gauge_value)
            yield gauge
        try:
            nodes = node_list(n.cfg.lease_s)
        except pw.DatabaseError as exc:
            log.warning("cluster metrics left out: database unavailable (%s)", exc)
            return
        alive = GaugeMetricFamily("vms_cluster_node_alive", "1 while the node heart-beats",
                                  labels=["node"])
        cameras = GaugeMetricFamily("vms_cluster_node_cameras", "Camera leases the node holds",
                                    labels=["node"])
        for row in nodes:
            alive.add_metric([row["name"]], 1 if row["alive"] else 0)
            cameras.add_metric([row["name"]], len(row["camera_ids"]))
        yield alive
        yield cameras
