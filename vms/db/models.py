"""Peewee models: the schema of the whole server.

Every instant is an integer count of UTC microseconds in a column whose name ends ``_us``; every
size ends ``_bytes``. Models are bound to a database by :class:`vms.db.gateway.Gateway` — no
module-level connection. Schema changes go through a migration in ``migrations/`` (a test checks
that migrating an empty database gives exactly these models).
"""

from __future__ import annotations

import uuid

import peewee as pw


class ForeverIdField(pw.AutoField):
    """An integer primary key that is never reused, on every engine.

    PostgreSQL's ``SERIAL`` sequence never hands out a value twice. SQLite's plain ``INTEGER
    PRIMARY KEY`` does: after the highest row is deleted, the next insert takes its id again (a
    removed camera's id given to a new camera of another site); ``AUTOINCREMENT`` forbids that.
    Migration 006 rebuilt the existing SQLite tables this way; a test checks every table.
    """

    def ddl(self, ctx: pw.Context) -> pw.NodeList:
        node = super().ddl(ctx)
        if isinstance(self.model._meta.database, pw.SqliteDatabase):
            return pw.NodeList((node, pw.SQL("AUTOINCREMENT")))
        return node


def new_uuid() -> str:
    """A random identity unique forever: 32 lower-case hex digits (what paths on disk carry)."""
    return uuid.uuid4().hex


EVENT_TYPES_ALL = "motion,doorbell,plate,tamper,relay,generic"
EVENT_TYPES_RECORDED = "motion,doorbell"


class BaseModel(pw.Model):
    id = ForeverIdField()

    class Meta:
        legacy_table_names = False


class Site(BaseModel):
    """A place cameras belong to: a school, a courtyard complex, a junction."""

    name = pw.CharField(max_length=200, unique=True)
    timezone = pw.CharField(max_length=64, default="UTC")
    created_us = pw.BigIntegerField()
    retention_continuous_days = pw.IntegerField(null=True)
    """The site's retention policy (vms/retention.py); None: the ``[retention]`` default."""
    retention_event_days = pw.IntegerField(null=True)

    class Meta:
        constraints = [pw.SQL("CHECK (created_us >= 0)")]


class User(BaseModel):
    username = pw.CharField(max_length=64, unique=True)
    password_hash = pw.CharField(max_length=255)
    role = pw.CharField(max_length=16)  # admin | installer | operator | viewer
    language = pw.CharField(max_length=8, default="")  # '' : follow the browser
    disabled = pw.BooleanField(default=False)
    created_us = pw.BigIntegerField()
    password_changed_us = pw.BigIntegerField()

    class Meta:
        constraints = [pw.SQL("CHECK (role IN ('admin', 'installer', 'operator', 'viewer'))")]


class UserSite(BaseModel):
    """A grant: ``user`` may see ``site``."""

    user = pw.ForeignKeyField(User, on_delete="CASCADE", backref="site_grants")
    site = pw.ForeignKeyField(Site, on_delete="CASCADE", backref="user_grants")

    class Meta:
        indexes = ((("user", "site"), True),)


class Session(BaseModel):
    """A login session; the cookie holds a random token, the table only its SHA-256."""

    token_hash = pw.CharField(max_length=64, unique=True)
    user = pw.ForeignKeyField(User, on_delete="CASCADE", backref="sessions")
    csrf_token = pw.CharField(max_length=64)
    created_us = pw.BigIntegerField()
    expires_us = pw.BigIntegerField()
    address = pw.CharField(max_length=64, default="")


class ApiToken(BaseModel):
    """A bearer token for integrations, acting as its user within ``scope`` (read | control |
    admin, see vms.auth.TOKEN_SCOPES) until ``expires_us``; stored hashed. Revoked by hand or by a
    password change of its user (tokens older than ``User.password_changed_us`` are dead too)."""

    user = pw.ForeignKeyField(User, on_delete="CASCADE", backref="api_tokens")
    name = pw.CharField(max_length=100)
    token_hash = pw.CharField(max_length=64, unique=True)
    created_us = pw.BigIntegerField()
    last_used_us = pw.BigIntegerField(null=True)
    revoked = pw.BooleanField(default=False)
    scope = pw.CharField(max_length=16, default="control")
    expires_us = pw.BigIntegerField()


