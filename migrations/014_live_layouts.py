"""Saved live-view layouts (issue 16): per user, a named grid and the camera of each tile.

``live_layout.camera_ids`` is a JSON list of camera ids, one per tile (null: empty); it is always
read back through the user's site scope (vms/layouts.py), so no foreign key ties it to cameras.
A user's layout names are unique.
"""

import peewee as pw
from peewee_migrate import Migrator

from vms.db.models import ForeverIdField


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    @migrator.create_model
    class LiveLayout(pw.Model):
        id = ForeverIdField()
        user = pw.ForeignKeyField(column_name="user_id", field="id", model=migrator.orm["user"],
                                  on_delete="CASCADE")
        name = pw.CharField(max_length=100)
        grid = pw.IntegerField()
        camera_ids = pw.TextField(default="[]")
        created_us = pw.BigIntegerField()
        updated_us = pw.BigIntegerField()

        class Meta:
            table_name = "live_layout"
            constraints = [pw.SQL("CHECK (grid BETWEEN 1 AND 4)")]
            indexes = [(("user", "name"), True)]


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_model("live_layout")
