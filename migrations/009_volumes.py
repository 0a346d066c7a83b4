"""Marked storage volumes and camera → volume assignment (issue 13).

- ``installation``: one row holding this database's identity (``uuid``, 32 hex digits), written
  into each storage volume's marker file (``.vms-volume.json``), so the recorder never writes to a
  disk that belongs to another database or to an empty mount point.
- ``camera.volume``: the name of the volume a camera records to; NULL = the first volume.
"""

import time

import peewee as pw
from peewee_migrate import Migrator


def _new_identity(database: pw.Database) -> None:
    if isinstance(database, pw.SqliteDatabase):
        expr = "lower(hex(randomblob(16)))"
    else:
        expr = "replace(gen_random_uuid()::text, '-', '')"
    now_us = time.time_ns() // 1_000
    database.execute_sql(
        f'INSERT INTO "installation" ("uuid", "created_us") SELECT {expr}, {int(now_us)}')  # noqa: S608


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    # raw SQL: a SQLite id must be AUTOINCREMENT like every other table's (migration 006)
    pk = ('"id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT'
          if isinstance(database, pw.SqliteDatabase) else '"id" SERIAL NOT NULL PRIMARY KEY')
    migrator.sql(f'CREATE TABLE "installation" ({pk}, "uuid" VARCHAR(32) NOT NULL, '
                 '"created_us" BIGINT NOT NULL DEFAULT 0)')
    migrator.sql('CREATE UNIQUE INDEX "installation_uuid" ON "installation" ("uuid")')
    migrator.run(_new_identity, database)
    migrator.add_fields("camera", volume=pw.CharField(max_length=200, null=True))


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_fields("camera", "volume")
    migrator.sql('DROP TABLE "installation"')
