"""Encoder drift: what the camera accepted when a recording profile was applied to a stream, and
the drift found when its encoder configuration is re-read later (onvif_bridge/drift.py)."""

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.add_fields(
        "camera_stream",
        applied_width=pw.IntegerField(null=True),
        applied_height=pw.IntegerField(null=True),
        applied_fps=pw.IntegerField(null=True),
        applied_bitrate_kbps=pw.IntegerField(null=True),
        applied_gov_length=pw.IntegerField(null=True),
        applied_us=pw.BigIntegerField(null=True),
        drift=pw.TextField(default=""),
        checked_us=pw.BigIntegerField(null=True),
    )


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_fields(
        "camera_stream", "applied_width", "applied_height", "applied_fps", "applied_bitrate_kbps",
        "applied_gov_length", "applied_us", "drift", "checked_us",
    )
