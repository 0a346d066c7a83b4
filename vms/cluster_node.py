"""This node's lease loop (the protocol is in vms/cluster.py): a thread of its own with its own
database connection, so a busy event loop or a blocked gateway writer never delays a heartbeat.

Every ``lease_seconds / 3`` (or at once after :meth:`ClusterNode.poke`) the thread frees the leases
the event loop has finished handing over, then runs one :func:`vms.cluster.tick`, and tells the
event loop what changed through the three callbacks the composition root wires to the recorder:
``on_taken(ids)`` (record them), ``on_lost(ids)`` (stop at once: the lease is gone) and
``on_release(ids)`` (stop them; the leases are freed only after it returns). A tick, or a
connection, that takes longer than ``lease − tick`` fails.

The connection holds the node's session lock (:func:`vms.cluster.hold_node_lock`), by which the
other nodes tell a dead node from a slow one, and LISTENs on :data:`vms.cluster.LEASE_CHANNEL`.
Between ticks the thread watches the connection's socket: on a notification (leases freed, a node
joined) it ticks at once; when the server ends the session (or the network resets it) it ticks at
once on a new connection, and keeps retrying every quarter tick. A tick after which a peer's
session is gone comes when that peer's leases become takeable, not a whole tick later.

**Self-fencing** (a watchdog thread of its own, so a tick blocked in the network cannot delay it):
once no tick has succeeded for ``lease − tick/2`` since the last good one began, the node stops
every recorder (half a tick later, by the database's clock, its leases may lapse); while its
session lock is not held — the connection broke, or another session has it — it does so already
one tick after, half a tick before the others may take the leases of a node without a session
(1.5 ticks)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from vms.cluster import (
    LEASE_CHANNEL,
    ClusterError,
    NodeConfig,
    drop_node_lock,
    hold_node_lock,
    register,
    release,
    tick,
)
from vms.cluster import leave as leave_cluster
from vms.db.gateway import socket_pending

log = logging.getLogger(__name__)

UNSURE_FENCE_TICKS = 1.0
"""Without its session lock a node stops recording this many ticks after its last renewal began:
half a tick before the others may take its leases (``vms.cluster.ORPHAN_TICKS``), time for its
ffmpeg to exit. (Meanwhile it ticks every quarter tick, so it renews in time while it can.)"""
POLL_S = 0.2
"""How often the lease thread looks at its connection's socket between ticks."""
GUARD_POLL_S = 0.1
"""How often the self-fencing watchdog looks at the time since the last renewal."""

Callback = Callable[[list[int]], Awaitable[None]]


