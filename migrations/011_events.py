"""The event store (issue 14): events searchable by site, camera, type, time and plate.

- ``event.site_id``: the camera's site, copied when the event is stored, so every query is scoped
  and ordered by ``(site, start_us)`` without a join; filled here from the camera of each row.
- ``event.plate``: plate text normalised for search (vms.events.normalise_plate: look-alike
  Cyrillic letters as Latin, upper case, no spaces or dashes), ``''`` for other events.
- Indexes for ~10 million rows: ``(site, start_us)`` (a user's sites, newest first),
  ``(start_us)`` (an administrator's view of every site), the existing ``(camera, start_us)`` and
  ``(type, start_us)``, and ``(plate)``. A partial plate search (``LIKE '%…%'``) cannot use a
  B-tree range: on PostgreSQL a trigram GIN index (``pg_trgm``, a trusted extension) answers it;
  on SQLite it scans the small ``plate`` index instead of the table. ``event_open`` (partial:
  ``end_us IS NULL``) is what the store reads at start.
- ``camera.event_types_kept`` / ``camera.event_types_recorded``: which event types the store keeps
  and which trigger recording (comma-separated).
"""

import peewee as pw
from peewee_migrate import Migrator

ALL = "motion,doorbell,plate,tamper,relay,generic"
RECORDED = "motion,doorbell"


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.add_fields(
        "camera",
        event_types_kept=pw.CharField(max_length=200, default=ALL),
        event_types_recorded=pw.CharField(max_length=200, default=RECORDED),
    )
    migrator.add_fields(
        "event",
        site=pw.ForeignKeyField(column_name="site_id", field="id", model=migrator.orm["site"],
                                on_delete="CASCADE", null=True),
        plate=pw.CharField(max_length=32, default=""),
    )
    migrator.sql("UPDATE event SET site_id = (SELECT camera.site_id FROM camera "
                 "WHERE camera.id = event.camera_id)")
    migrator()  # add_not_null changes the field at once: the column must exist, filled, first
    migrator.add_not_null("event", "site")
    migrator.add_index("event", "site", "start_us", unique=False)
    migrator.add_index("event", "start_us", unique=False)
    migrator.add_index("event", "plate", unique=False)
    # the store loads the open intervals at start: a small partial index instead of a scan
    migrator.sql("CREATE INDEX event_open ON event (camera_id) WHERE end_us IS NULL")
    if isinstance(database, pw.PostgresqlDatabase):
        migrator.sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        migrator.sql("CREATE INDEX event_plate_trgm ON event USING gin (plate gin_trgm_ops) "
                     "WHERE plate <> ''")


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    if isinstance(database, pw.PostgresqlDatabase):
        migrator.sql("DROP INDEX IF EXISTS event_plate_trgm")
    migrator.sql("DROP INDEX IF EXISTS event_open")
    migrator.drop_index("event", "plate")
    migrator.drop_index("event", "start_us")
    migrator.drop_index("event", "site", "start_us")
    migrator.remove_fields("event", "site", "plate")
    migrator.remove_fields("camera", "event_types_kept", "event_types_recorded")
