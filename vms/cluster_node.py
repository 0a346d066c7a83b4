"""This node's lease loop (the protocol is in vms/cluster.py): a thread of its own with its own
database connection, so a busy event loop or a blocked gateway writer never delays a heartbeat.

Every ``lease_seconds / 3`` (or at once after :meth:`ClusterNode.poke`) the thread frees the leases
the event loop has finished handing over, then runs one :func:`vms.cluster.tick`, and tells the
event loop what changed through the three callbacks the composition root wires to the recorder:
``on_taken(ids)`` (record them), ``on_lost(ids)`` (stop at once: the lease is gone) and
``on_release(ids)`` (stop them; the leases are freed only after it returns). A tick, or a
connection, that takes longer than ``lease − tick`` fails; once no tick has succeeded for
``lease − tick`` since the last good one began, the node stops every recorder itself
(self-fencing): by the database's clock its leases may already be someone else's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from vms.cluster import ClusterError, NodeConfig, register, release, tick
from vms.cluster import leave as leave_cluster

log = logging.getLogger(__name__)

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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._renewed_at: float | None = None
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

    def poke(self) -> None:
        """Tick now (a camera was added): it is recorded without waiting a whole tick."""
        self._wake.set()

    async def stop(self) -> None:
        """After the recorder stopped: free this node's leases so others take them at once."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, self.cfg.lease_s * 2)
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

        if self._conn is None or self._conn.closed:
            timeout_ms = int(self.cfg.timeout_s * 1000)
            self._conn = psycopg.connect(
                self.cfg.database_url, autocommit=True,
                connect_timeout=max(1, int(self.cfg.timeout_s)),
                application_name=f"vms-node-{self.name}"[:63],
                options=f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}",
                tcp_user_timeout=timeout_ms, keepalives=1, keepalives_idle=1,
                keepalives_interval=1, keepalives_count=2)
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _first(self) -> None:
        register(self._connection(), self.cfg)
        self._tick_once()

    def _leave(self) -> None:
        leave_cluster(self._connection(), self.cfg)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.cfg.tick_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._tick_once()
            except Exception:  # never let the thread die: leases would lapse silently
                log.exception("cluster: node %s: lease tick failed", self.name)

    def _tick_once(self) -> None:
        import psycopg

        started = time.monotonic()
        try:
            conn = self._connection()
            if self._to_release:
                ids, self._to_release = self._to_release, []
                freed = release(conn, self.cfg, ids)
                self.handovers += len(freed)
                held = dict(self.held)
                for cid in ids:
                    held.pop(cid, None)
                self.held = held
                self._releasing.difference_update(ids)
            result = tick(conn, self.cfg, frozenset(self._releasing))
        except ClusterError as exc:
            log.warning("cluster: %s", exc)
            with contextlib.suppress(Exception):
                register(self._connection(), self.cfg)
            return
        except (psycopg.Error, OSError) as exc:
            self.tick_failures += 1
            self._drop_connection()
            log.warning("cluster: node %s cannot reach the database (%s)", self.name,
                        str(exc).strip() or type(exc).__name__)
            self._self_fence()
            return
        self.ticks += 1
        self.tick_seconds = time.monotonic() - started
        self._renewed_at = started
        self.last_target = result.target
        lost = [cid for cid in self.held if cid not in result.held]
        taken = [cid for cid in result.held if self.held.get(cid) != result.held[cid]]
        self.held = dict(result.held)
        if lost:
            self.losses += len(lost)
            log.warning("cluster: node %s lost the leases of cameras %s", self.name, lost)
            self._post(self.on_lost, lost)
        if taken:
            self.takes += len(taken)
            log.info("cluster: node %s took cameras %s (%s)", self.name, taken,
                     ", ".join(sorted({result.taken.get(c, "") or "free" for c in taken})))
            self._post(self.on_taken, taken)
        if result.release:
            self._releasing.update(result.release)
            log.info("cluster: node %s hands over cameras %s", self.name, result.release)
            self._post(self._hand_over, result.release)

    def _self_fence(self) -> None:
        """No renewal for ``lease − tick``: stop recording (others may hold the leases now)."""
        if not self.held or self._renewed_at is None:
            return
        silent_s = time.monotonic() - self._renewed_at
        if silent_s < self.cfg.lease_s - self.cfg.tick_s:
            return
        lost = list(self.held)
        self.held = {}
        self.losses += len(lost)
        log.error("cluster: node %s could not renew its leases for %.1fs: stopped recording "
                  "cameras %s", self.name, silent_s, lost)
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