class AuditLog(BaseModel):
    """Append-only: who did what, when, from where."""

    at_us = pw.BigIntegerField(index=True)
    user = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
    username = pw.CharField(max_length=64, default="")
    action = pw.CharField(max_length=64, index=True)
    target = pw.CharField(max_length=200, default="")
    site = pw.ForeignKeyField(Site, null=True, on_delete="SET NULL")
    address = pw.CharField(max_length=64, default="")
    outcome = pw.CharField(max_length=16, default="ok")
    detail = pw.TextField(default="{}")  # JSON


class Camera(BaseModel):
    site = pw.ForeignKeyField(Site, on_delete="RESTRICT", backref="cameras")
    uuid = pw.CharField(max_length=32, unique=True, default=new_uuid)
    """Identity unique forever; the camera's folder on every storage volume is named by it."""
    name = pw.CharField(max_length=200)
    mac = pw.CharField(max_length=17, null=True, unique=True)
    onvif_url = pw.CharField(max_length=500, default="")
    username = pw.CharField(max_length=200, default="")
    password_enc = pw.TextField(default="")  # Fernet token; never the clear password
    manufacturer = pw.CharField(max_length=200, default="")
    model = pw.CharField(max_length=200, default="")
    firmware = pw.CharField(max_length=200, default="")
    serial = pw.CharField(max_length=200, default="")
    enabled = pw.BooleanField(default=True)
    recording_mode = pw.CharField(max_length=16, default="continuous")
    status = pw.CharField(max_length=32, default="new")
    status_reason = pw.TextField(default="")
    status_since_us = pw.BigIntegerField()
    clock_offset_us = pw.BigIntegerField(default=0)
    created_us = pw.BigIntegerField()
    updated_us = pw.BigIntegerField()
    schedule = pw.TextField(default="")
    """Recording windows for mode ``scheduled``, JSON: ``[{"days": "mon-fri", "start": "07:00",
    "end": "19:00"}]`` in the site's time zone (see recorder/schedule.py)."""
    event_pre_s = pw.IntegerField(default=5)  # mode ``event``: seconds kept before an event
    event_post_s = pw.IntegerField(default=10)  # mode ``event``: seconds kept after it ends
    archived_us = pw.BigIntegerField(null=True)
    """Set when the camera was removed: it records and streams no more and is hidden from live
    lists, but its recordings stay, playable and exportable by its site, until retention."""
    volume = pw.CharField(max_length=200, null=True)
    """Name of the storage volume its recordings go to; NULL: the first configured volume. When
    that volume is not healthy the recorder writes to another healthy one (recorder/volumes.py)."""
    retention_continuous_days = pw.IntegerField(null=True)
    """The camera's retention policy (vms/retention.py); None: its site's, else the default."""
    retention_event_days = pw.IntegerField(null=True)
    retention_max_bytes = pw.BigIntegerField(null=True)
    """Cap on the bytes of this camera's recordings (oldest unprotected deleted first); None: no
    cap."""
    event_types_kept = pw.CharField(max_length=200, default=EVENT_TYPES_ALL)
    """Event types the event store keeps for this camera (comma-separated; vms/events.py)."""
    event_types_recorded = pw.CharField(max_length=200, default=EVENT_TYPES_RECORDED)
    """Event types that trigger recording (event mode) and mark segments ``event``."""
    ptz_caps = pw.TextField(default="")
    """PTZ capabilities, JSON (onvif_bridge/ptz_parse.py); '' never read, '{}' no PTZ."""

    class Meta:
        constraints = [
            pw.SQL("CHECK (recording_mode IN ('continuous', 'scheduled', 'event', 'off'))")
        ]


