"""Scale-out: the node that makes an export (``export.node``; '' for a single server).

An export's file stays on the node that wrote it: a download asked of another node is proxied
there (web/cluster_proxy.py), a node restarting recovers only its own unfinished exports, and an
alive node takes over the queued or running exports of a node that stopped heart-beating
(recorder/export.py).
"""

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.add_fields("export", node=pw.CharField(max_length=100, default=""))


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_fields("export", "node")
