"""Private files without relying on the umask: the SQLite database (and the -wal/-shm SQLite makes
beside it) is created 0600 and an existing data folder left 0755 by an older version is
tightened to 0700 — in a process whose umask is the usual 022."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from vms.db import models as m
from vms.db.gateway import Gateway
from vms.fsmode import private_dir, private_file


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask_022")
def test_a_new_sqlite_database_is_private(tmp_path: Path) -> None:
    path = tmp_path / "db" / "vms.sqlite3"
    gateway = Gateway(f"sqlite:///{path}")
    try:
        gateway.migrate()
        gateway.write_sync(lambda: m.Site.create(name="s", created_us=0))
        files = sorted(path.parent.iterdir())
        assert {p.name for p in files} >= {"vms.sqlite3", "vms.sqlite3-wal", "vms.sqlite3-shm"}
        assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}
        assert _mode(path.parent) == 0o700
    finally:
        gateway.close()


@pytest.mark.usefixtures("umask_022")
def test_existing_folders_and_files_are_tightened(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "data"
    folder.mkdir(mode=0o755)
    old_db = folder / "vms.sqlite3"
    old_db.write_bytes(b"")
    old_db.chmod(0o644)
    assert private_dir(folder) == folder and _mode(folder) == 0o700
    assert private_file(old_db) == old_db and _mode(old_db) == 0o600
    assert "readable by other users (mode 0755): now 0700" in caplog.text
    fresh = private_dir(tmp_path / "a" / "b")
    assert _mode(fresh) == 0o700 and _mode(private_file(fresh / "f")) == 0o600