class CameraStream(BaseModel):
    """One stream of a camera (main for recording, sub for the grid)."""

    camera = pw.ForeignKeyField(Camera, on_delete="CASCADE", backref="streams")
    kind = pw.CharField(max_length=8)  # main | sub
    profile_token = pw.CharField(max_length=200, default="")
    rtsp_url = pw.CharField(max_length=1000)  # without credentials
    codec = pw.CharField(max_length=16, default="")
    width = pw.IntegerField(default=0)
    height = pw.IntegerField(default=0)
    fps = pw.IntegerField(default=0)
    bitrate_kbps = pw.IntegerField(default=0)
    record = pw.BooleanField(default=True)
    rtsp_transport = pw.CharField(max_length=8, default="")  # tcp | udp | '' (config default)
    # What the camera accepted when a recording profile was last applied (None: never applied),
    # and the drift found by the last re-read of its encoder (onvif_bridge/drift.py).
    applied_width = pw.IntegerField(null=True)
    applied_height = pw.IntegerField(null=True)
    applied_fps = pw.IntegerField(null=True)
    applied_bitrate_kbps = pw.IntegerField(null=True)
    applied_gov_length = pw.IntegerField(null=True)
    applied_us = pw.BigIntegerField(null=True)
    drift = pw.TextField(default="")  # '' : the encoder matches what was applied
    checked_us = pw.BigIntegerField(null=True)  # last successful re-read of the encoder

    class Meta:
        indexes = ((("camera", "kind"), True),)


class Run(BaseModel):
    """One continuous ffmpeg session of one stream, and why it ended."""

    camera = pw.ForeignKeyField(Camera, on_delete="CASCADE", backref="runs")
    uuid = pw.CharField(max_length=32, unique=True, default=new_uuid)
    """Identity unique forever; the run's segment files are named by it (recorder/segments.py)."""
    stream = pw.CharField(max_length=8, default="main")
    start_us = pw.BigIntegerField()
    end_us = pw.BigIntegerField(null=True)
    end_reason = pw.CharField(max_length=32, default="")
    mode = pw.CharField(max_length=16, default="continuous")  # continuous | event (ring buffer)
    node = pw.CharField(max_length=100, default="")
    """The cluster node that recorded it ('' for a single server; vms/cluster.py)."""

    class Meta:
        indexes = ((("camera", "stream", "start_us"), False),)


class Segment(BaseModel):
    """One recorded file on a storage volume."""

    camera = pw.ForeignKeyField(Camera, on_delete="CASCADE", backref="segments")
    stream = pw.CharField(max_length=8, default="main")
    run = pw.ForeignKeyField(Run, on_delete="CASCADE", backref="segments")
    volume = pw.CharField(max_length=100)
    path = pw.CharField(max_length=500)  # relative to the volume
    start_us = pw.BigIntegerField()
    end_us = pw.BigIntegerField()
    duration_us = pw.BigIntegerField()
    size_bytes = pw.BigIntegerField()
    video_codec = pw.CharField(max_length=16, default="")
    audio_codec = pw.CharField(max_length=16, default="")
    width = pw.IntegerField(default=0)
    height = pw.IntegerField(default=0)
    state = pw.CharField(max_length=16, default="ok")  # ok | missing | partial
    kind = pw.CharField(max_length=16, default="continuous")  # continuous | event (retention)

    class Meta:
        indexes = (
            # covers the timeline and the playlist (index-only scans; migration 004)
            (("camera", "stream", "start_us", "end_us", "run", "state", "id"), False),
            (("volume", "path"), True),
            # the oldest footage of a volume (space purge) and its recent bytes (write rate)
            (("volume", "start_us"), False),
        )
        constraints = [
            pw.SQL("CHECK (duration_us >= 0)"),
            pw.SQL("CHECK (size_bytes >= 0)"),
            pw.SQL("CHECK (end_us >= start_us)"),
        ]


class PendingDeletion(BaseModel):
    """A file to delete; written before the delete so a crash leaves no orphan."""

    volume = pw.CharField(max_length=100)
    path = pw.CharField(max_length=500)
    segment_id = pw.BigIntegerField(null=True)
    created_us = pw.BigIntegerField()

    class Meta:
        # retention skips segments already claimed (NOT EXISTS by segment id; migration 008)
        indexes = ((("segment_id",), False),)


class PurgedRange(BaseModel):
    """Recorded time of one camera stream deleted by retention, ``[start_us, end_us)``: the
    timeline answers a gap there with reason ``retention`` (not "never recorded"). Written in the
    same transaction that marks the segments for deletion (recorder/retention.py), merged with the
    range before it when no segment lies between them."""

    camera = pw.ForeignKeyField(Camera, on_delete="CASCADE", backref="purged_ranges")
    stream = pw.CharField(max_length=8, default="main")
    start_us = pw.BigIntegerField()
    end_us = pw.BigIntegerField()

    class Meta:
        indexes = ((("camera", "stream", "end_us"), False),)
        constraints = [pw.SQL("CHECK (end_us >= start_us)")]


