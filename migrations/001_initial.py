"""Initial schema: sites, users, sessions, tokens, audit, cameras, streams, runs, segments,
pending deletions, events, exports."""

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    """Create the initial schema."""

    @migrator.create_model
    class User(pw.Model):
        id = pw.AutoField()
        username = pw.CharField(max_length=64, unique=True)
        password_hash = pw.CharField(max_length=255)
        role = pw.CharField(max_length=16)
        language = pw.CharField(default='', max_length=8)
        disabled = pw.BooleanField(default=False)
        created_us = pw.BigIntegerField()
        password_changed_us = pw.BigIntegerField()

        class Meta:
            table_name = "user"
            constraints = [pw.SQL("CHECK (role IN ('admin', 'installer', 'operator', 'viewer'))")]

    @migrator.create_model
    class ApiToken(pw.Model):
        id = pw.AutoField()
        user = pw.ForeignKeyField(column_name='user_id', field='id', model=migrator.orm['user'], on_delete='CASCADE')
        name = pw.CharField(max_length=100)
        token_hash = pw.CharField(max_length=64, unique=True)
        created_us = pw.BigIntegerField()
        last_used_us = pw.BigIntegerField(null=True)
        revoked = pw.BooleanField(default=False)

        class Meta:
            table_name = "api_token"

    @migrator.create_model
    class Site(pw.Model):
        id = pw.AutoField()
        name = pw.CharField(max_length=200, unique=True)
        timezone = pw.CharField(default='UTC', max_length=64)
        created_us = pw.BigIntegerField()

        class Meta:
            table_name = "site"
            constraints = [pw.SQL("CHECK (created_us >= 0)")]

    @migrator.create_model
    class AuditLog(pw.Model):
        id = pw.AutoField()
        at_us = pw.BigIntegerField(index=True)
        user = pw.ForeignKeyField(column_name='user_id', field='id', model=migrator.orm['user'], null=True, on_delete='SET NULL')
        username = pw.CharField(default='', max_length=64)
        action = pw.CharField(index=True, max_length=64)
        target = pw.CharField(default='', max_length=200)
        site = pw.ForeignKeyField(column_name='site_id', field='id', model=migrator.orm['site'], null=True, on_delete='SET NULL')
        address = pw.CharField(default='', max_length=64)
        outcome = pw.CharField(default='ok', max_length=16)
        detail = pw.TextField(default='{}')

        class Meta:
            table_name = "audit_log"

    @migrator.create_model
    class Camera(pw.Model):
        id = pw.AutoField()
        site = pw.ForeignKeyField(column_name='site_id', field='id', model=migrator.orm['site'], on_delete='RESTRICT')
        name = pw.CharField(max_length=200)
        mac = pw.CharField(max_length=17, null=True, unique=True)
        onvif_url = pw.CharField(default='', max_length=500)
        username = pw.CharField(default='', max_length=200)
        password_enc = pw.TextField(default='')
        manufacturer = pw.CharField(default='', max_length=200)
        model = pw.CharField(default='', max_length=200)
        firmware = pw.CharField(default='', max_length=200)
        serial = pw.CharField(default='', max_length=200)
        enabled = pw.BooleanField(default=True)
        recording_mode = pw.CharField(default='continuous', max_length=16)
        status = pw.CharField(default='new', max_length=32)
        status_reason = pw.TextField(default='')
        status_since_us = pw.BigIntegerField()
        clock_offset_us = pw.BigIntegerField(default=0)
        created_us = pw.BigIntegerField()
        updated_us = pw.BigIntegerField()

        class Meta:
            table_name = "camera"
            constraints = [pw.SQL("CHECK (recording_mode IN ('continuous', 'scheduled', 'event', 'off'))")]

    @migrator.create_model
    class CameraStream(pw.Model):
        id = pw.AutoField()
        camera = pw.ForeignKeyField(column_name='camera_id', field='id', model=migrator.orm['camera'], on_delete='CASCADE')
        kind = pw.CharField(max_length=8)
        profile_token = pw.CharField(default='', max_length=200)
        rtsp_url = pw.CharField(max_length=1000)
        codec = pw.CharField(default='', max_length=16)
        width = pw.IntegerField(default=0)
        height = pw.IntegerField(default=0)
        fps = pw.IntegerField(default=0)
        bitrate_kbps = pw.IntegerField(default=0)
        record = pw.BooleanField(default=True)

        class Meta:
            table_name = "camera_stream"
            indexes = [(('camera', 'kind'), True)]

    @migrator.create_model
    class Event(pw.Model):
        id = pw.AutoField()
        camera = pw.ForeignKeyField(column_name='camera_id', field='id', model=migrator.orm['camera'], on_delete='CASCADE')
        type = pw.CharField(max_length=16)
        start_us = pw.BigIntegerField()
        end_us = pw.BigIntegerField(null=True)
        topic = pw.CharField(default='', max_length=300)
        data = pw.TextField(default='{}')

        class Meta:
            table_name = "event"
            indexes = [(('camera', 'start_us'), False), (('type', 'start_us'), False)]

    @migrator.create_model
    class Export(pw.Model):
        id = pw.AutoField()
        user = pw.ForeignKeyField(column_name='user_id', field='id', model=migrator.orm['user'], null=True, on_delete='SET NULL')
        state = pw.CharField(default='queued', max_length=16)
        progress = pw.FloatField(default=0.0)
        camera_ids = pw.TextField(default='[]')
        from_us = pw.BigIntegerField()
        to_us = pw.BigIntegerField()
        path = pw.CharField(default='', max_length=500)
        sha256 = pw.CharField(default='', max_length=64)
        manifest = pw.TextField(default='{}')
        error = pw.TextField(default='')
        created_us = pw.BigIntegerField()
        finished_us = pw.BigIntegerField(null=True)

        class Meta:
            table_name = "export"

    @migrator.create_model
    class PendingDeletion(pw.Model):
        id = pw.AutoField()
        volume = pw.CharField(max_length=100)
        path = pw.CharField(max_length=500)
        segment_id = pw.BigIntegerField(null=True)
        created_us = pw.BigIntegerField()

        class Meta:
            table_name = "pending_deletion"

    @migrator.create_model
    class Run(pw.Model):
        id = pw.AutoField()
        camera = pw.ForeignKeyField(column_name='camera_id', field='id', model=migrator.orm['camera'], on_delete='CASCADE')
        stream = pw.CharField(default='main', max_length=8)
        start_us = pw.BigIntegerField()
        end_us = pw.BigIntegerField(null=True)
        end_reason = pw.CharField(default='', max_length=32)

        class Meta:
            table_name = "run"
            indexes = [(('camera', 'stream', 'start_us'), False)]

    @migrator.create_model
    class Segment(pw.Model):
        id = pw.AutoField()
        camera = pw.ForeignKeyField(column_name='camera_id', field='id', model=migrator.orm['camera'], on_delete='CASCADE')
        stream = pw.CharField(default='main', max_length=8)
        run = pw.ForeignKeyField(column_name='run_id', field='id', model=migrator.orm['run'], on_delete='CASCADE')
        volume = pw.CharField(max_length=100)
        path = pw.CharField(max_length=500)
        start_us = pw.BigIntegerField()
        end_us = pw.BigIntegerField()
        duration_us = pw.BigIntegerField()
        size_bytes = pw.BigIntegerField()
        video_codec = pw.CharField(default='', max_length=16)
        audio_codec = pw.CharField(default='', max_length=16)
        width = pw.IntegerField(default=0)
        height = pw.IntegerField(default=0)
        state = pw.CharField(default='ok', max_length=16)

        class Meta:
            table_name = "segment"
            constraints = [pw.SQL("CHECK (duration_us >= 0)"), pw.SQL("CHECK (size_bytes >= 0)"), pw.SQL("CHECK (end_us >= start_us)")]
            indexes = [(('camera', 'stream', 'start_us'), False), (('volume', 'path'), True)]

    @migrator.create_model
    class Session(pw.Model):
        id = pw.AutoField()
        token_hash = pw.CharField(max_length=64, unique=True)
        user = pw.ForeignKeyField(column_name='user_id', field='id', model=migrator.orm['user'], on_delete='CASCADE')
        csrf_token = pw.CharField(max_length=64)
        created_us = pw.BigIntegerField()
        expires_us = pw.BigIntegerField()
        address = pw.CharField(default='', max_length=64)

        class Meta:
            table_name = "session"

    @migrator.create_model
    class UserSite(pw.Model):
        id = pw.AutoField()
        user = pw.ForeignKeyField(column_name='user_id', field='id', model=migrator.orm['user'], on_delete='CASCADE')
        site = pw.ForeignKeyField(column_name='site_id', field='id', model=migrator.orm['site'], on_delete='CASCADE')

        class Meta:
            table_name = "user_site"
            indexes = [(('user', 'site'), True)]


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    """Drop every table of the initial schema."""

    migrator.remove_model('user_site')

    migrator.remove_model('session')

    migrator.remove_model('segment')

    migrator.remove_model('run')

    migrator.remove_model('pending_deletion')

    migrator.remove_model('export')

    migrator.remove_model('event')

    migrator.remove_model('camera_stream')

    migrator.remove_model('camera')

    migrator.remove_model('audit_log')

    migrator.remove_model('site')

    migrator.remove_model('api_token')

    migrator.remove_model('user')
