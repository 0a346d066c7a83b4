"""The recording status of one camera: the recorder's live state per stream, recent runs (start,
end, why they ended) and the gaps between them — as JSON and as a page, from the same data. Also
its recording settings (mode, schedule, pre/post-roll, per-stream record and RTSP transport):
read and changed through :mod:`recorder.settings` (JSON API and the camera page's form), audited,
and handed to the running supervisor at once.

Site-scoped through :func:`vms.catalog.get_camera` (a camera of another site is "not found"). The
live state comes from the recorder supervisor when it runs (``SERVICES["recorder"]``); the runs
and gaps from the index.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from recorder.settings import STREAM_KINDS, SettingsError, apply_change, parse_change, settings_of
from vms import audit, catalog
from vms.auth import Principal
from vms.clock import Clock
from vms.db import models as m
from vms.retention import PolicyError
from web import views_retention
from web.camera_page import camera_page_context, volume_names
from web.inputs import json_object, match_id, query_int
from web.keys import CLOCK, GATEWAY, SERVICES, principal_of
from web.messages import field_error, translate_message
from web.middleware import client_address, json_error
from web.render import render
from web.routing import Param, Routes
from web.schemas import BOOL, INT, RECORDING_STATUS, SITE_REF, STR, US, array, nullable, obj, or_blank

routes = Routes()

DEFAULT_RUNS = 20

RECORDING = obj(
    camera=obj(id=INT, name=STR, recording_mode=STR, schedule=STR, event_pre_s=INT,
               event_post_s=INT, site=SITE_REF),
    streams=array(obj(kind=STR, record=BOOL, rtsp_transport=STR)),
    runs=array(obj(id=INT, stream=STR, mode=STR, start_us=US, end_us=nullable(US),
                   end_reason=STR)),
    gaps=array(obj(stream=STR, start_us=US, end_us=US, duration_us=INT, reason=STR)),
    status=RECORDING_STATUS, now_us=US)
"""A camera's recording status and history (:func:`recording_data`)."""


def recording_history(principal: Principal, camera_id: int, limit: int) -> dict[str, Any]:
    """Camera, recent runs per stream (newest first) and the gaps between consecutive runs."""
    camera = catalog.get_camera(principal, camera_id)
    streams = list(m.CameraStream.select().where(m.CameraStream.camera == camera)
                   .order_by(m.CameraStream.kind))
    runs = list(m.Run.select().where(m.Run.camera == camera)
                .order_by(m.Run.start_us.desc()).limit(limit))
    run_list = [{"id": r.id, "stream": r.stream, "mode": r.mode, "start_us": r.start_us,
                 "end_us": r.end_us, "end_reason": r.end_reason} for r in runs]
    gaps: list[dict[str, Any]] = []
    by_stream: dict[str, list[m.Run]] = {}
    for r in reversed(runs):  # oldest first
        by_stream.setdefault(r.stream, []).append(r)
    for stream, items in by_stream.items():
        for prev, nxt in zip(items, items[1:], strict=False):
            if prev.end_us is not None and nxt.start_us > prev.end_us:
                gaps.append({"stream": stream, "start_us": prev.end_us, "end_us": nxt.start_us,
                             "duration_us": nxt.start_us - prev.end_us,
                             "reason": prev.end_reason or "unknown"})
    gaps.sort(key=lambda g: g["start_us"], reverse=True)
    return {
        "camera": {"id": camera.id, "name": camera.name, "recording_mode": camera.recording_mode,
                   "schedule": camera.schedule, "event_pre_s": camera.event_pre_s,
                   "event_post_s": camera.event_post_s,
                   "site": {"id": camera.site.id, "name": camera.site.name,
                            "timezone": camera.site.timezone}},
        "streams": [{"kind": s.kind, "record": s.record,
                     "rtsp_transport": s.rtsp_transport or "default"} for s in streams],
        "runs": run_list,
        "gaps": gaps,
        "stored_status": {"state": camera.status, "reason": camera.status_reason,
                          "since_us": camera.status_since_us},
    }