class Event(BaseModel):
    """A camera event (vms/events.py): a pulse (``end_us == start_us``) or an interval (``end_us``
    NULL while open). ``start_us`` is our receive time; the camera's own time is in ``data``."""

    camera = pw.ForeignKeyField(Camera, on_delete="CASCADE", backref="events")
    site = pw.ForeignKeyField(Site, on_delete="CASCADE")
    """The camera's site when the event arrived: the scope of every query."""
    type = pw.CharField(max_length=16)
    start_us = pw.BigIntegerField()
    end_us = pw.BigIntegerField(null=True)
    topic = pw.CharField(max_length=300, default="")
    plate = pw.CharField(max_length=32, default="")
    """Plate events: the plate text normalised for search (vms.events.normalise_plate)."""
    data = pw.TextField(default="{}")  # JSON

    class Meta:
        indexes = ((("camera", "start_us"), False), (("type", "start_us"), False),
                   (("site", "start_us"), False), (("start_us",), False),
                   (("plate",), False))


class Export(BaseModel):
    user = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
    state = pw.CharField(max_length=16, default="queued")
    progress = pw.FloatField(default=0.0)
    camera_ids = pw.TextField(default="[]")  # JSON
    from_us = pw.BigIntegerField()
    to_us = pw.BigIntegerField()
    path = pw.CharField(max_length=500, default="")
    sha256 = pw.CharField(max_length=64, default="")
    manifest = pw.TextField(default="{}")  # JSON
    error = pw.TextField(default="")
    created_us = pw.BigIntegerField()
    finished_us = pw.BigIntegerField(null=True)
    node = pw.CharField(max_length=100, default="")
    """The cluster node that makes it and keeps its file ('' for a single server)."""


class Hold(BaseModel):
    """A camera's time range ``[start_us, end_us)`` kept as evidence.

    Retention must skip every segment that overlaps a hold of its camera (it may delete a held
    segment only once no hold overlaps it any more). Holds are shown on the timeline.
    """

    camera = pw.ForeignKeyField(Camera, on_delete="CASCADE", backref="holds")
    start_us = pw.BigIntegerField()
    end_us = pw.BigIntegerField()
    reason = pw.CharField(max_length=500, default="")
    created_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_us = pw.BigIntegerField()

    class Meta:
        indexes = ((("camera", "start_us"), False),)
        constraints = [pw.SQL("CHECK (end_us > start_us)")]


class Installation(BaseModel):
    """This database's identity (one row): storage volumes carry it in their marker file, so a
    disk belonging to another installation (or none: an empty mount point) is never written to."""

    uuid = pw.CharField(max_length=32, unique=True, default=new_uuid)
    created_us = pw.BigIntegerField(default=0)
    cluster_secret = pw.CharField(max_length=64, default="")
    """Key of node-to-node request signatures (vms/cluster.py); '' until a node first needs it."""


class SegmentUsage(BaseModel):
    """Bytes and count of the segments (not ``missing``) per camera, stream and volume, kept by
    database triggers on ``segment`` (migration 010): every insert, delete and change of a segment
    row, whoever makes it, is counted in the same transaction, so storage figures never scan the
    segment table. No foreign key: a camera's rows may outlive it (at zero)."""

    camera_id = pw.BigIntegerField()
    stream = pw.CharField(max_length=8)
    volume = pw.CharField(max_length=100)
    bytes = pw.BigIntegerField(default=0)
    segments = pw.BigIntegerField(default=0)

    class Meta:
        indexes = ((("camera_id", "stream", "volume"), True),)


class StorageSample(BaseModel):
    """One sample of a storage volume's usage (vms/storage.py samples each volume hourly and keeps
    30 days; the storage page draws them)."""

    volume = pw.CharField(max_length=100)
    at_us = pw.BigIntegerField()
    used_bytes = pw.BigIntegerField()  # bytes of the indexed segments on the volume
    free_bytes = pw.BigIntegerField()  # free bytes of the volume's file system
    total_bytes = pw.BigIntegerField()  # size of the volume's file system

    class Meta:
        indexes = ((("volume", "at_us"), False),)
        constraints = [
            pw.SQL("CHECK (used_bytes >= 0)"),
            pw.SQL("CHECK (free_bytes >= 0)"),
            pw.SQL("CHECK (total_bytes >= 0)"),
        ]


