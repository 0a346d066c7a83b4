"""Shared fixtures: settings in a temporary folder, databases on both engines, the app.

``--db`` chooses the engines that database-backed tests run on: ``both`` (default: SQLite and the
local PostgreSQL), ``sqlite`` or ``postgresql``; a test marked ``@pytest.mark.engines("sqlite")``
runs on the engines named there only (a heavy end-to-end test whose subject is not the engine).
PostgreSQL gets a fresh database per test run (per xdist worker), created from ``VMS_TEST_PG_URL``
(default ``postgresql://postgres@127.0.0.1:5432/test``) and dropped at the end; tables are emptied
between tests. SQLite is migrated once per run into a template file that each test's database
(``db_url``, and the default ``data_dir/vms.sqlite3`` of ``settings_factory``) starts as a copy of;
tests/core/test_migrations.py migrates empty databases itself.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.leakcheck import SENSITIVE, LogCollector, register_sensitive

pytest_plugins = ["camsim.pytest_plugin"]

PG_ADMIN_URL = os.environ.get("VMS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", default="both", choices=("both", "sqlite", "postgresql"),
                     help="database engines for database-backed tests")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" in metafunc.fixturenames:
        choice = metafunc.config.getoption("--db")
        engines = ["sqlite", "postgresql"] if choice == "both" else [choice]
        marker = metafunc.definition.get_closest_marker("engines")
        if marker is not None:
            engines = [e for e in engines if e in marker.args]
        metafunc.parametrize("engine", engines, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` first, then ``browser``, then the rest (each in collection order).

    scripts/test.sh runs xdist with ``--maxschedchunk=1``, which hands tests out about one at a
    time in this order: the longest start first, spread over the workers, and the run ends on short
    tests instead of waiting for one long test that happened to be collected late."""

    def rank(item: pytest.Item) -> int:
        return 0 if item.get_closest_marker("slow") else 1 if item.get_closest_marker("browser") else 2

    items.sort(key=rank)


def _pg_url(admin_url: str, dbname: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{dbname}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, migrated to head once."""
    import psycopg

    name = f"vms_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({exc}); start it "
                    "(pg_ctlcluster ... main start) or run with --db sqlite")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = _pg_url(PG_ADMIN_URL, name)
    from vms.db.gateway import Gateway

    gateway = Gateway(url)
    gateway.migrate()
    gateway.close()
    try:
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate_pg(url: str) -> None:
    import psycopg

    from vms.db.models import ALL_MODELS

    tables = ", ".join(f'"{model._meta.table_name}"' for model in ALL_MODELS)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite database migrated to head, once per run (per worker): migrating an empty file
    takes 0.2 s of CPU and half a second or more of a loaded machine, hundreds of times a run."""
    from vms.db.gateway import Gateway

    path = tmp_path_factory.mktemp("sqlite-template") / "vms.sqlite3"
    gateway = Gateway(f"sqlite:///{path}")
    gateway.migrate()
    gateway.close()  # the last connection's close checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists(), "template left a WAL behind"
    return path


def copy_sqlite_template(template: Path, dest: Path) -> None:
    """``dest`` as a copy of the migrated template, with the modes the server gives a new
    database (a 0700 folder, a 0600 file)."""
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, template.open("rb") as src:
        shutil.copyfileobj(src, out)


@pytest.fixture
def db_url(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A migrated, empty database on ``engine``."""
    if engine == "sqlite":
        path = tmp_path / "vms.sqlite3"
        copy_sqlite_template(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_database")
    _truncate_pg(url)
    return url


@pytest.fixture
def settings_factory(tmp_path: Path, sqlite_template: Path):  # type: ignore[no-untyped-def]
    """Settings in ``tmp_path``; without a database URL, the default SQLite file in data_dir starts
    as a copy of the migrated template (made on the first call)."""
    from vms.config import load_settings

    def make(db_url: str = "", **overrides: Any):  # type: ignore[no-untyped-def]
        over: dict[str, Any] = {"data_dir": tmp_path / "data", "server.port": 0}
        if db_url:
            over["database.url"] = db_url
        over.update(overrides)
        settings = load_settings(None, env={}, overrides=over)
        if "database.url" not in over:
            path = Path(settings.database_url.removeprefix("sqlite:///"))
            if not path.exists():
                copy_sqlite_template(sqlite_template, path)
        return settings

    return make


@pytest.fixture
def shared_fixtures() -> Path:
    folder = SHARED_DIR / "fixtures" / "onvif"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent: the shared ONVIF fixtures live beside the repository")
    return folder


# --- no camera password in any log line of the whole run --------------------------------------

@pytest.fixture(scope="session", autouse=True)
def no_secret_in_logs() -> Iterator[None]:
    collector = LogCollector()
    root = logging.getLogger()
    root.addHandler(collector)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    # zeep's DEBUG lines are whole SOAP envelopes: costly, and they carry no clear password
    # (nor do peewee's DEBUG lines, one per SQL statement)
    for noisy in ("zeep", "peewee", "asyncio", "aiosqlite", "PIL"):
        logging.getLogger(noisy).setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(collector)
        root.setLevel(old_level)
    leaks = [(secret, line[:300]) for line in collector.lines for secret in SENSITIVE
             if secret in line]
    assert not leaks, f"camera passwords appeared in log lines: {leaks[:5]}"


@pytest.fixture
async def camsim_factory(camsim_factory):  # type: ignore[no-untyped-def]
    """camsim's factory, registering every virtual camera's password as a secret."""

    async def factory(*args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        fleet = await camsim_factory(*args, **kwargs)
        for camera in fleet.cameras:
            register_sensitive(str(camera.info().get("password", "")))
        return fleet

    return factory
