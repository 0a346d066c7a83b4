"""A camera's recording settings: reading them, validating a change, and applying it.

This module owns the one service that changes how a camera is recorded — its mode (``continuous``,
``scheduled``, ``event``, ``off``), its schedule windows (site time zone, :mod:`recorder.schedule`),
its event pre/post-roll, the storage volume it records to (a configured ``[[storage.volumes]]``
name; empty: the first), and per stream whether it is recorded and its RTSP transport. The CLI
(``vms recording set``) and the web (``PUT /api/v1/cameras/{id}/recording-settings`` and the camera
page form) both call :func:`parse_change` then :func:`apply_change`; neither holds rules of its own.

A change is partial: a field that is absent is left as it is. Every validation error is a
:class:`SettingsError` naming the field (``event_pre_s``, ``schedule``, ``streams.sub.record`` …).
Applying bumps ``Camera.updated_us``, which a running supervisor watches; callers that hold the
supervisor also call its ``camera_changed`` so the change applies at once. Synchronous functions
meant for ``Gateway.write``/``read`` (one transaction); no access control here — the caller has
already found the camera through the site-scoped catalog.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from recorder.schedule import (
    ScheduleError,
    dump_schedule,
    parse_schedule,
    parse_schedule_text,
    schedule_lines,
)
from vms.db.models import Camera, CameraStream

MODES = ("continuous", "scheduled", "event", "off")
TRANSPORTS = ("tcp", "udp", "default")
"""``default``: the server's ``recording.rtsp_transport`` (stored as an empty string)."""
STREAM_KINDS = ("main", "sub")
PRE_ROLL_MAX_S = 3600
POST_ROLL_MAX_S = 3600
CAMERA_FIELDS = ("recording_mode", "schedule", "event_pre_s", "event_post_s", "streams", "volume")


