"""Evidence export routes: create, list, follow, cancel and download exports; the exports page.

Thin handlers over :class:`recorder.export.ExportService` (``app[SERVICES]["exports"]``). An export
is visible only to the user who made it (admins: all) and only while they still see every camera
in it; anything else answers 404. Downloads are ``FileResponse`` (HTTP Range, If-Range), never
cached (``no-store``); every GET of the file — a whole download, or any part of one — writes an
``export_download`` audit record with the Range it asked for. In a cluster the file stays on the
node that made the export: a download asked of another node is checked and audited there, then
proxied to the maker (web/cluster_proxy.py); status and manifest come from the database anywhere.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from recorder.export import ExportNotFound, ExportService
from recorder.export_plan import ExportError, parse_local
from recorder.export_store import export_node
from vms import catalog
from vms.auth import Principal
from vms.clock import check_instant, parse_instant
from web.cluster_proxy import node_of, proxy
from web.inputs import bad_request, json_object, match_id
from web.keys import GATEWAY, SERVICES, SETTINGS, principal_of
from web.messages import translate_message
from web.middleware import client_address
from web.render import render
from web.routing import JSON, Param, Routes
from web.schemas import ANY_OBJECT, ID, INSTANT, INT, STR, US, array, enum, nullable, obj

log = logging.getLogger(__name__)

routes = Routes()

CREATE_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["camera_ids"],
    "properties": {
        "camera_ids": {"type": "array", "items": ID, "minItems": 1, "maxItems": 1000},
        "from": INSTANT,
        "to": INSTANT,
        "from_local": {"type": "string", "maxLength": 40,
                       "description": "YYYY-MM-DDTHH:MM in the site's zone"},
        "to_local": {"type": "string", "maxLength": 40,
                     "description": "YYYY-MM-DDTHH:MM in the site's zone"},
    },
}

EXPORT = obj(
    id=INT, state=enum("queued", "running", "done", "failed", "cancelled", "expired"),
    progress={"type": "number", "minimum": 0, "maximum": 1}, error=STR, camera_ids=array(INT),
    from_us=US, to_us=US, created_us=US, finished_us=nullable(US), user_id=nullable(INT),
    username=STR, file_name=STR, size_bytes=nullable(INT), sha256=STR,
    cameras=array(obj(id=INT, name=STR)), error_text=STR)
"""An export as :func:`recorder.export.export_dict` shows it, plus ``error_text``: the error in the
caller's language (web/messages.py)."""


def _shown(export: dict[str, Any]) -> dict[str, Any]:
    return {**export, "error_text": translate_message(export.get("error") or "")}


def _service(request: web.Request) -> ExportService:
    service = request.app[SERVICES].get("exports")
    if service is None:
        raise web.HTTPServiceUnavailable(text="the export service is not running")
    assert isinstance(service, ExportService)
    return service


def _principal(request: web.Request) -> Principal:
    principal = principal_of(request)
    assert principal is not None
    return principal


def _instant(data: dict[str, Any], key: str, tz_name: str) -> int:
    value = data.get(key)
    local = data.get(f"{key}_local")
    if value is not None and value != "":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise bad_request(f"field {key!r} must be ISO-8601 with an offset or integer µs")
        try:
            return check_instant(value) if isinstance(value, int) else parse_instant(value)
        except ValueError as exc:
            raise bad_request(f"field {key!r}: {exc}") from None
    if isinstance(local, str) and local:
        try:
            return parse_local(local, tz_name)
        except (ExportError, ValueError) as exc:
            raise bad_request(f"field '{key}_local': {exc}") from None
    raise bad_request(f"field {key!r} (or '{key}_local') is required")


@routes.route("POST", "/api/v1/exports", access="export", body=CREATE_BODY,
              statuses=(201,), response=obj(id=INT, state=STR),
              summary="Queue an export of cameras over a time range; answers its id")
async def api_create(request: web.Request) -> web.StreamResponse:
    principal = _principal(request)
    data = await json_object(request)
    raw_ids = data.get("camera_ids")
    if isinstance(raw_ids, int | str) and not isinstance(raw_ids, bool):
        raw_ids = [raw_ids]
    if not isinstance(raw_ids, list) or not raw_ids:
        raise bad_request("field 'camera_ids' must be a non-empty list of camera ids")
    camera_ids: list[int] = []
    for item in raw_ids:
        if isinstance(item, str) and item.isascii() and item.isdigit() and len(item) <= 18:
            item = int(item)
        if not isinstance(item, int) or isinstance(item, bool) or item < 1:
            raise bad_request("field 'camera_ids' must hold positive integers")
        camera_ids.append(item)
    gateway = request.app[GATEWAY]
    try:
        first = await gateway.read(catalog.get_camera, principal, camera_ids[0])
    except catalog.NotFound:
        raise web.HTTPNotFound(text=f"no camera {camera_ids[0]}") from None
    tz_name = first.site.timezone
    from_us = _instant(data, "from", tz_name)
    to_us = _instant(data, "to", tz_name)
    try:
        export_id = await _service(request).create(principal, camera_ids, from_us, to_us,
                                                   address=client_address(request))
    except catalog.NotFound as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    except ExportError as exc:
        raise bad_request(str(exc)) from None
    return web.json_response({"id": export_id, "state": "queued"}, status=201)


