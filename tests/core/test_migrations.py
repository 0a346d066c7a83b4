"""Migrating an empty database to head gives exactly the models, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import peewee as pw
import pytest

from vms.db.gateway import Gateway, open_database
from vms.db.models import ALL_MODELS


def _normalise(db: pw.Database, field: pw.Field) -> str:
    return str(field.get_db_field() if hasattr(field, "get_db_field") else field.field_type)


@pytest.fixture
def empty_db_url(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if engine == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    import secrets

    import psycopg

    from tests.conftest import PG_ADMIN_URL, _pg_url

    name = f"vms_mig_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    request.addfinalizer(drop)
    return _pg_url(PG_ADMIN_URL, name)


def test_migrated_schema_matches_models(empty_db_url: str) -> None:
    gateway = Gateway(empty_db_url)
    try:
        applied = gateway.migrate()
        assert applied, "an empty database must get migrations"
        assert gateway.migrate() == [], "a second run applies nothing"
        # the same models created directly on a second database are the reference
        migrated = gateway.db
        with migrated.connection_context():
            tables = set(migrated.get_tables()) - {"migratehistory", "sqlite_sequence"}
            assert tables == {model._meta.table_name for model in ALL_MODELS}
            for model in ALL_MODELS:
                table = model._meta.table_name
                columns = {c.name: c for c in migrated.get_columns(table)}
                expected = {f.column_name: f for f in model._meta.sorted_fields}
                assert set(columns) == set(expected), f"{table}: columns differ"
                for name, field in expected.items():
                    assert columns[name].null == field.null, f"{table}.{name}: nullability differs"
                indexes = {tuple(i.columns): i.unique for i in migrated.get_indexes(table)}
                for fields, unique in model._meta.indexes:
                    cols = tuple(model._meta.fields[f].column_name for f in fields)
                    assert indexes.get(cols) == unique, f"{table}: index {cols} missing or differs"
                for field in model._meta.sorted_fields:
                    if field.unique and not isinstance(field, pw.AutoField):
                        assert indexes.get((field.column_name,)) is True, f"{table}.{field.name}"
                fks = {fk.column for fk in migrated.get_foreign_keys(table)}
                assert fks == {f.column_name for f in model._meta.sorted_fields
                               if isinstance(f, pw.ForeignKeyField)}, f"{table}: foreign keys"
    finally:
        gateway.close()


def test_check_constraints_hold(empty_db_url: str) -> None:
    from vms.db import models as m

    gateway = Gateway(empty_db_url)
    gateway.migrate()
    try:
        def bad_role() -> None:
            m.User.create(username="x", password_hash="h", role="root", created_us=0,
                          password_changed_us=0)

        with pytest.raises(pw.IntegrityError):
            gateway.write_sync(bad_role)
    finally:
        gateway.close()


def test_unsupported_url_is_named() -> None:
    from vms.db.gateway import DatabaseError

    with pytest.raises(DatabaseError, match="unsupported scheme 'mysql'"):
        open_database("mysql://root:pw@localhost/x")
    with pytest.raises(DatabaseError, match=r"\*\*\*"):
        open_database("mysql://root:topsecret@localhost/x")


# --- identities unique forever (issue 11, item 1) ----------------------------------------------

def _camera_with_run(m, name: str, site_id: int | None = None) -> tuple[int, int]:
    site = (m.Site.get_by_id(site_id) if site_id else
            m.Site.create(name=f"site-{name}", created_us=0))
    cam = m.Camera.create(site=site, name=name, status_since_us=0, created_us=0, updated_us=0)
    run = m.Run.create(camera=cam, start_us=0)
    return cam.id, run.id


def test_ids_are_never_reused(empty_db_url: str) -> None:
    """Deleting the newest camera and run does not hand their ids (or uuids) to the next ones —
    on SQLite too, where a plain INTEGER PRIMARY KEY would reuse them."""
    from vms.db import models as m

    gateway = Gateway(empty_db_url)
    gateway.migrate()
    try:
        cam1, run1 = gateway.write_sync(_camera_with_run, m, "a")
        old = gateway.read_sync(lambda: (m.Camera.get_by_id(cam1).uuid, m.Run.get_by_id(run1).uuid))
        gateway.write_sync(lambda: m.Camera.delete().where(m.Camera.id == cam1).execute())
        cam2, run2 = gateway.write_sync(_camera_with_run, m, "b")
        assert cam2 > cam1 and run2 > run1
        new = gateway.read_sync(lambda: (m.Camera.get_by_id(cam2).uuid, m.Run.get_by_id(run2).uuid))
        assert all(len(u) == 32 for u in old + new) and not set(old) & set(new)
        if gateway.is_sqlite:
            with gateway.db.connection_context():
                rows = gateway.db.execute_sql(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT IN "
                    "('migratehistory', 'sqlite_sequence')").fetchall()
            plain = [name for name, sql in rows if "AUTOINCREMENT" not in sql.upper()]
            assert not plain, f"tables whose ids SQLite may reuse: {plain}"
    finally:
        gateway.close()


def test_migration_006_keeps_existing_rows(engine: str, tmp_path: Path,
                                           empty_db_url: str) -> None:
    """Upgrading a database that holds cameras, runs and segments rebuilds the SQLite tables
    without cascading anything away, and gives every existing camera and run its own uuid."""
    from peewee_migrate import Router

    from vms.db.gateway import MIGRATIONS_DIR

    db = open_database(empty_db_url)
    with db.connection_context():
        router = Router(db, migrate_dir=str(MIGRATIONS_DIR), ignore=["basemodel"])
        router.run("005_holds")
        db.execute_sql("INSERT INTO site (name, timezone, created_us) VALUES ('s', 'UTC', 0)")
        for n in (1, 2):
            db.execute_sql(
                "INSERT INTO camera (site_id, name, onvif_url, username, password_enc, manufacturer,"
                " model, firmware, serial, enabled, recording_mode, status, status_reason,"
                " status_since_us, clock_offset_us, created_us, updated_us, schedule, event_pre_s,"
                f" event_post_s) VALUES (1, 'c{n}', '', '', '', '', '', '', '', true, 'continuous',"
                " 'new', '', 0, 0, 0, 0, '', 5, 10)")
            db.execute_sql(f"INSERT INTO run (camera_id, stream, start_us, end_reason, mode) "
                           f"VALUES ({n}, 'main', 0, '', 'continuous')")
            db.execute_sql(
                "INSERT INTO segment (camera_id, stream, run_id, volume, path, start_us, end_us,"
                " duration_us, size_bytes, video_codec, audio_codec, width, height, state, kind)"
                f" VALUES ({n}, 'main', {n}, 'main', '{n}/x.mp4', 0, 1, 1, 1, '', '', 0, 0, 'ok',"
                " 'continuous')")
    db.close()
    gateway = Gateway(empty_db_url)
    try:
        assert gateway.migrate()[0] == "006_identity"
        from vms.db import models as m

        counts = gateway.read_sync(lambda: (m.Camera.select().count(), m.Run.select().count(),
                                            m.Segment.select().count()))
        assert counts == (2, 2, 2)
        uuids = gateway.read_sync(lambda: [c.uuid for c in m.Camera.select()]
                                  + [r.uuid for r in m.Run.select()])
        assert len(set(uuids)) == 4 and all(len(u) == 32 for u in uuids)
        # the highest camera deleted: its id is not handed out again
        gateway.write_sync(lambda: m.Camera.delete().where(m.Camera.id == 2).execute())
        cam3, _ = gateway.write_sync(_camera_with_run, m, "c3", 1)
        assert cam3 == 3
        assert gateway.read_sync(lambda: m.Segment.select().count()) == 1  # cascade still works
    finally:
        gateway.close()


def test_api_tokens_made_before_007_become_control_tokens_that_expire(empty_db_url: str) -> None:
    """Tokens from before scopes and expiry could do anything, forever: after migration 007 they
    are ``control`` tokens (no account changes) expiring 90 days after the upgrade."""
    import time

    from peewee_migrate import Router

    from vms.auth import Accounts
    from vms.clock import SystemClock
    from vms.db.gateway import MIGRATIONS_DIR

    gateway = Gateway(empty_db_url)
    try:
        with gateway.db.connection_context():
            Router(gateway.db, migrate_dir=str(MIGRATIONS_DIR), ignore=["basemodel"]).run(
                "005_holds")
            gateway.db.execute_sql(
                "INSERT INTO \"user\" (username, password_hash, role, language, disabled, "
                "created_us, password_changed_us) VALUES ('old', 'x', 'admin', '', false, 1, 1)")
            gateway.db.execute_sql(
                "INSERT INTO api_token (user_id, name, token_hash, created_us, revoked) "
                f"SELECT id, 'legacy', '{'a' * 64}', 2, false FROM \"user\"")
        before_us = time.time_ns() // 1_000
        assert "007_api_tokens" in gateway.migrate()
        from vms.db import models as m

        row = gateway.read_sync(lambda: m.ApiToken.get(m.ApiToken.name == "legacy"))
        assert row.scope == "control"
        assert 0 <= row.expires_us - (before_us + 90 * 86_400 * 1_000_000) < 60_000_000
        assert row.token_hash == "a" * 64 and not row.revoked
        rows = gateway.read_sync(Accounts(SystemClock()).list_api_tokens, "old")
        assert [(r["name"], r["scope"], r["state"]) for r in rows] == [
            ("legacy", "control", "active")]
    finally:
        gateway.close()
