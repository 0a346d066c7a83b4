"""The server lock: ``<data_dir>/server.lock``, held (``fcntl.flock``, exclusive) while a recorder
supervisor runs, so that ``vms check`` knows whether files may be in flux and a second server on the
same data directory refuses to start instead of recording over the first one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "server.lock"


class LockHeld(RuntimeError):
    """Another process holds the server lock."""


def lock_path(data_dir: Path) -> Path:
    return data_dir / LOCK_NAME


class ServerLock:
    """An exclusive, non-blocking ``flock``; released by :meth:`release` or when the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockHeld(f"{self.path} is locked: another server is running on this data "
                           "directory") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def is_locked(data_dir: Path) -> bool:
    """True when a running server holds the lock on ``data_dir`` (tested without keeping it)."""
    path = lock_path(data_dir)
    if not path.exists():
        return False
    probe = ServerLock(path)
    try:
        probe.acquire()
    except LockHeld:
        return True
    probe.release()
    return False