def live_status(app: web.Application, camera_id: int,
                stored: dict[str, Any] | None = None) -> dict[str, Any]:
    """The recorder supervisor's status of one camera, or the stored one when it is not running."""
    recorder = app[SERVICES].get("recorder")
    if recorder is not None:
        status: dict[str, Any] = recorder.status(camera_id)
        status["recorder_running"] = True
        status["streams"] = {kind: {**st, "reason_text": translate_message(st.get("reason", ""))}
                             for kind, st in (status.get("streams") or {}).items()}
        return status
    out = dict(stored or {"state": "stopped", "reason": "", "since_us": 0})
    out.update({"streams": {}, "recorder_running": False})
    return out


async def recording_data(request: web.Request) -> dict[str, Any]:
    principal = principal_of(request)
    assert principal is not None
    camera_id = match_id(request)
    limit = query_int(request, "limit", default=DEFAULT_RUNS, minimum=1, maximum=1000)
    assert limit is not None
    try:
        data = await request.app[GATEWAY].read(recording_history, principal, camera_id, limit)
    except catalog.NotFound:
        raise web.HTTPNotFound(text="no such camera") from None
    data["status"] = live_status(request.app, camera_id, data.pop("stored_status"))
    data["now_us"] = request.app[CLOCK].now_us()
    return data


@routes.route("GET", "/api/v1/cameras/{id}/recording", access="live",
              query=(Param("limit", f"most recent runs to list (default {DEFAULT_RUNS})",
                           or_blank({"type": "integer", "minimum": 1, "maximum": 1000})),),
              response=RECORDING,
              summary="Recording status (per stream), recent runs with end reasons, and gaps")
async def api_camera_recording(request: web.Request) -> web.StreamResponse:
    return web.json_response(await recording_data(request))


@routes.route("GET", "/cameras/{id}/recording", access="live",
              summary="Recording status page of one camera")
async def camera_recording_page(request: web.Request) -> web.StreamResponse:
    data = await recording_data(request)
    return render(request, "camera_recording.html", data)


# -- recording settings ---------------------------------------------------------------------------

SETTINGS_BODY: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "recording_mode": {"enum": ["continuous", "scheduled", "event", "off"]},
        "schedule": {"description": "windows in the site's time zone: a list like "
                                    '[{"days": "mon-fri", "start": "07:00", "end": "19:00"}] or '
                                    "text, one 'DAYS HH:MM-HH:MM' a line",
                     "oneOf": [{"type": "array", "items": {"type": "object"}},
                               {"type": "string"}]},
        "event_pre_s": {"type": "integer", "minimum": 0, "maximum": 3600},
        "event_post_s": {"type": "integer", "minimum": 0, "maximum": 3600},
        "volume": {"type": "string", "maxLength": 200,
                   "description": "storage volume name ([[storage.volumes]]); \"\": the first"},
        "streams": {"type": "object", "additionalProperties": {
            "type": "object", "additionalProperties": False,
            "properties": {"record": {"type": "boolean"},
                           "rtsp_transport": {"enum": ["tcp", "udp", "default"]}}}},
    },
}


SETTINGS_VIEW = obj(
    camera_id=INT, name=STR, recording_mode=STR,
    schedule={"anyOf": [array({"type": "object"}), STR]}, schedule_text=STR, timezone=STR,
    event_pre_s=INT, event_post_s=INT, volume=nullable(STR),
    streams={"type": "object", "additionalProperties": obj(record=BOOL, rtsp_transport=STR)},
    updated_us=US)
"""A camera's recording settings (:func:`recorder.settings.settings_of`)."""


def read_settings(principal: Principal, camera_id: int) -> dict[str, Any]:
    return settings_of(catalog.get_camera(principal, camera_id))


