"""Storage accounting (issue 13, visibility):

- ``segment_usage``: bytes and count of the segments that are not ``missing`` per camera, stream
  and volume, kept by triggers on ``segment`` (every insert, delete and update, by any code, in
  the same transaction), so the storage figures read a few rows instead of scanning millions.
  Filled from the existing segments here. SQLite: row triggers with an upsert; PostgreSQL:
  statement triggers over the transition tables (one upsert per statement, not per row — a purge
  deleting 1,000 rows updates each counter once).
- ``storage_sample``: one row per volume and hour (used, free and total bytes), written by the
  ``storage_history`` job (vms/storage.py), kept 30 days, drawn on the storage page; indexed by
  ``(volume, at_us)``.

Both tables' ids never repeat (SQLite ``AUTOINCREMENT``, like every table since migration 006).
"""

import peewee as pw
from peewee_migrate import Migrator

from vms.db.models import ForeverIdField

_FILL = """
INSERT INTO segment_usage (camera_id, stream, volume, bytes, segments)
SELECT camera_id, stream, volume, SUM(size_bytes), COUNT(*) FROM segment
WHERE state <> 'missing' GROUP BY camera_id, stream, volume
"""

_UPSERT = """
INSERT INTO segment_usage (camera_id, stream, volume, bytes, segments)
VALUES ({camera}, {stream}, {volume}, {bytes}, {segments})
ON CONFLICT (camera_id, stream, volume) DO UPDATE
SET bytes = segment_usage.bytes + excluded.bytes,
    segments = segment_usage.segments + excluded.segments;
"""


def _row(prefix: str, sign: str) -> str:
    return _UPSERT.format(camera=f"{prefix}.camera_id", stream=f"{prefix}.stream",
                          volume=f"{prefix}.volume", bytes=f"{sign}{prefix}.size_bytes",
                          segments=f"{sign}1")


SQLITE = [
    f"""CREATE TRIGGER segment_usage_insert AFTER INSERT ON segment
    WHEN NEW.state <> 'missing' BEGIN {_row('NEW', '')} END""",
    f"""CREATE TRIGGER segment_usage_delete AFTER DELETE ON segment
    WHEN OLD.state <> 'missing' BEGIN {_row('OLD', '-')} END""",
    f"""CREATE TRIGGER segment_usage_update_old AFTER UPDATE OF camera_id, stream, volume,
    size_bytes, state ON segment WHEN OLD.state <> 'missing' BEGIN {_row('OLD', '-')} END""",
    f"""CREATE TRIGGER segment_usage_update_new AFTER UPDATE OF camera_id, stream, volume,
    size_bytes, state ON segment WHEN NEW.state <> 'missing' BEGIN {_row('NEW', '')} END""",
]


def _pg_function(name: str, body: str) -> str:
    return f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
{body}
RETURN NULL;
END $$"""


def _pg_apply(table: str, sign: str) -> str:
    return f"""
INSERT INTO segment_usage (camera_id, stream, volume, bytes, segments)
SELECT camera_id, stream, volume, {sign}SUM(size_bytes), {sign}COUNT(*) FROM {table}
WHERE state <> 'missing' GROUP BY camera_id, stream, volume
ON CONFLICT (camera_id, stream, volume) DO UPDATE
SET bytes = segment_usage.bytes + excluded.bytes,
    segments = segment_usage.segments + excluded.segments;"""  # noqa: S608 - our own names


POSTGRESQL = [
    _pg_function("segment_usage_added", _pg_apply("new_rows", "")),
    _pg_function("segment_usage_removed", _pg_apply("old_rows", "-")),
    _pg_function("segment_usage_changed", _pg_apply("old_rows", "-") + _pg_apply("new_rows", "")),
    """CREATE TRIGGER segment_usage_insert AFTER INSERT ON segment
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION segment_usage_added()""",
    """CREATE TRIGGER segment_usage_delete AFTER DELETE ON segment
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION segment_usage_removed()""",
    """CREATE TRIGGER segment_usage_update AFTER UPDATE ON segment
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION segment_usage_changed()""",
]


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    @migrator.create_model
    class SegmentUsage(pw.Model):
        id = ForeverIdField()
        camera_id = pw.BigIntegerField()
        stream = pw.CharField(max_length=8)
        volume = pw.CharField(max_length=100)
        bytes = pw.BigIntegerField(default=0)
        segments = pw.BigIntegerField(default=0)

        class Meta:
            table_name = "segment_usage"
            indexes = [(('camera_id', 'stream', 'volume'), True)]

    @migrator.create_model
    class StorageSample(pw.Model):
        id = ForeverIdField()
        volume = pw.CharField(max_length=100)
        at_us = pw.BigIntegerField()
        used_bytes = pw.BigIntegerField()
        free_bytes = pw.BigIntegerField()
        total_bytes = pw.BigIntegerField()

        class Meta:
            table_name = "storage_sample"
            constraints = [pw.SQL("CHECK (used_bytes >= 0)"), pw.SQL("CHECK (free_bytes >= 0)"),
                           pw.SQL("CHECK (total_bytes >= 0)")]
            indexes = [(('volume', 'at_us'), False)]

    migrator.sql(_FILL)
    for statement in (SQLITE if isinstance(database, pw.SqliteDatabase) else POSTGRESQL):
        migrator.sql(statement)


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    if isinstance(database, pw.SqliteDatabase):
        for name in ("insert", "delete", "update_old", "update_new"):
            migrator.sql(f"DROP TRIGGER IF EXISTS segment_usage_{name}")
    else:
        for name in ("insert", "delete", "update"):
            migrator.sql(f"DROP TRIGGER IF EXISTS segment_usage_{name} ON segment")
        for name in ("added", "removed", "changed"):
            migrator.sql(f"DROP FUNCTION IF EXISTS segment_usage_{name}()")
    migrator.remove_model("storage_sample")
    migrator.remove_model("segment_usage")
