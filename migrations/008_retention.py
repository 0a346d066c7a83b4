"""Retention (issue 13): policies per site and camera, the purged ranges the timeline names.

- ``site.retention_continuous_days``, ``site.retention_event_days``,
  ``camera.retention_continuous_days``, ``camera.retention_event_days``,
  ``camera.retention_max_bytes``: nullable (None: inherit from the site, then ``[retention]``).
- ``purged_range``: recorded time deleted by retention (a timeline gap with reason
  ``retention``), indexed by ``(camera, stream, end_us)``.
- ``segment (volume, start_us)``: the oldest footage of a volume (the space purge) and the bytes
  written to it recently (its write rate) without a scan of the whole index.
"""

import peewee as pw
from peewee_migrate import Migrator


class _ForeverId(pw.AutoField):
    """``AUTOINCREMENT`` on SQLite, like vms.db.models.ForeverIdField (ids never reused)."""

    def ddl(self, ctx):
        node = super().ddl(ctx)
        if isinstance(self.model._meta.database, pw.SqliteDatabase):
            return pw.NodeList((node, pw.SQL("AUTOINCREMENT")))
        return node


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.add_fields(
        "site",
        retention_continuous_days=pw.IntegerField(null=True),
        retention_event_days=pw.IntegerField(null=True),
    )
    migrator.add_fields(
        "camera",
        retention_continuous_days=pw.IntegerField(null=True),
        retention_event_days=pw.IntegerField(null=True),
        retention_max_bytes=pw.BigIntegerField(null=True),
    )

    @migrator.create_model
    class PurgedRange(pw.Model):
        id = _ForeverId()
        camera = pw.ForeignKeyField(column_name='camera_id', field='id', model=migrator.orm['camera'], on_delete='CASCADE')
        stream = pw.CharField(default='main', max_length=8)
        start_us = pw.BigIntegerField()
        end_us = pw.BigIntegerField()

        class Meta:
            table_name = "purged_range"
            constraints = [pw.SQL("CHECK (end_us >= start_us)")]
            indexes = [(('camera', 'stream', 'end_us'), False)]

    migrator.add_index("segment", "volume", "start_us", unique=False)
    migrator.add_index("pending_deletion", "segment_id", unique=False)


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.drop_index("pending_deletion", "segment_id")
    migrator.drop_index("segment", "volume", "start_us")
    migrator.remove_model("purged_range")
    migrator.remove_fields("camera", "retention_continuous_days", "retention_event_days",
                           "retention_max_bytes")
    migrator.remove_fields("site", "retention_continuous_days", "retention_event_days")