class ClusterNode:
    """Owns the lease thread and what this node holds (``held``: camera id → epoch)."""

    def __init__(self, cfg: NodeConfig, *, on_taken: Callback | None = None,
                 on_lost: Callback | None = None, on_release: Callback | None = None) -> None:
        self.cfg = cfg
        self.on_taken = on_taken
        self.on_lost = on_lost
        self.on_release = on_release
        self.held: dict[int, int] = {}
        self._releasing: set[int] = set()
        self._to_release: list[int] = []
        self._conn: Any = None
        self._node_id: int | None = None
        self._locked_at: float | None = None
        """Monotonic time this connection took the node's session lock; None: not held."""
        self._lock_warned = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._guard: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._state = threading.Lock()
        """Orders the watchdog's fence against a tick's outcome (``held``, ``_renewed_at``)."""
        self._renewed_at: float | None = None
        self._tick_began: float | None = None
        """Monotonic start of the tick in progress (None between ticks): for the fence's log."""
        self.ticks = 0
        self.tick_failures = 0
        self.takes = 0
        self.losses = 0
        self.handovers = 0
        self.last_target = 0
        self.tick_seconds = 0.0

    @property
    def name(self) -> str:
        return self.cfg.name

    def releasing(self, camera_id: int) -> bool:
        """Being handed over: its recorder is stopping, then the lease is freed."""
        return camera_id in self._releasing

    def epoch_of(self, camera_id: int) -> int | None:
        """The epoch this node records ``camera_id`` under; None: not this node's camera."""
        if camera_id in self._releasing:
            return None
        return self.held.get(camera_id)

    async def start(self) -> None:
        """Register and run the first tick (so the recorder starts with this node's cameras),
        then start the thread."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._first)
        self._thread = threading.Thread(target=self._run, name="cluster-leases", daemon=True)
        self._thread.start()
        self._guard = threading.Thread(target=self._watch, name="cluster-fence", daemon=True)
        self._guard.start()

    def poke(self) -> None:
        """Tick now (a camera was added): it is recorded without waiting a whole tick."""
        self._wake.set()

    async def stop(self) -> None:
        """After the recorder stopped: free this node's leases so others take them at once."""
        self._stop.set()
        self._wake.set()
        for thread in (self._thread, self._guard):
            if thread is not None:
                await asyncio.to_thread(thread.join, self.cfg.lease_s * 2)
        try:
            await asyncio.to_thread(self._leave)
        except Exception as exc:  # noqa: BLE001 - the leases expire by themselves
            log.warning("cluster: node %s could not free its leases at stop (%s); they expire "
                        "in %gs", self.name, exc, self.cfg.lease_s)
        self.held = {}
        self._drop_connection()

    # -- the thread --------------------------------------------------------------------------

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed or self._conn.broken:
            self._drop_connection()
            timeout_ms = int(self.cfg.timeout_s * 1000)
            self._conn = psycopg.connect(
                self.cfg.database_url, autocommit=True,
                connect_timeout=max(1, int(self.cfg.timeout_s)),
                application_name=f"vms-node-{self.name}"[:63],
                options=f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}",
                tcp_user_timeout=timeout_ms, keepalives=1, keepalives_idle=1,
                keepalives_interval=1, keepalives_count=2)
            self._conn.add_notify_handler(lambda _n: self._wake.set())
            self._conn.execute(f"LISTEN {LEASE_CHANNEL}")
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        self._locked_at = None  # the session lock ends with the connection
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _hold_lock(self, conn: Any) -> None:
        if self._locked_at is not None or self._node_id is None:
            return
        if hold_node_lock(conn, self._node_id):
            self._locked_at = time.monotonic()
            self._lock_warned = False
        elif not self._lock_warned:
            self._lock_warned = True
            log.warning("cluster: node %s: another database session holds this node's lock (a "
                        "previous process's session not yet ended, or another process named %s); "
                        "until it ends, this node's death is noticed only when its leases expire",
                        self.name, self.name)

    def _session_ended(self) -> bool:
        """Between ticks only a notification (:data:`vms.cluster.LEASE_CHANNEL`) is due on the
        connection; a readable socket is one, or the server ending the session, or the network
        resetting it: tick at once either way."""
        import psycopg

        conn = self._conn
        if conn is None:
            return False
        try:
            return socket_pending(conn.fileno())
        except (OSError, ValueError, psycopg.Error):  # closed under us
            return True

    def _first(self) -> None:
        conn = self._connection()
        self._node_id = register(conn, self.cfg)
        self._hold_lock(conn)
        self._tick_once()

    def _leave(self) -> None:
        leave_cluster(self._connection(), self.cfg)

    def _run(self) -> None:
        next_at = time.monotonic() + self.cfg.tick_s
        while not self._stop.is_set():
            if self._wake.wait(min(POLL_S, max(0.0, next_at - time.monotonic()))):
                self._wake.clear()
            elif time.monotonic() < next_at and not self._session_ended():
                continue
            if self._stop.is_set():
                return
            had_connection = self._conn is not None
            recheck_s = self._guarded_tick()
            if recheck_s is None and had_connection and not self._stop.is_set():
                recheck_s = self._guarded_tick()  # the session just broke: a new one at once
            if recheck_s is None or self._locked_at is None:
                # no database, or no session lock: again soon, not a whole tick later
                recheck_s = min(recheck_s or self.cfg.tick_s, self.cfg.tick_s / 4)
            next_at = time.monotonic() + min(self.cfg.tick_s, recheck_s)

    def _guarded_tick(self) -> float | None:
        """One tick; None when it failed, else the seconds until the next one is due."""
        try:
            return self._tick_once()
        except Exception:  # never let the thread die: leases would lapse silently
            log.exception("cluster: node %s: lease tick failed", self.name)
            return None

    def _tick_once(self) -> float | None:
        import psycopg

        started = self._tick_began = time.monotonic()
        ids: list[int] = []
        try:
            conn = self._connection()
            self._hold_lock(conn)
            if self._to_release:
                ids, self._to_release = self._to_release, []
                freed = release(conn, self.cfg, ids)
                self.handovers += len(freed)
                with self._state:  # freed, or already someone else's
                    self.held = {c: e for c, e in self.held.items() if c not in ids}
                self._releasing.difference_update(ids)
                ids = []
            early = (self._locked_at is not None
                     and started - self._locked_at >= self.cfg.lease_s)
            result = tick(conn, self.cfg, frozenset(self._releasing), early=early)
        except ClusterError as exc:
            log.warning("cluster: %s", exc)
            with contextlib.suppress(Exception):
                conn = self._connection()
                node_id = register(conn, self.cfg)
                if node_id != self._node_id and self._locked_at is not None \
                        and self._node_id is not None:
                    drop_node_lock(conn, self._node_id)
                    self._locked_at = None
                self._node_id = node_id
                self._hold_lock(conn)
            return None
        except (psycopg.Error, OSError) as exc:
            self._tick_began = None
            self._to_release = ids + self._to_release  # not freed: again next tick
            self.tick_failures += 1
            if self._conn is not None and (self._conn.broken or self._conn.closed
                                           or isinstance(exc, psycopg.OperationalError)):
                self._drop_connection()  # its session lock is gone with it: see _watch
            log.warning("cluster: node %s cannot reach the database (%s)", self.name,
                        str(exc).strip() or type(exc).__name__)
            return None
        self._tick_began = None
        self.ticks += 1
        self.tick_seconds = time.monotonic() - started
        self.last_target = result.target
        with self._state:
            self._renewed_at = started
            lost = [cid for cid in self.held if cid not in result.held]
            taken = [cid for cid in result.held if self.held.get(cid) != result.held[cid]]
            self.held = dict(result.held)
        if lost:
            self.losses += len(lost)
            log.warning("cluster: node %s lost the leases of cameras %s", self.name, lost)
            self._post(self.on_lost, lost)
        if taken:
            self.takes += len(taken)
            log.info("cluster: node %s took cameras %s (%s)%s", self.name, taken,
                     ", ".join(sorted({result.taken.get(c, "") or "free" for c in taken})),
                     f"; nodes {result.dead} have no database session" if result.dead else "")
            self._post(self.on_taken, taken)
        if result.release:
            self._releasing.update(result.release)
            log.info("cluster: node %s hands over cameras %s", self.name, result.release)
            self._post(self._hand_over, result.release)
        return result.recheck_s + 0.05 if result.recheck_s is not None else self.cfg.tick_s

    # -- the watchdog thread -----------------------------------------------------------------

    def fence_after_s(self) -> float:
        """Seconds after the last renewal began when this node stops recording unrenewed: half a
        tick before its leases lapse (time for ffmpeg to exit), or sooner while its session lock
        is not held (the others may then take them at ``orphan_s``)."""
        if self._locked_at is not None:
            return self.cfg.lease_s - self.cfg.tick_s / 2
        return self.cfg.tick_s * UNSURE_FENCE_TICKS

    def _watch(self) -> None:
        while not self._stop.wait(GUARD_POLL_S):
            self._self_fence()

    def _self_fence(self) -> None:
        """No renewal in time: stop recording (others may hold the leases now)."""
        with self._state:
            if not self.held or self._renewed_at is None:
                return
            silent_s = time.monotonic() - self._renewed_at
            if silent_s < self.fence_after_s():
                return
            lost = list(self.held)
            self.held = {}
        self.losses += len(lost)
        began = self._tick_began
        log.error("cluster: node %s could not renew its leases for %.1fs (%s; %s): stopped "
                  "recording cameras %s", self.name, silent_s,
                  "its session lock held" if self._locked_at is not None else "no session lock",
                  f"a tick running for {time.monotonic() - began:.1f}s" if began is not None
                  else "no tick running", lost)
        self._post(self.on_lost, lost)

    def _post(self, fn: Callback | None, ids: list[int]) -> None:
        if fn is None or self._loop is None or self._loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            asyncio.run_coroutine_threadsafe(self._call(fn, sorted(ids)), self._loop)

    # -- on the event loop -------------------------------------------------------------------

    async def _hand_over(self, camera_ids: list[int]) -> None:
        """Stop the recorders first, then let the thread free the leases (never two nodes
        recording one camera)."""
        if self.on_release is not None:
            await self.on_release(camera_ids)
        self._to_release.extend(camera_ids)
        self._wake.set()

    async def _call(self, fn: Callback, ids: list[int]) -> None:
        try:
            await fn(ids)
        except Exception:
            log.exception("cluster: node %s: callback for cameras %s failed", self.name, ids)
            if fn == self._hand_over:
                self._releasing.difference_update(ids)