class LiveLayout(BaseModel):
    """A user's saved live grid (vms/layouts.py): tiles per side and the camera of each tile, as a
    JSON list of camera ids (null: an empty tile), read through the user's site scope."""

    user = pw.ForeignKeyField(User, on_delete="CASCADE", backref="live_layouts")
    name = pw.CharField(max_length=100)
    grid = pw.IntegerField()  # tiles per side
    camera_ids = pw.TextField(default="[]")
    created_us = pw.BigIntegerField()
    updated_us = pw.BigIntegerField()

    class Meta:
        indexes = ((("user", "name"), True),)
        constraints = [pw.SQL("CHECK (grid BETWEEN 1 AND 4)")]


class CameraRelay(BaseModel):
    """A relay output (door lock) of a camera as it reported it (migration 013): its current mode
    and delay, and the modes and delay times it accepts (``modes`` comma-separated, empty: not
    said; ``delay_choices_ms`` comma-separated discrete values)."""

    camera = pw.ForeignKeyField(Camera, on_delete="CASCADE", backref="relays")
    token = pw.CharField(max_length=64)
    mode = pw.CharField(max_length=16, default="")
    delay_ms = pw.IntegerField(null=True)
    idle_state = pw.CharField(max_length=8, default="")
    modes = pw.CharField(max_length=64, default="")
    delay_min_ms = pw.IntegerField(null=True)
    delay_max_ms = pw.IntegerField(null=True)
    delay_choices_ms = pw.CharField(max_length=200, default="")
    listed_us = pw.BigIntegerField()

    class Meta:
        indexes = ((("camera", "token"), True),)


class RingAnswer(BaseModel):
    """A doorbell event answered within ``[intercom] ring_seconds`` (vms/rings.py): by a door
    pulse on its camera (``how = 'door'``) or an acknowledgement (``'ack'``). Doorbell events
    without one are missed calls."""

    event = pw.ForeignKeyField(Event, on_delete="CASCADE", unique=True)
    user = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
    username = pw.CharField(max_length=64, default="")
    how = pw.CharField(max_length=8)
    at_us = pw.BigIntegerField()

    class Meta:
        constraints = [pw.SQL("CHECK (how IN ('door', 'ack'))")]


class Node(BaseModel):
    """A ``vms serve`` of a cluster (vms/cluster.py): PostgreSQL only. ``heartbeat_us`` comes from
    the database's clock; a node is alive while it is less than ``[cluster] lease_seconds`` old."""

    name = pw.CharField(max_length=100, unique=True)
    advertise_url = pw.CharField(max_length=500, default="")
    started_us = pw.BigIntegerField(default=0)
    heartbeat_us = pw.BigIntegerField(default=0)
    draining = pw.BooleanField(default=False)
    max_cameras = pw.IntegerField(default=0)  # 0: no cap
    volumes = pw.CharField(max_length=1000, default="")
    """Names of its storage volumes, comma-separated (each volume belongs to one node)."""

    class Meta:
        constraints = [pw.SQL("CHECK (max_cameras >= 0)")]


class CameraLease(BaseModel):
    """Which node records a camera, until ``expires_us`` (database clock). ``epoch`` grows with
    every take: the segment index accepts a recorder's rows only while its epoch is current
    (recorder/index.py), so a node cut off from the database cannot index time twice."""

    camera = pw.ForeignKeyField(Camera, on_delete="CASCADE", unique=True, backref="lease")
    node = pw.CharField(max_length=100, default="", index=True)  # '' : free
    epoch = pw.BigIntegerField(default=0)
    expires_us = pw.BigIntegerField(default=0)
    taken_us = pw.BigIntegerField(default=0)
    reason = pw.CharField(max_length=16, default="")  # node_lost | handover | ''

    class Meta:
        constraints = [pw.SQL("CHECK (epoch >= 0)")]


ALL_MODELS: tuple[type[BaseModel], ...] = (
    Site, User, UserSite, Session, ApiToken, AuditLog, Camera, CameraStream, Run, Segment,
    PendingDeletion, Event, Export, Hold, PurgedRange, Installation, SegmentUsage, StorageSample,
    LiveLayout, CameraRelay, RingAnswer, Node, CameraLease,
)
