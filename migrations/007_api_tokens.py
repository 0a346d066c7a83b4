"""API tokens get a scope (read | control | admin) and an expiry.

Tokens made before this migration could do anything their user could, password changes included,
forever: they become ``control`` tokens (no account changes) that expire 90 days after the
migration, so integrations keep working while their owners replace them.
"""

import time

import peewee as pw
from peewee_migrate import Migrator

GRACE_US = 90 * 86_400 * 1_000_000


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.add_fields(
        "api_token",
        scope=pw.CharField(max_length=16, default="control"),
        expires_us=pw.BigIntegerField(default=0),
    )
    expires_us = time.time_ns() // 1_000 + GRACE_US
    migrator.sql(f"UPDATE api_token SET expires_us = {int(expires_us)}")  # noqa: S608 - an int


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_fields("api_token", "scope", "expires_us")
