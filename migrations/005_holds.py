"""Holds: a camera's time range kept as evidence (retention must skip the segments a hold
overlaps), shown on the timeline. Indexed by ``(camera, start_us)`` for the timeline's range query.
"""

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    @migrator.create_model
    class Hold(pw.Model):
        id = pw.AutoField()
        camera = pw.ForeignKeyField(column_name='camera_id', field='id', model=migrator.orm['camera'], on_delete='CASCADE')
        start_us = pw.BigIntegerField()
        end_us = pw.BigIntegerField()
        reason = pw.CharField(default='', max_length=500)
        created_by = pw.ForeignKeyField(column_name='created_by_id', field='id', model=migrator.orm['user'], null=True, on_delete='SET NULL')
        created_us = pw.BigIntegerField()

        class Meta:
            table_name = "hold"
            constraints = [pw.SQL("CHECK (end_us > start_us)")]
            indexes = [(('camera', 'start_us'), False)]


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_model("hold")