class SettingsError(ValueError):
    """A change that cannot be applied; ``field`` names the offending field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class StreamChange:
    record: bool | None = None
    rtsp_transport: str | None = None
    """``tcp``, ``udp`` or ``""`` (the server default)."""


@dataclass(frozen=True)
class Change:
    """A validated, partial change; ``None`` = leave as it is."""

    recording_mode: str | None = None
    schedule: str | None = None
    """Normalised JSON of the windows (``dump_schedule``)."""
    event_pre_s: int | None = None
    event_post_s: int | None = None
    streams: dict[str, StreamChange] = field(default_factory=dict)
    volume: str | None = None
    """The storage volume the camera records to; ``""``: the first configured volume."""

    def is_empty(self) -> bool:
        return (self.recording_mode is None and self.schedule is None and self.event_pre_s is None
                and self.event_post_s is None and not self.streams and self.volume is None)


def _seconds(data: dict[str, Any], key: str, maximum: int) -> int | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise SettingsError(key, "must be a whole number of seconds, got a boolean")
    if isinstance(value, str):
        text = value
        try:
            value = int(text.strip())
        except ValueError:
            raise SettingsError(key, f"must be a whole number of seconds, got {text[:40]!r}") \
                from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise SettingsError(key, f"must be a whole number of seconds, got {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise SettingsError(key, f"must be between 0 and {maximum} seconds, got {value}")
    return value


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("yes", "true", "on", "1"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("no", "false", "off", "0"):
        return False
    raise SettingsError(key, f"must be true or false (yes/no), got {str(value)[:40]!r}")


def _volume(data: dict[str, Any], volume_names: Sequence[str]) -> str | None:
    value = data.get("volume")
    if value is None:
        return None
    if not isinstance(value, str):
        raise SettingsError("volume", f"must be a volume name (a string), got "
                                      f"{type(value).__name__}")
    value = value.strip()
    if value and value not in volume_names:
        known = ", ".join(repr(n) for n in volume_names) or "none"
        raise SettingsError("volume", f"unknown volume {value[:80]!r} (configured: {known}; "
                                      '"" for the first one)')
    return value


def parse_change(data: dict[str, Any], volume_names: Sequence[str] = ()) -> Change:
    """Validate a change (a JSON object, or a form already shaped like one). ``volume_names``:
    the configured storage volumes (``[[storage.volumes]]``), which a ``volume`` must name."""
    unknown = sorted(set(data) - set(CAMERA_FIELDS))
    if unknown:
        raise SettingsError(unknown[0], f"unknown field (known: {', '.join(CAMERA_FIELDS)})")
    mode = data.get("recording_mode")
    if mode is not None and mode not in MODES:
        raise SettingsError("recording_mode", f"must be one of {', '.join(MODES)}, got "
                                              f"{str(mode)[:40]!r}")
    schedule: str | None = None
    raw = data.get("schedule")
    if raw is not None:
        try:
            if isinstance(raw, list):
                windows = parse_schedule(json.dumps(raw))
            elif isinstance(raw, str):
                windows = parse_schedule_text(raw)
            else:
                raise ScheduleError("must be a list of windows, e.g. "
                                    '[{"days": "mon-fri", "start": "07:00", "end": "19:00"}]')
        except ScheduleError as exc:
            raise SettingsError("schedule", str(exc)) from None
        schedule = dump_schedule(windows)
    streams: dict[str, StreamChange] = {}
    raw_streams = data.get("streams")
    if raw_streams is not None:
        if not isinstance(raw_streams, dict):
            raise SettingsError("streams", 'must be an object, e.g. {"main": {"record": true}}')
        for kind, item in raw_streams.items():
            where = f"streams.{kind}"
            if kind not in STREAM_KINDS:
                raise SettingsError(where, f"unknown stream (known: {', '.join(STREAM_KINDS)})")
            if not isinstance(item, dict):
                raise SettingsError(where, "must be an object with record and/or rtsp_transport")
            extra = sorted(set(item) - {"record", "rtsp_transport"})
            if extra:
                raise SettingsError(f"{where}.{extra[0]}",
                                    "unknown field (known: record, rtsp_transport)")
            record = None
            if item.get("record") is not None:
                record = _bool(item["record"], f"{where}.record")
            transport = item.get("rtsp_transport")
            if transport is not None:
                if transport not in TRANSPORTS:
                    raise SettingsError(f"{where}.rtsp_transport",
                                        f"must be one of {', '.join(TRANSPORTS)}, got "
                                        f"{str(transport)[:40]!r}")
                transport = "" if transport == "default" else transport
            streams[kind] = StreamChange(record, transport)
    return Change(
        recording_mode=mode, schedule=schedule,
        event_pre_s=_seconds(data, "event_pre_s", PRE_ROLL_MAX_S),
        event_post_s=_seconds(data, "event_post_s", POST_ROLL_MAX_S),
        streams=streams, volume=_volume(data, volume_names),
    )


def settings_of(camera: Camera) -> dict[str, Any]:
    """The recording settings of ``camera`` as the API returns them (site included for the zone)."""
    try:
        windows = parse_schedule(camera.schedule)
        schedule: Any = [w.as_dict() for w in windows]
        schedule_text = schedule_lines(windows)
    except ScheduleError:
        schedule = schedule_text = camera.schedule  # stored before validation: show it as it is
    streams = CameraStream.select().where(CameraStream.camera == camera).order_by(
        CameraStream.kind)
    return {
        "camera_id": camera.id, "name": camera.name,
        "recording_mode": camera.recording_mode, "schedule": schedule,
        "schedule_text": schedule_text,
        "timezone": camera.site.timezone,
        "event_pre_s": camera.event_pre_s, "event_post_s": camera.event_post_s,
        "streams": {s.kind: {"record": s.record, "rtsp_transport": s.rtsp_transport or "default"}
                    for s in streams},
        "volume": camera.volume,
        "updated_us": camera.updated_us,
    }


def apply_change(camera: Camera, change: Change, now_us: int) -> tuple[dict[str, Any],
                                                                       dict[str, Any]]:
    """Apply ``change`` to ``camera`` (inside a write transaction): ``(settings after, diff)``,
    the diff being ``{field: [before, after]}`` of what actually changed (for the audit log)."""
    before = settings_of(camera)
    if change.is_empty():
        return before, {}
    kinds = set(before["streams"])
    for kind in change.streams:
        if kind not in kinds:
            raise SettingsError(f"streams.{kind}", f"camera {camera.id} has no {kind} stream")
    fields: dict[str, Any] = {}
    for name in ("recording_mode", "schedule", "event_pre_s", "event_post_s"):
        value = getattr(change, name)
        if value is not None:
            fields[name] = value
    if change.volume is not None:
        fields["volume"] = change.volume or None
    for kind, sc in change.streams.items():
        stream_fields: dict[str, Any] = {}
        if sc.record is not None:
            stream_fields["record"] = sc.record
        if sc.rtsp_transport is not None:
            stream_fields["rtsp_transport"] = sc.rtsp_transport
        if stream_fields:
            CameraStream.update(**stream_fields).where(
                (CameraStream.camera == camera) & (CameraStream.kind == kind)).execute()
    Camera.update(updated_us=now_us, **fields).where(Camera.id == camera.id).execute()
    fresh = Camera.get_by_id(camera.id)
    after = settings_of(fresh)
    diff = {k: [before[k], after[k]] for k in ("recording_mode", "schedule", "event_pre_s",
                                                "event_post_s", "volume")
            if before[k] != after[k]}
    for kind in after["streams"]:
        for key, value in after["streams"][kind].items():
            old = before["streams"].get(kind, {}).get(key)
            if old != value:
                diff[f"streams.{kind}.{key}"] = [old, value]
    return after, diff