def change_settings(principal: Principal, camera_id: int, raw: dict[str, Any], clock: Clock,
                    address: str, volume_names: tuple[str, ...] = ()
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate and apply a change to a camera the principal may see; audited when it changes
    anything. Raises ``catalog.NotFound`` or :class:`SettingsError`."""
    camera = catalog.get_camera(principal, camera_id, in_service=True)
    after, diff = apply_change(camera, parse_change(raw, volume_names), clock.now_us())
    if diff:
        audit.record(clock, "camera_change", principal=principal, target=camera.name,
                     site_id=camera.site.id, address=address,
                     detail={"camera_id": camera.id, "recording": diff})
    return after, diff


async def _change(request: web.Request, raw: dict[str, Any]) -> dict[str, Any]:
    """Apply ``raw``; tell the running supervisor; the new settings and live status."""
    principal = principal_of(request)
    assert principal is not None
    camera_id = match_id(request)
    try:
        after, diff = await request.app[GATEWAY].write(
            change_settings, principal, camera_id, raw, request.app[CLOCK],
            client_address(request), volume_names(request))
    except catalog.Archived as exc:
        raise web.HTTPConflict(text=str(exc)) from None
    except catalog.NotFound:
        raise web.HTTPNotFound(text="no such camera") from None
    recorder = request.app[SERVICES].get("recorder")
    if diff and recorder is not None:
        await recorder.camera_changed(camera_id)
    after["changed"] = sorted(diff)
    after["status"] = live_status(request.app, camera_id)
    return after


@routes.route("GET", "/api/v1/cameras/{id}/recording-settings", access="live",
              response=SETTINGS_VIEW,
              summary="Recording settings: mode, schedule, pre/post-roll, streams, volume")
async def api_recording_settings(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    assert principal is not None
    try:
        data = await request.app[GATEWAY].read(read_settings, principal, match_id(request))
    except catalog.NotFound:
        raise web.HTTPNotFound(text="no such camera") from None
    return web.json_response(data)


@routes.route("PUT", "/api/v1/cameras/{id}/recording-settings", access="manage_cameras",
              body=SETTINGS_BODY,
              response={**SETTINGS_VIEW,
                        "properties": {**SETTINGS_VIEW["properties"], "changed": array(STR),
                                       "status": RECORDING_STATUS},
                        "required": [*SETTINGS_VIEW["required"], "changed", "status"]},
              summary="Change recording settings (fields left out stay as they are); the "
                      "recorder applies them at once")
async def api_put_recording_settings(request: web.Request) -> web.StreamResponse:
    raw = await json_object(request)
    try:
        return web.json_response(await _change(request, raw))
    except SettingsError as exc:
        return json_error(400, f"field {exc.field!r}: {exc.message}", field=exc.field)


def form_to_change(form: dict[str, Any]) -> dict[str, Any]:
    """The camera page's form (flat fields, ``main.record`` …) shaped as an API change. A field
    that was not sent (disabled until the page's script loaded the current values) is left out."""
    raw: dict[str, Any] = {}
    for key in ("recording_mode", "schedule", "event_pre_s", "event_post_s", "volume"):
        if key in form:
            raw[key] = form[key]
    streams: dict[str, dict[str, Any]] = {}
    for kind in STREAM_KINDS:
        for key in ("record", "rtsp_transport"):
            if f"{kind}.{key}" in form:
                streams.setdefault(kind, {})[key] = form[f"{kind}.{key}"]
    if streams:
        raw["streams"] = streams
    return raw


@routes.route("POST", "/cameras/{id}/recording-settings", access="manage_cameras",
              summary="Change recording settings (the camera page's form)")
async def recording_settings_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    fields = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    try:
        await views_retention.apply_form(request, match_id(request), fields)
        await _change(request, form_to_change(fields))
    except catalog.NotFound:
        raise web.HTTPNotFound(text="no such camera") from None
    except (SettingsError, PolicyError) as exc:
        principal = principal_of(request)
        assert principal is not None
        try:
            camera = await request.app[GATEWAY].read(catalog.camera_detail, principal,
                                                     match_id(request))
        except catalog.NotFound:
            raise web.HTTPNotFound(text="no such camera") from None
        return render(request, "camera.html", camera_page_context(
            request, camera,
            recording_form={"error": field_error(exc.field, exc.message), "sent": fields}),
            status=400)
    raise web.HTTPSeeOther(f"/cameras/{match_id(request)}#camera-recording-settings")
