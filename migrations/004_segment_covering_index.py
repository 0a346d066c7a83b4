"""Segment index covering the timeline and the playlist: ``(camera, stream, start_us)`` becomes
``(camera, stream, start_us, end_us, run, state, id)``.

A camera-day is ~1,440 segment rows, and rows of one camera are interleaved on disk with every
other camera recording at the same time, so reading them from the table costs ~1,440 page reads.
With every column the timeline (start, end, run, state) and the playlist (id, start, end, state)
select inside the index, both are index-only range scans of a few pages (on PostgreSQL once the
visibility map is set, which autovacuum does for an append-mostly table). The new index has the old
one as its prefix, so it replaces it (every query on ``camera, stream, start_us`` still uses it).
"""

import peewee as pw
from peewee_migrate import Migrator

COVERING = ("camera", "stream", "start_us", "end_us", "run", "state", "id")


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.add_index("segment", *COVERING, unique=False)
    migrator.drop_index("segment", "camera", "stream", "start_us")


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.add_index("segment", "camera", "stream", "start_us", unique=False)
    migrator.drop_index("segment", *COVERING)
