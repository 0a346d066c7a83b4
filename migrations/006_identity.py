"""Identities that are unique forever (issue 11, item 1).

- ``camera.uuid`` and ``run.uuid`` (32 hex digits, unique, filled for existing rows): segment
  files are named by them (``<camera uuid>/<day>/<stream>/<run uuid>-NNNNNN.mp4``), so a new
  recording can never land on an old file and reconciliation can prove which row a file belongs to.
- ``camera.archived_us``: a removed camera is archived (its recordings kept), not deleted.
- SQLite: every table's ``INTEGER PRIMARY KEY`` becomes ``AUTOINCREMENT`` (a deleted highest id is
  never handed out again). SQLite cannot alter a primary key, so each table is rebuilt (the
  procedure of https://sqlite.org/lang_altertable.html#otheralter); the gateway runs migrations with
  foreign keys off and checks them afterwards, so dropping a parent table cascades nothing.
  PostgreSQL's SERIAL sequences never reuse a value already.
"""

import re

import peewee as pw
from peewee_migrate import Migrator

_PK = '"id" INTEGER NOT NULL PRIMARY KEY'


def _fill_uuids(database: pw.Database, table: str) -> None:
    if isinstance(database, pw.SqliteDatabase):
        expr = "lower(hex(randomblob(16)))"
    else:
        expr = "replace(gen_random_uuid()::text, '-', '')"
    database.execute_sql(f'UPDATE "{table}" SET "uuid" = {expr} WHERE "uuid" = \'\'')  # noqa: S608


def _sqlite_autoincrement(database: pw.Database) -> None:
    (fk_on,) = database.execute_sql("PRAGMA foreign_keys").fetchone()
    if fk_on:
        raise RuntimeError("migration 006 rebuilds SQLite tables and must run with foreign keys "
                           "off (vms.db.gateway.migrate does this)")
    rows = database.execute_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' "
        "AND name NOT IN ('migratehistory', 'sqlite_sequence') ORDER BY name").fetchall()
    for name, sql in rows:
        if _PK not in sql or "AUTOINCREMENT" in sql.upper():
            continue
        indexes = [r[0] for r in database.execute_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
            "AND sql IS NOT NULL", (name,)).fetchall()]
        temp = f"{name}__006"
        new_sql, count = re.subn(r'^CREATE TABLE (IF NOT EXISTS )?"?' + re.escape(name) + r'"?',
                                 f'CREATE TABLE "{temp}"', sql, count=1)
        if count != 1:
            raise RuntimeError(f"migration 006: cannot read the definition of table {name!r}")
        new_sql = new_sql.replace(_PK, _PK + " AUTOINCREMENT", 1)
        database.execute_sql(new_sql)
        database.execute_sql(f'INSERT INTO "{temp}" SELECT * FROM "{name}"')  # noqa: S608
        database.execute_sql(f'DROP TABLE "{name}"')
        database.execute_sql(f'ALTER TABLE "{temp}" RENAME TO "{name}"')
        for index_sql in indexes:
            database.execute_sql(index_sql)


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    # added NOT NULL with an empty default, filled with random identities, then made unique
    migrator.add_fields("camera", uuid=pw.CharField(max_length=32, default=""),
                        archived_us=pw.BigIntegerField(null=True))
    migrator.add_fields("run", uuid=pw.CharField(max_length=32, default=""))
    migrator.run(_fill_uuids, database, "camera")
    migrator.run(_fill_uuids, database, "run")
    # raw SQL: migrator.add_index would mark the field unique before add_fields runs (peewee-migrate
    # queues operations but changes the field objects at once), creating the index twice
    migrator.sql('CREATE UNIQUE INDEX "camera_uuid" ON "camera" ("uuid")')
    migrator.sql('CREATE UNIQUE INDEX "run_uuid" ON "run" ("uuid")')
    if isinstance(database, pw.SqliteDatabase):
        migrator.run(_sqlite_autoincrement, database)


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.sql('DROP INDEX "run_uuid"')
    migrator.sql('DROP INDEX "camera_uuid"')
    migrator.remove_fields("run", "uuid")
    migrator.remove_fields("camera", "uuid", "archived_us")
