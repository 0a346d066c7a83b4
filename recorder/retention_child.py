"""The scheduled retention pass in a child process of its own.

A big pass (100,000 expired segments) is Python work for tens of seconds. On a thread of the
server it holds the interpreter lock in turns with the event loop, and every API request waits
for it: the timeline's p99 doubled during a purge (bench/retention.py). In a child process the two
run side by side and only share the database, whose claims are serialised
(:func:`recorder.purge.lock_claims`).

:class:`ChildPass` starts a fresh interpreter (``spawn``: no copied threads or connections), which
opens its own database connection, runs :meth:`Purger.run_pass` and sends back the
:class:`PurgeReport`. Stopping it sets an event the child's purger checks between chunks, so a
chunk is never left half done; a child that does not end in time is killed, which the deletion's
crash safety allows (the next pass finishes its pending rows). Synchronous: call it from a thread.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from recorder.retention import CHUNK, Purger, PurgeReport, RetentionOptions
from vms.clock import Clock
from vms.config import Settings

log = logging.getLogger(__name__)

STOP_GRACE_S = 30.0
"""How long a stopped child may take to finish its chunk before it is killed."""


class RetentionChildError(RuntimeError):
    """The child process failed; the message says how (its exception, or its exit code)."""


@dataclass(frozen=True)
class _Job:
    settings: Settings
    clock: Clock
    options: RetentionOptions
    log_level: int
    chunk: int


def _child_main(job: _Job, stop: multiprocessing.connection.Connection,
                conn: multiprocessing.connection.Connection) -> None:
    """The child: one pass, its report (or its error) sent back on ``conn``; anything arriving on
    ``stop`` (or the parent closing it) stops the pass between two chunks."""
    from vms.db.gateway import Gateway

    with contextlib.suppress(OSError):  # background work: the server's requests come first
        os.nice(10)
    logging.basicConfig(level=job.log_level,
                        format="%(asctime)s %(levelname)s %(name)s[retention child]: %(message)s")
    gateway = Gateway(job.settings.database_url)
    try:
        purger = Purger(gateway, job.settings, job.clock, options=job.options,
                        chunk=job.chunk)

        def follow_stop() -> None:
            # a pipe, not a multiprocessing.Event: setting an Event whose waiter has exited
            # blocks the setter forever
            with contextlib.suppress(EOFError, OSError):
                stop.recv()
            purger.stop_event.set()

        threading.Thread(target=follow_stop, daemon=True, name="retention-stop").start()
        try:
            conn.send(("ok", purger.run_pass()))
        except Exception as exc:  # sent to the parent, which logs it with the pass
            log.exception("retention pass failed")
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        gateway.close()
        conn.close()


class ChildPass:
    """Runs passes in child processes, one at a time; :meth:`stop` ends the running one."""

    def __init__(self, settings: Settings, clock: Clock, options: RetentionOptions, *,
                 chunk: int = CHUNK) -> None:
        self.job = _Job(settings, clock, options, logging.getLogger().getEffectiveLevel(), chunk)
        self._ctx = multiprocessing.get_context("spawn")
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._stop_sender: multiprocessing.connection.Connection | None = None

    def run(self) -> PurgeReport:
        """One pass in a new child process; its report. Blocks until the child ends."""
        if self._stopping.is_set():
            return PurgeReport()
        receiver, sender = self._ctx.Pipe(duplex=False)
        stop_receiver, stop_sender = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(target=_child_main, args=(self.job, stop_receiver, sender),
                                 name="vms-retention", daemon=True)
        proc.start()
        sender.close()
        stop_receiver.close()
        with self._lock:
            self._stop_sender = stop_sender
        if self._stopping.is_set():
            self._send_stop()
        try:
            result = self._wait(proc, receiver)
        finally:
            with self._lock:
                self._stop_sender = None
            stop_sender.close()
            receiver.close()
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        status, value = result
        if status != "ok":
            raise RetentionChildError(f"retention pass in a child process failed: {value}")
        assert isinstance(value, PurgeReport)
        return value

    def _wait(self, proc: Any, receiver: multiprocessing.connection.Connection) -> tuple[str, Any]:
        killed_at: float | None = None
        while True:
            if receiver.poll(0.2):
                try:
                    result: tuple[str, Any] = receiver.recv()
                    return result
                except EOFError:
                    pass  # the child ended without an answer: its exit code says why
            if not proc.is_alive() and not receiver.poll(0):
                return ("error", f"the child process ended with exit code {proc.exitcode}"
                        + (" (killed: it did not stop in time)" if killed_at else ""))
            if self._stopping.is_set():
                if killed_at is None:
                    killed_at = time.monotonic() + STOP_GRACE_S
                elif time.monotonic() > killed_at and proc.is_alive():
                    log.error("retention: the pass did not stop within %.0f s; killing it",
                              STOP_GRACE_S)
                    proc.kill()

    def stop(self) -> None:
        """End the running pass between two chunks (the child checks between chunks); no new
        pass starts afterwards."""
        self._stopping.set()
        self._send_stop()

    def _send_stop(self) -> None:
        with self._lock:
            if self._stop_sender is not None:
                with contextlib.suppress(OSError):
                    self._stop_sender.send("stop")
