"""The recording status of one camera: the recorder's live state per stream, recent runs (start,
end, why they ended) and the gaps between them — as JSON and as a page, from the same data.

Site-scoped through :func:`vms.catalog.get_camera` (a camera of another site is "not found"). The
live state comes from the recorder supervisor when it runs (``SERVICES["recorder"]``); the runs
and gaps from the index.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from vms import catalog
from vms.auth import Principal
from vms.db import models as m
from web.inputs import match_id, query_int
from web.keys import CLOCK, GATEWAY, SERVICES, principal_of
from web.render import render
from web.routing import Routes

routes = Routes()

DEFAULT_RUNS = 20


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
              query=(("limit", f"most recent runs to list (default {DEFAULT_RUNS})"),),
              summary="Recording status (per stream), recent runs with end reasons, and gaps")
async def api_camera_recording(request: web.Request) -> web.StreamResponse:
    return web.json_response(await recording_data(request))


@routes.route("GET", "/cameras/{id}/recording", access="live",
              summary="Recording status page of one camera")
async def camera_recording_page(request: web.Request) -> web.StreamResponse:
    data = await recording_data(request)
    return render(request, "camera_recording.html", data)
