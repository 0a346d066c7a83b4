"""PTZ (issue 15): what each camera's pan/tilt/zoom can do, read at adoption.

- ``camera.ptz_caps``: the camera's PTZ capabilities as JSON (onvif_bridge.ptz_parse
  .PtzCapabilities: profile token, continuous/relative/absolute moves, zoom, presets, home,
  velocity and translation ranges, timeout range); ``''`` when never read (adopted before this
  release, or added by RTSP URL), ``'{}'`` when the camera has no PTZ. Refreshed on demand
  (``POST /api/v1/cameras/{id}/ptz/capabilities``).
"""

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.add_fields("camera", ptz_caps=pw.TextField(default=""))


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_fields("camera", "ptz_caps")
