"""Storage volumes: their marker files, their health, and the threads that touch them.

Each volume's root holds a marker file, :data:`MARKER_NAME` (JSON: ``database_uuid`` — the
``Installation.uuid`` of the database it belongs to —, ``volume`` — its name in the config —,
``marked_us``). It is written by ``vms storage init`` (:func:`mark_volume`) and, for the default
volume inside ``data_dir`` used when no volume is configured, on first start
(:func:`prepare_default_volume`). The server never creates a configured volume's root folder: an
unmounted disk leaves an empty mount point (or no folder at all) without our marker, and recording
there stops with a reason naming the volume instead of filling the root file system.

:func:`check_volume` tells a volume's health (:class:`VolumeHealth`: ``ok``, ``unmarked``,
``foreign``, ``unreadable``; free and total bytes when readable) — a blocking call.
:class:`VolumeMonitor` is what the recorder holds: every file-system call of a stream runs on its
volume's own small thread pool (:meth:`VolumeMonitor.io`), never on the event loop, and health is
probed on a separate one-thread pool per volume with a time limit, so a volume whose probe hangs
(a dead network mount) is ``unresponsive`` while the other volumes, and the event loop, go on.
Health answers are cached for ``max_age_s`` so many streams share one probe a second.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import queue
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from vms.clock import Clock
from vms.config import Settings, Volume
from vms.db.models import Installation, new_uuid
from vms.fsmode import PRIVATE_FILE_MODE, private_dir

log = logging.getLogger(__name__)

MARKER_NAME = ".vms-volume.json"
MARKER_MAX_BYTES = 64 * 1024
HealthState = Literal["ok", "unmarked", "foreign", "unreadable", "unresponsive"]
T = TypeVar("T")


class VolumeError(Exception):
    """A volume that cannot be marked (no root folder, another database's marker, …)."""


@dataclass(frozen=True)
class VolumeHealth:
    """Whether recordings may be written to a volume now, and why not."""

    volume: str
    path: str
    state: HealthState
    message: str
    """Empty when ``ok``; otherwise a sentence naming the volume and the problem."""
    free_bytes: int | None = None
    total_bytes: int | None = None

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    def as_dict(self) -> dict[str, Any]:
        return {"volume": self.volume, "path": self.path, "state": self.state,
                "message": self.message, "free_bytes": self.free_bytes,
                "total_bytes": self.total_bytes}


def database_uuid() -> str:
    """This database's identity (``Installation.uuid``), created when missing. For
    ``Gateway.write`` (migration 009 fills it; a database made from the models gets it here)."""
    row = Installation.select().order_by(Installation.id).first()
    if row is None:
        row = Installation.create(uuid=new_uuid())
    return str(row.uuid)


def _where(volume: Volume) -> str:
    return f"volume {volume.name!r} ({volume.path})"


def read_marker(root: Path) -> dict[str, Any]:
    """The marker of the volume at ``root``; FileNotFoundError when absent, OSError or ValueError
    when it cannot be read or parsed. Blocking."""
    with open(root / MARKER_NAME, "rb") as fh:
        raw = fh.read(MARKER_MAX_BYTES + 1)
    if len(raw) > MARKER_MAX_BYTES:
        raise ValueError(f"larger than {MARKER_MAX_BYTES} bytes")
    data = json.loads(raw.decode("utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("database_uuid"), str):
        raise ValueError("not a JSON object with a database_uuid")
    return data


def check_volume(volume: Volume, db_uuid: str) -> VolumeHealth:
    """The health of ``volume`` for the database ``db_uuid``. Blocking: call it off the loop."""
    where = _where(volume)

    def bad(state: HealthState, message: str) -> VolumeHealth:
        return VolumeHealth(volume.name, str(volume.path), state, message)

    try:
        if not volume.path.is_dir():
            return bad("unmarked", f"{where}: the folder does not exist (disk not mounted?); "
                                   "the server never creates a volume's folder")
        marker = read_marker(volume.path)
    except FileNotFoundError:
        return bad("unmarked", f"{where}: no {MARKER_NAME} marker (disk not mounted, or not "
                               "prepared: run `vms storage init`)")
    except (OSError, ValueError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return bad("unreadable", f"{where}: cannot read its {MARKER_NAME} marker: {detail}")
    if marker["database_uuid"] != db_uuid:
        return bad("foreign", f"{where}: marked for another database "
                              f"({marker['database_uuid'][:40]}), not this one ({db_uuid})")
    if marker.get("volume") != volume.name:
        return bad("foreign", f"{where}: marked as volume {str(marker.get('volume'))[:40]!r} "
                              "of this database (a disk mounted at another volume's path?)")
    try:
        usage = shutil.disk_usage(volume.path)
    except OSError as exc:
        return bad("unreadable", f"{where}: cannot read its free space: {exc.strerror or exc}")
    return VolumeHealth(volume.name, str(volume.path), "ok", "", usage.free, usage.total)


def mark_volume(volume: Volume, db_uuid: str, now_us: int) -> bool:
    """Write ``volume``'s marker for database ``db_uuid``: True when written, False when it was
    already ours. Never creates the root folder. Raises :class:`VolumeError` (a message naming
    the volume) for a missing root, another database's (or volume's) marker, an unreadable one."""
    where = _where(volume)
    if not volume.path.is_dir():
        raise VolumeError(f"{where}: the folder does not exist; mount the disk (or create the "
                          "folder) first — `vms storage init` never creates a volume's folder")
    try:
        marker = read_marker(volume.path)
    except FileNotFoundError:
        marker = None
    except (OSError, ValueError) as exc:
        raise VolumeError(f"{where}: an existing {MARKER_NAME} cannot be read ({exc}); "
                          "refusing to overwrite it") from None
    if marker is not None:
        if marker["database_uuid"] != db_uuid:
            raise VolumeError(f"{where}: already marked for another database "
                              f"({marker['database_uuid'][:40]}); refusing to take it over "
                              f"(remove {MARKER_NAME} by hand if that database is gone)")
        if marker.get("volume") != volume.name:
            raise VolumeError(f"{where}: already marked as volume "
                              f"{str(marker.get('volume'))[:40]!r} of this database; refusing "
                              f"(rename it in the config, or remove {MARKER_NAME} by hand)")
        return False
    body = json.dumps({"database_uuid": db_uuid, "volume": volume.name, "marked_us": now_us},
                      indent=2).encode() + b"\n"
    tmp = volume.path / f"{MARKER_NAME}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, volume.path / MARKER_NAME)
    dfd = os.open(volume.path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    log.info("%s: marked for database %s", where, db_uuid)
    return True


def is_default_volume(settings: Settings) -> bool:
    """True when no volume is configured: the one volume is ``<data_dir>/recordings``."""
    return len(settings.volumes) == 1 and settings.volumes[0].implicit


def prepare_default_volume(settings: Settings, db_uuid: str, now_us: int) -> None:
    """When no volume is configured, create ``<data_dir>/recordings`` (0700) and mark it, so a
    fresh install records with no extra step. Configured volumes are left alone. Blocking."""
    if not is_default_volume(settings):
        return
    volume = settings.volumes[0]
    private_dir(volume.path)
    mark_volume(volume, db_uuid, now_us)


class _Threads:
    """A few daemon threads running calls for one volume. Daemon, unlike a ThreadPoolExecutor's
    (which the interpreter joins at exit): a thread stuck on a dead mount must not keep the
    server from exiting."""

    def __init__(self, n: int, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...],
                                             concurrent.futures.Future[Any]] | None] = \
            queue.SimpleQueue()
        self._n = n
        for i in range(n):
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True).start()

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((fn, args, fut))
        return fut

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, args, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:  # handed to the awaiting coroutine
                fut.set_exception(exc)

    def close(self) -> None:
        for _ in range(self._n):
            self._queue.put(None)


@dataclass
class _Probe:
    pool: _Threads
    io_pool: _Threads
    pending: asyncio.Future[VolumeHealth] | None = None
    started_us: int = 0
    last: VolumeHealth | None = None
    last_us: int = 0


class VolumeMonitor:
    """Per-volume thread pools and a cached, time-limited health probe (see the module doc)."""

    def __init__(self, settings: Settings, db_uuid: str, clock: Clock, *,
                 probe_timeout_s: float = 5.0, max_age_s: float = 1.0,
                 io_threads: int = 4) -> None:
        self.settings = settings
        self.db_uuid = db_uuid
        self.clock = clock
        self.probe_timeout_s = probe_timeout_s
        self.max_age_s = max_age_s
        self._probes: dict[str, _Probe] = {}
        for vol in settings.volumes:
            self._probes[vol.name] = _Probe(_Threads(1, f"vol-{vol.name}-probe"),
                                            _Threads(io_threads, f"vol-{vol.name}-io"))

    def volume(self, name: str | None) -> Volume:
        """The volume named ``name`` (None or unknown: the first; an unknown name is logged by
        the caller)."""
        return next((v for v in self.settings.volumes if v.name == name), self.settings.volumes[0])

    async def io(self, volume: Volume, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` — a file-system call on ``volume`` — on that volume's threads."""
        return await asyncio.wrap_future(self._probes[volume.name].io_pool.submit(fn, *args))

    async def health(self, volume: Volume) -> VolumeHealth:
        """``volume``'s health, probed at most every ``max_age_s``; ``unresponsive`` when the
        probe has not answered within ``probe_timeout_s`` (it is not started again until the hung
        one returns, so a dead mount holds one thread, not one per call)."""
        p = self._probes[volume.name]
        now = self.clock.monotonic_us()
        if p.last is not None and now - p.last_us < self.max_age_s * 1e6:
            return p.last
        if p.pending is None:
            p.pending = asyncio.wrap_future(p.pool.submit(check_volume, volume, self.db_uuid))
            p.started_us = now
        pending = p.pending
        left_s = self.probe_timeout_s - (now - p.started_us) / 1e6
        try:
            health = await asyncio.wait_for(asyncio.shield(pending), max(left_s, 0.0))
        except TimeoutError:
            health = VolumeHealth(
                volume.name, str(volume.path), "unresponsive",
                f"{_where(volume)} does not answer: a check of its marker and free space has "
                f"taken more than {self.probe_timeout_s:g}s (hung mount or failing disk?)")
        else:
            if p.pending is pending:
                p.pending = None
        if health.state != (p.last.state if p.last else "ok"):
            (log.info if health.ok else log.warning)(
                "%s: %s", _where(volume), health.message or "healthy again")
        p.last, p.last_us = health, self.clock.monotonic_us()
        return health

    async def all_health(self) -> list[VolumeHealth]:
        return list(await asyncio.gather(*(self.health(v) for v in self.settings.volumes)))

    def close(self) -> None:
        """Let the threads go (a hung probe thread is abandoned, not waited for)."""
        for p in self._probes.values():
            p.pool.close()
            p.io_pool.close()
