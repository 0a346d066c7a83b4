"""The database gateway: the only door to the database for the rest of the server.

It opens SQLite (WAL, busy timeout, foreign keys) or PostgreSQL (psycopg 3) from a URL, binds the
models to it, applies migrations, and runs work off the event loop: reads on a small thread pool,
writes on one writer thread (``BEGIN IMMEDIATE`` on SQLite) so writes are serialised and readers
never see a half-made change.
"""

from __future__ import annotations

import asyncio
import logging
import select
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import peewee as pw
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

from vms.db.models import ALL_MODELS
from vms.fsmode import PRIVATE_DIR_MODE, private_file

log = logging.getLogger(__name__)

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"

READ_THREADS = 4
# connections are pooled: opening one per read cost ~5 ms on PostgreSQL (more under load); one for
# each reader thread, the writer, and callers on other threads (CLI, start-up)
POOL_SIZE = READ_THREADS + 4


class DatabaseError(Exception):
    """The database cannot be opened or migrated; the message says why."""


def redact_db_url(url: str) -> str:
    """The URL with any password removed, for logs."""
    parsed = urlparse(url)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
        return parsed._replace(netloc=netloc).geturl()
    return url


def open_database(url: str) -> pw.Database:
    """A peewee database for ``url`` (``sqlite:///path`` or ``postgresql://user@host:port/db``)."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        if not url.startswith("sqlite:///"):
            raise DatabaseError(f"database url {url!r}: write sqlite:///relative/path or "
                                "sqlite:////absolute/path")
        path = unquote(url[len("sqlite:///"):])
        if path != ":memory:":
            Path(path).parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
            private_file(Path(path))  # 0600 before SQLite opens it: -wal and -shm copy its mode
        return PooledSqliteDatabase(
            path,
            max_connections=POOL_SIZE,
            stale_timeout=300,
            pragmas={
                "journal_mode": "wal",
                "busy_timeout": 10_000,
                "foreign_keys": 1,
                "synchronous": "normal",
            },
            check_same_thread=False,
        )
    if parsed.scheme in ("postgresql", "postgres"):
        return _PostgresPool(
            parsed.path.lstrip("/") or "postgres",
            max_connections=POOL_SIZE,
            stale_timeout=300,
            user=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            host=parsed.hostname or None,
            port=parsed.port or None,
            prefer_psycopg3=True,
            autoconnect=True,
        )
    raise DatabaseError(
        f"database url {redact_db_url(url)!r}: unsupported scheme {parsed.scheme!r} "
        "(use sqlite:///path or postgresql://user@host/db)")


class _PostgresPool(PooledPostgresqlDatabase):  # type: ignore[misc]
    """peewee's pool checks every PostgreSQL connection it hands out with a ``SELECT 1`` round
    trip, under the pool's lock: one statement in three of a recording node's (bench/cluster.py)
    and a network wait serialising every thread's database calls. An idle connection whose socket
    has nothing to read is handed out as it is; one with something pending (the server closing
    it, a termination notice) or not idle gets peewee's full check, as before."""

    def _is_closed(self, conn: Any) -> bool:
        if conn.closed:
            return True
        if (self._adapter.txn_status(conn) == self._adapter.txn_idle
                and not socket_pending(conn.fileno())):
            return False
        return bool(super()._is_closed(conn))


def socket_pending(fd: int) -> bool:
    """True when the socket has data, an error or a hang-up pending (no waiting; ``poll``, so
    any descriptor number works, unlike ``select`` past 1024)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


def migrate(db: pw.Database, migrations_dir: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every pending migration; returns the names applied."""
    from peewee_migrate import Router

    router = Router(db, migrate_dir=str(migrations_dir), ignore=["basemodel"],
                    logger=logging.getLogger("vms.migrations"))
    pending = list(router.diff)
    if not pending:
        return pending
    sqlite = isinstance(db, pw.SqliteDatabase)
    if sqlite:
        # SQLite can change a table only by rebuilding it; with foreign keys on, dropping the old
        # table would cascade-delete every child row. The pragma is a no-op inside a transaction,
        # so it is set here, around the migrations, and the keys are checked before turning it on.
        db.execute_sql("PRAGMA foreign_keys = OFF")
    try:
        router.run()
        if sqlite:
            broken = db.execute_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise DatabaseError(f"after migrations {', '.join(pending)}: foreign keys broken "
                                    f"in {sorted({row[0] for row in broken})}")
    finally:
        if sqlite:
            db.execute_sql("PRAGMA foreign_keys = ON")
    return pending


class Gateway:
    """Owns one database connection setup and the threads that use it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.db = open_database(url)
        self.db.bind(list(ALL_MODELS), bind_refs=False, bind_backrefs=False)
        self.is_sqlite = isinstance(self.db, pw.SqliteDatabase)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-write")
        self._readers = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="db-read")

    def connect_check(self) -> None:
        try:
            self.db.connect(reuse_if_open=True)
        except pw.OperationalError as exc:
            raise DatabaseError(f"cannot open database {redact_db_url(self.url)}: {exc}") from exc
        finally:
            if not self.db.is_closed():
                self.db.close()

    def migrate(self) -> list[str]:
        self.connect_check()
        with self.db.connection_context():
            applied = migrate(self.db)
        if applied:
            log.info("database %s: applied migrations %s", redact_db_url(self.url), ", ".join(applied))
        return applied

    # --- sync helpers (for the CLI and threads) ---
    def write_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in one write transaction, on the calling thread."""
        with self.db.connection_context():
            if self.is_sqlite:
                with self.db.atomic("IMMEDIATE"):
                    return fn(*args, **kwargs)
            with self.db.atomic():
                return fn(*args, **kwargs)

    def write_blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in one write transaction on the single writer thread and wait for it — for
        long jobs on other threads (retention), so their short transactions take turns with the
        server's writes instead of contending for the database lock. Never call it from the
        writer thread or the event loop."""
        return self._writer.submit(self.write_sync, fn, *args, **kwargs).result()

    def read_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self.db.connection_context():
            return fn(*args, **kwargs)

    # --- async API (for the server) ---
    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in a write transaction on the single writer thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, lambda: self.write_sync(fn, *args, **kwargs))

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on a reader thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, lambda: self.read_sync(fn, *args, **kwargs))

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        if not self.db.is_closed():
            self.db.close()
        self.db.close_all()