@routes.route("GET", "/api/v1/exports", access="export",
              response=obj(exports=array(EXPORT)),
              summary="Your exports (administrators: everyone's), newest first")
async def api_list(request: web.Request) -> web.StreamResponse:
    exports = await _service(request).list_exports(_principal(request))
    return web.json_response({"exports": [_shown(e) for e in exports]})


async def _get(request: web.Request) -> dict[str, Any]:
    try:
        return _shown(await _service(request).get(_principal(request), match_id(request)))
    except ExportNotFound:
        raise web.HTTPNotFound(text="no such export") from None


# before /exports/{id}, which would take "signing-key" for an id
@routes.route("GET", "/api/v1/exports/signing-key", access="export",
              query=(Param("format", "json (default) or pem", enum("json", "pem")),),
              media=(JSON, "application/x-pem-file"),
              response=obj(algorithm=STR, key_id=STR, public_key=STR, public_key_pem=STR),
              summary="The public key that signs export manifests (check with `vms verify --key`);"
                      " ?format=pem downloads it as a PEM file")
async def api_signing_key(request: web.Request) -> web.StreamResponse:
    signer = _service(request).signer
    fmt = request.query.get("format", "json")
    if fmt == "pem":
        return web.Response(text=signer.public_pem(), content_type="application/x-pem-file",
                            headers={"Content-Disposition": 'attachment; filename='
                                     f'"vms-export-signing-key-{signer.key_id}.pem"'})
    if fmt != "json":
        raise bad_request(f"format: expected json or pem, got {fmt!r}")
    return web.json_response(signer.public_info())


@routes.route("GET", "/api/v1/exports/{id}", access="export",
              response=EXPORT,
              summary="One export: state (queued|running|done|failed|cancelled), progress, error")
async def api_get(request: web.Request) -> web.StreamResponse:
    return web.json_response(await _get(request))


@routes.route("POST", "/api/v1/exports/{id}/cancel", access="export",
              response=EXPORT, summary="Cancel a queued or running export")
async def api_cancel(request: web.Request) -> web.StreamResponse:
    try:
        data = await _service(request).cancel(_principal(request), match_id(request))
    except ExportNotFound:
        raise web.HTTPNotFound(text="no such export") from None
    except ExportError as exc:
        raise web.HTTPConflict(text=str(exc)) from None
    return web.json_response(_shown(data))


@routes.route("GET", "/api/v1/exports/{id}/manifest", access="export",
              response=obj(format=STR, export_id=INT, cameras=array(ANY_OBJECT)),
              summary="The manifest of a finished export (JSON)")
async def api_manifest(request: web.Request) -> web.StreamResponse:
    export_id = match_id(request)
    try:
        manifest = await _service(request).manifest(_principal(request), export_id)
    except ExportNotFound:
        raise web.HTTPNotFound(text="no such export") from None
    except ExportError as exc:
        raise web.HTTPConflict(text=str(exc)) from None
    response = web.json_response(manifest, dumps=_pretty)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="export-{export_id}.manifest.json"')
    return response


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


@routes.route("GET", "/api/v1/exports/{id}/file", access="export",
              statuses=(200, 206), media=("video/mp4", "application/zip"),
              summary="Download the exported MP4 (one camera) or ZIP (several); HTTP Range works")
async def api_file(request: web.Request) -> web.StreamResponse:
    export_id = match_id(request)
    principal = _principal(request)
    service = _service(request)
    # every request that can send bytes is recorded, with its range: a client choosing where a
    # download starts (bytes=-N, bytes=1-) must not choose whether it is audited. A browser
    # downloads with one request and resumes with one more; HEAD sends no bytes. A download
    # another node proxies here was recorded there, with the user's name.
    record = request.method == "GET" and principal.via != "node"
    try:
        remote = await node_of(request, await request.app[GATEWAY].read(
            export_node, principal, export_id)) if request.app[SETTINGS].clustered else None
        path, name = await service.file_for_download(
            principal, export_id, address=client_address(request), record=record,
            byte_range=request.headers.get("Range", ""), local=remote is None)
    except ExportNotFound:
        raise web.HTTPNotFound(text="no such export") from None
    except ExportError as exc:
        raise web.HTTPConflict(text=str(exc)) from None
    if remote is not None:  # the file is on the node that made it
        return await proxy(request, remote, "the export's file")
    return web.FileResponse(path, headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store",
    })


@routes.route("GET", "/exports", access="export", summary="Exports page: new export, progress")
async def exports_page(request: web.Request) -> web.StreamResponse:
    principal = _principal(request)
    # removed (archived) cameras too: their recordings are still evidence
    cameras = await request.app[GATEWAY].read(catalog.list_cameras, principal, archived=None)
    service = _service(request)
    exports = await service.list_exports(principal)
    return render(request, "exports.html", {"cameras": cameras, "exports": exports,
                                            "signing_key_id": service.signer.key_id})
