"""Scale-out (issue 17): nodes, camera leases with fencing epochs, the node of each run.

- ``node``: one row per ``vms serve`` of a cluster (PostgreSQL only in practice; the table exists on
  SQLite too, empty): its ``name``, ``advertise_url`` (how the other nodes reach its API),
  ``heartbeat_us`` (written with the **database's** clock), ``draining``, ``max_cameras`` and the
  names of its storage ``volumes`` (comma-separated; unique across nodes).
- ``camera_lease``: which node records a camera (``node``, '' when free), until ``expires_us``
  (database clock), and the fencing ``epoch`` bumped by every take; ``reason`` says how it was last
  taken or released (``node_lost``, ``handover``).
- ``run.node``: the node that recorded the run ('' for a single server).
- ``installation.cluster_secret``: the key of node-to-node request signatures (filled on first use).
"""

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    sqlite = isinstance(database, pw.SqliteDatabase)
    pk = ('"id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT' if sqlite
          else '"id" SERIAL NOT NULL PRIMARY KEY')
    migrator.sql(
        f'CREATE TABLE "node" ({pk}, "name" VARCHAR(100) NOT NULL, '
        '"advertise_url" VARCHAR(500) NOT NULL DEFAULT \'\', '
        '"started_us" BIGINT NOT NULL DEFAULT 0, "heartbeat_us" BIGINT NOT NULL DEFAULT 0, '
        '"draining" BOOLEAN NOT NULL DEFAULT FALSE, "max_cameras" INTEGER NOT NULL DEFAULT 0, '
        '"volumes" VARCHAR(1000) NOT NULL DEFAULT \'\', CHECK (max_cameras >= 0))')
    migrator.sql('CREATE UNIQUE INDEX "node_name" ON "node" ("name")')
    migrator.sql(
        f'CREATE TABLE "camera_lease" ({pk}, "camera_id" INTEGER NOT NULL '
        'REFERENCES "camera" ("id") ON DELETE CASCADE, '
        '"node" VARCHAR(100) NOT NULL DEFAULT \'\', "epoch" BIGINT NOT NULL DEFAULT 0, '
        '"expires_us" BIGINT NOT NULL DEFAULT 0, "taken_us" BIGINT NOT NULL DEFAULT 0, '
        '"reason" VARCHAR(16) NOT NULL DEFAULT \'\', CHECK (epoch >= 0))')
    migrator.sql('CREATE UNIQUE INDEX "camera_lease_camera_id" ON "camera_lease" ("camera_id")')
    migrator.sql('CREATE INDEX "camera_lease_node" ON "camera_lease" ("node")')
    migrator.add_fields("run", node=pw.CharField(max_length=100, default=""))
    # installation was made with raw SQL (migration 009): the migrator's ORM does not know it
    migrator.sql('ALTER TABLE "installation" ADD COLUMN "cluster_secret" VARCHAR(64) NOT NULL '
                 'DEFAULT \'\'')


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.sql('ALTER TABLE "installation" DROP COLUMN "cluster_secret"')
    migrator.remove_fields("run", "node")
    migrator.sql('DROP TABLE "camera_lease"')
    migrator.sql('DROP TABLE "node"')
