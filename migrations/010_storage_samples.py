"""Storage usage history: one row per volume and hour (used, free and total bytes), written by the
``storage_history`` job (vms/storage.py), kept 30 days, drawn on the storage page. Indexed by
``(volume, at_us)`` for the chart's range query. Its id never repeats (SQLite ``AUTOINCREMENT``,
like every table since migration 006).
"""

import peewee as pw
from peewee_migrate import Migrator

from vms.db.models import ForeverIdField


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
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


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_model("storage_sample")
