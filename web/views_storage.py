"""Storage: ``GET /api/v1/storage``, ``GET /api/v1/storage/history`` and the ``/storage`` page,
from the same data (:class:`vms.storage.StorageService`, ``app[SERVICES]["storage"]``).

Who sees what: anyone with ``playback`` sees the figures of their own sites' cameras (bytes, oldest
footage kept, days retained); volume-level figures (disks, caps, write rate, holds blocking, bytes
freed, next purge, the usage history) only users with ``manage_cameras`` (installers and
administrators) — for others ``volumes`` is empty. Holds are listed only for cameras of the user's
sites; a volume's ``held_bytes`` counts every hold (it is the volume's space).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from vms.storage import HISTORY_KEEP_DAYS, STORAGE_RIGHT, StorageService, UnknownVolume
from web.inputs import query_int
from web.keys import SERVICES, principal_of
from web.middleware import json_error
from web.render import render
from web.routing import Param, Routes
from web.schemas import ANY_OBJECT, INT, NUM, STR, US, array, nullable, obj
from web.storage_chart import format_bytes, usage_chart

routes = Routes()

HOLD_BLOCKING = obj(id=INT, camera_id=INT, camera_name=STR, start_us=US, end_us=US, reason=STR,
                    bytes=INT, segments=INT)
VOLUME = obj(
    name=STR, path=STR, used_bytes=INT, free_bytes=nullable(INT), total_bytes=nullable(INT),
    max_bytes=INT, min_free_bytes=INT, state=STR, error=STR, write_bytes_per_s=NUM,
    seconds_to_full=nullable(INT), held_bytes=INT, holds=array(HOLD_BLOCKING),
    freed_bytes_24h=INT, freed_segments_24h=INT, freed_by_reason_24h=ANY_OBJECT,
    next_purge_us=nullable(US))
"""One volume (:func:`vms.storage.volume_report`)."""
CAMERA_STORAGE = obj(id=INT, name=STR, site=obj(id=INT, name=STR), archived={"type": "boolean"},
                     used_bytes=INT, retained_from_us=nullable(US), newest_us=nullable(US),
                     retained_days=NUM)
STORAGE = obj(at_us=US, volumes=array(VOLUME), cameras=array(CAMERA_STORAGE))
SAMPLE = obj(at_us=US, used_bytes=INT, free_bytes=INT, total_bytes=INT)
HISTORY = obj(volume=STR, days=INT, samples=array(SAMPLE))


def _service(request: web.Request) -> StorageService:
    service = request.app[SERVICES].get("storage")
    if not isinstance(service, StorageService):
        raise web.HTTPServiceUnavailable(text="storage figures are not available")
    return service


@routes.route("GET", "/api/v1/storage", access="playback",
              summary="Storage: volumes (used, free, cap, write rate, holds blocking, freed, next "
                      "purge; with manage_cameras) and your sites' cameras (bytes, oldest kept)",
              response=STORAGE)
async def api_storage(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    assert principal is not None
    return web.json_response(await _service(request).report(principal))


@routes.route("GET", "/api/v1/storage/history", access=STORAGE_RIGHT,
              summary="A volume's hourly usage samples over the last days",
              query=(Param("volume", "volume name (default: the first)"),
                     Param("days", f"1–{HISTORY_KEEP_DAYS} (default {HISTORY_KEEP_DAYS})",
                           {"type": "integer", "minimum": 1, "maximum": HISTORY_KEEP_DAYS})),
              response=HISTORY)
async def api_storage_history(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    days = query_int(request, "days", default=HISTORY_KEEP_DAYS, minimum=1,
                     maximum=HISTORY_KEEP_DAYS)
    assert days is not None
    volume = request.query.get("volume") or service.settings.volumes[0].name
    try:
        samples = await service.history(volume, days)
    except UnknownVolume:
        names = ", ".join(v.name for v in service.settings.volumes)
        return json_error(404, f"no volume {volume!r} (volumes: {names})", field="volume")
    return web.json_response({"volume": volume, "days": days, "samples": samples})


@routes.route("GET", "/storage", access="playback", summary="Storage page")
async def storage_page(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    assert principal is not None
    service = _service(request)
    data = await service.report(principal)
    charts: dict[str, Any] = {}
    for volume in data["volumes"]:
        samples = await service.history(volume["name"], HISTORY_KEEP_DAYS)
        charts[volume["name"]] = usage_chart(samples, data["at_us"], HISTORY_KEEP_DAYS,
                                             max_bytes=volume["max_bytes"])
    return render(request, "storage.html", {"storage": data, "charts": charts,
                                            "size": format_bytes})
