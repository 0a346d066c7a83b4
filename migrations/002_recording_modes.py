"""Recording modes: schedule and event pre/post-roll per camera, RTSP transport per stream, the
mode of a run (continuous or event ring buffer) and the kind of a segment (continuous or event)."""

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.add_fields(
        "camera",
        schedule=pw.TextField(default=""),
        event_pre_s=pw.IntegerField(default=5),
        event_post_s=pw.IntegerField(default=10),
    )
    migrator.add_fields("camera_stream", rtsp_transport=pw.CharField(max_length=8, default=""))
    migrator.add_fields("run", mode=pw.CharField(max_length=16, default="continuous"))
    migrator.add_fields("segment", kind=pw.CharField(max_length=16, default="continuous"))


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_fields("segment", "kind")
    migrator.remove_fields("run", "mode")
    migrator.remove_fields("camera_stream", "rtsp_transport")
    migrator.remove_fields("camera", "schedule", "event_pre_s", "event_post_s")
