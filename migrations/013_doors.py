"""Door release and the ring (issue 15): a camera's relay outputs, and who answered a doorbell.

- ``camera_relay``: the relay outputs (door locks) a camera reported at adoption or on a refresh
  (GetRelayOutputs, GetRelayOutputOptions): the mode and delay it is set to, and the modes and
  delay times it accepts, so a pulse is asked as Monostable only of a relay that supports it.
  One row per ``(camera, token)``; gone with the camera.
- ``ring_answer``: a doorbell event answered (a door pulse on its camera, or an acknowledgement
  from a ringing page) within ``[intercom] ring_seconds``; a doorbell event without one is a missed
  call. One row per event at most; gone with the event.
"""

import peewee as pw
from peewee_migrate import Migrator

from vms.db.models import ForeverIdField


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    @migrator.create_model
    class CameraRelay(pw.Model):
        id = ForeverIdField()
        camera = pw.ForeignKeyField(column_name='camera_id', field='id', model=migrator.orm['camera'], on_delete='CASCADE')
        token = pw.CharField(max_length=64)
        mode = pw.CharField(max_length=16, default='')
        delay_ms = pw.IntegerField(null=True)
        idle_state = pw.CharField(max_length=8, default='')
        modes = pw.CharField(max_length=64, default='')
        delay_min_ms = pw.IntegerField(null=True)
        delay_max_ms = pw.IntegerField(null=True)
        delay_choices_ms = pw.CharField(max_length=200, default='')
        listed_us = pw.BigIntegerField()

        class Meta:
            table_name = "camera_relay"
            indexes = [(('camera', 'token'), True)]

    @migrator.create_model
    class RingAnswer(pw.Model):
        id = ForeverIdField()
        event = pw.ForeignKeyField(column_name='event_id', field='id', model=migrator.orm['event'], on_delete='CASCADE', unique=True)
        user = pw.ForeignKeyField(column_name='user_id', field='id', model=migrator.orm['user'], null=True, on_delete='SET NULL')
        username = pw.CharField(max_length=64, default='')
        how = pw.CharField(max_length=8)
        at_us = pw.BigIntegerField()

        class Meta:
            table_name = "ring_answer"
            constraints = [pw.SQL("CHECK (how IN ('door', 'ack'))")]


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_model("ring_answer")
    migrator.remove_model("camera_relay")
