"""Discovery and onboarding over HTTP: scan jobs, the discovery page, adopt/configure/remove, snapshots.

Handlers are thin: parse, call :class:`onvif_bridge.adopt.Onboarding` (or the scan jobs), answer
JSON. A scan job (``POST /api/v1/discovery``) runs discovery and bounded interrogation in a
background task owned by :class:`onvif_bridge.scan_jobs.ScanJobs`; its rows fill in as answers
arrive and the page polls ``GET /api/v1/discovery/{id}``. Its refusals are answered here: an
unknown job or device 404, too many scans 429. No answer ever carries a password.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from aiohttp import web

from onvif_bridge.adopt import Onboarding
from onvif_bridge.configure import ConfigureRequest, RecordingProfile
from onvif_bridge.drift import DriftChecker
from onvif_bridge.errors import DiscoveryTargetError
from onvif_bridge.onboarding_common import OnboardingError
from onvif_bridge.scan import report_dict
from onvif_bridge.scan_jobs import ScanJob, ScanJobNotFound, ScanJobs, TooManyScans
from recorder.purge import PurgeRefused, delete_camera_recordings, held_footage_problem
from vms import catalog
from vms.auth import Principal
from web.cluster_proxy import live_holder_of, proxy
from web.inputs import (
    bad_request,
    get_int,
    get_str,
    get_str_list,
    json_object,
    match_id,
    query_int,
)
from web.keys import CLOCK, GATEWAY, SETTINGS, principal_of, service_of
from web.messages import translate_message
from web.middleware import client_address, json_error
from web.render import render
from web.routing import Handler, Param, Routes
from web.schemas import (
    ANY_OBJECT,
    BOOL,
    CAMERA_DETAIL,
    ID,
    INT,
    MAX_ID,
    NUM,
    STR,
    US,
    array,
    enum,
    nullable,
    obj,
)

log = logging.getLogger(__name__)

MAX_TARGETS = 256
MAX_TIMEOUT_S = 30.0
DEFAULT_TIMEOUT_S = 3.0

_HTTP_STATUS = {"invalid": 400, "not_found": 404, "conflict": 409, "camera": 424}
"""``camera``: the camera refused or did not answer — 424 Failed Dependency, a 4xx on purpose: our
server did not fail, and clients must not retry blindly as they would on a 5xx."""


routes = Routes()


def onboarding_of(app: web.Application) -> Onboarding:
    """The onboarding service the composition root created (``vms.app``)."""
    return service_of(app, "onboarding", Onboarding,
                      "camera onboarding is not running on this server")


def drift_of(app: web.Application) -> DriftChecker:
    """The encoder drift checker the composition root created (``vms.app``)."""
    return service_of(app, "drift", DriftChecker, "encoder checks are not running on this server")


def jobs_of(app: web.Application) -> ScanJobs:
    return service_of(app, "discovery_jobs", ScanJobs,
                      "camera discovery is not running on this server")


# --- helpers ------------------------------------------------------------------------------------

def _principal(request: web.Request) -> Principal:
    principal = principal_of(request)
    assert principal is not None  # the access middleware let the request in
    return principal


def _translated(device: dict[str, Any]) -> dict[str, Any]:
    """A device report (:func:`report_dict`, a scan row) with its message, warnings and profile
    errors in the caller's language (English callers get the core's wording)."""
    out = {**device, "message": translate_message(device.get("message") or "")}
    if "warnings" in device:
        out["warnings"] = [translate_message(w) for w in device["warnings"]]
    if "profiles" in device:
        out["profiles"] = [{**p, "error": translate_message(p["error"]) if p.get("error")
                            else p.get("error")} for p in device["profiles"]]
    return out


def _translated_results(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Bulk adoption results with each failure's ``error`` in the caller's language."""
    return [{**r, "error": translate_message(r["error"])} if r.get("error") else r
            for r in results]


def _refused(exc: OnboardingError) -> web.Response:
    """The error answer (same shape as every API error, plus ``kind`` and the camera report)."""
    extra: dict[str, Any] = {"kind": exc.kind}
    if exc.report is not None:
        extra["report"] = _translated(report_dict(exc.report))
    return json_error(_HTTP_STATUS.get(exc.kind, 400), translate_message(str(exc)), **extra)


def _answers_refusals(handler: Handler) -> Handler:
    """The handler, answering an :class:`OnboardingError` it raises with :func:`_refused` (its
    status from ``kind``, the message, the camera report) instead of letting it become a 500."""

    @functools.wraps(handler)
    async def answering(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except OnboardingError as exc:
            return _refused(exc)

    return answering


def _credentials(data: dict[str, Any]) -> tuple[str, str]:
    return (get_str(data, "username", required=False, max_len=200),
            get_str(data, "password", required=False, max_len=200))


def _job(request: web.Request) -> tuple[ScanJobs, ScanJob]:
    """The scan jobs and the caller's job named by the path (404 when there is none)."""
    jobs = jobs_of(request.app)
    text = request.match_info.get("id", "")
    if not text or len(text) > 32 or not all(c.isalnum() or c in "-_" for c in text):
        raise web.HTTPNotFound(text="no such discovery job")
    try:
        return jobs, jobs.get(_principal(request), text)
    except ScanJobNotFound as exc:
        raise web.HTTPNotFound(text=str(exc)) from None


# --- scans --------------------------------------------------------------------------------------

DEVICE = obj(index=INT, endpoint=STR, address=STR, xaddr=STR, mac=nullable(STR), manufacturer=STR,
             model=STR, firmware=STR, serial=STR, status=STR, message=STR,
             profiles=array(ANY_OBJECT), clock_offset_us=nullable(INT),
             known_camera_id=nullable(INT))
"""A device found by a scan (:meth:`onvif_bridge.scan_jobs.ScanRow.as_dict`), interrogated or not yet."""

JOB = obj(id=STR, state=enum("discovering", "interrogating", "done", "failed", "cancelled"),
          progress={"type": "number", "minimum": 0, "maximum": 1}, error=STR, targets=array(STR),
          timeout_s=NUM, started_us=US, finished_us=nullable(US), found=INT, examined=INT,
          devices=array(DEVICE))
JOB_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$", "description": "a scan's id"}
CREDENTIALS = {"username": {"type": "string", "maxLength": 200},
               "password": {"type": "string", "maxLength": 200}}

@routes.route("POST", "/api/v1/discovery", access="manage_cameras",
              summary="Start a discovery scan (WS-Discovery + interrogation); returns its id",
              body={"type": "object", "required": ["targets"], "properties": {
                  "targets": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                              "maxItems": MAX_TARGETS},
                  **CREDENTIALS,
                  "timeout_s": {"type": "number", "exclusiveMinimum": 0,
                                "maximum": MAX_TIMEOUT_S}}},
              statuses=(202,), response=obj(id=STR))
async def api_discovery_start(request: web.Request) -> web.StreamResponse:
    data = await json_object(request)
    targets = [t.strip() for t in get_str_list(data, "targets", max_items=MAX_TARGETS) if t.strip()]
    if not targets:
        # Multicast on the server's interfaces is an explicit choice, never a default from a page.
        raise bad_request("field 'targets' is required: host, host:port or CIDR range(s)")
    username, password = _credentials(data)
    timeout = data.get("timeout_s", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) \
            or not 0 < timeout <= MAX_TIMEOUT_S:
        raise bad_request(f"field 'timeout_s' must be a number in (0, {MAX_TIMEOUT_S:g}]")
    from onvif_bridge.discovery import parse_targets

    try:
        parse_targets(targets)
    except DiscoveryTargetError as exc:
        raise bad_request(str(exc)) from None
    try:
        job = jobs_of(request.app).start(_principal(request), targets, username, password,
                                         float(timeout))
    except TooManyScans as exc:
        raise web.HTTPTooManyRequests(text=str(exc)) from None
    return web.json_response({"id": job.id}, status=202)


@routes.route("GET", "/api/v1/discovery/{id}", access="manage_cameras",
              summary="A discovery scan: state, progress 0..1, devices found so far",
              params={"id": JOB_ID}, response=JOB)
async def api_discovery_get(request: web.Request) -> web.StreamResponse:
    jobs, job = _job(request)
    answer = job.as_dict(jobs.clock)
    answer["devices"] = [_translated(d) for d in answer["devices"]]
    if answer.get("error"):
        answer["error"] = translate_message(answer["error"])
    return web.json_response(answer)


@routes.route("GET", "/api/v1/discovery/{id}/snapshot", access="manage_cameras",
              query=(Param("device", "the device's index in the scan",
                           {"type": "integer", "minimum": 0}, required=True),),
              params={"id": JOB_ID}, media=("image/jpeg",),
              summary="A JPEG from a device found by a scan (scan credentials)")
@_answers_refusals
async def api_discovery_snapshot(request: web.Request) -> web.StreamResponse:
    jobs, job = _job(request)
    index = query_int(request, "device", minimum=0)
    try:
        thumbnail = await jobs.thumbnail(job, index)
    except ScanJobNotFound as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    return web.Response(body=thumbnail, content_type="image/jpeg",
                        headers={"Cache-Control": "no-store"})


@routes.route("POST", "/api/v1/discovery/{id}/adopt", access="manage_cameras",
              summary="Adopt what a scan found ready (all, or the devices named by index) into "
                      "one site, with the credentials the scan was made with",
              params={"id": JOB_ID},
              body={"type": "object", "required": ["site_id"], "properties": {
                  "site_id": ID, "set_clock": {"type": "boolean"},
                  "devices": {"type": "array", "items": {"type": "integer", "minimum": 0},
                              "maxItems": 1000}}},
              response=obj(adopted=INT, failed=INT, results=array(obj(xaddr=STR, ok=BOOL))))
@_answers_refusals
async def api_discovery_adopt(request: web.Request) -> web.StreamResponse:
    jobs, job = _job(request)
    data = await json_object(request)
    site_id = get_int(data, "site_id", minimum=1, maximum=MAX_ID)
    set_clock = data.get("set_clock", False)
    if not isinstance(set_clock, bool):
        raise bad_request("field 'set_clock' must be true or false")
    wanted = data.get("devices")
    if wanted is not None and (not isinstance(wanted, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in wanted)):
        raise bad_request("field 'devices' must be a list of device indexes")
    xaddrs = job.ready_xaddrs(None if wanted is None else set(wanted))
    if not xaddrs:
        raise bad_request("nothing to adopt: no device of this scan is ready (answered with "
                          "these credentials and a video stream)")
    results = await onboarding_of(request.app).adopt_many(
        _principal(request), xaddrs, job.username, job.password, site_id=site_id,
        set_clock=set_clock, address=client_address(request))
    adopted = sum(1 for r in results if r["ok"])
    return web.json_response({"adopted": adopted, "failed": len(results) - adopted,
                              "results": _translated_results(results)})


@routes.route("GET", "/discovery", access="manage_cameras", summary="Discovery page")
async def discovery_page(request: web.Request) -> web.StreamResponse:
    from onvif_bridge.discovery import local_ipv4_networks

    principal = _principal(request)
    sites = await request.app[GATEWAY].read(catalog.list_sites, principal)
    try:
        subnets = await asyncio.to_thread(local_ipv4_networks)
    except OSError:
        subnets = []
    return render(request, "discovery.html", {"sites": sites, "subnets": subnets})


# --- adopt, configure, remove -------------------------------------------------------------------

@routes.route("POST", "/api/v1/cameras", access="manage_cameras",
              summary="Adopt one camera by ONVIF address (or add one by bare RTSP URL)",
              body={"type": "object", "properties": {
                  "onvif_url": {"type": "string", "maxLength": 500},
                  "rtsp_url": {"type": "string", "maxLength": 1000}, **CREDENTIALS,
                  "site_id": ID,
                  "name": {"type": "string", "maxLength": 200},
                  "set_clock": {"type": "boolean"}}},
              statuses=(200, 201),
              response={**CAMERA_DETAIL,
                        "properties": {**CAMERA_DETAIL["properties"], "adoption": ANY_OBJECT},
                        "required": [*CAMERA_DETAIL["required"], "adoption"]})
@_answers_refusals
async def api_camera_adopt(request: web.Request) -> web.StreamResponse:
    data = await json_object(request)
    onvif_url = get_str(data, "onvif_url", required=False, max_len=500)
    rtsp_url = get_str(data, "rtsp_url", required=False, max_len=1000)
    if bool(onvif_url) == bool(rtsp_url):
        raise bad_request("give exactly one of 'onvif_url' and 'rtsp_url'")
    username, password = _credentials(data)
    site_id = get_int(data, "site_id", required=False, minimum=1, maximum=MAX_ID)
    name = get_str(data, "name", required=False, max_len=200).strip() or None
    set_clock = data.get("set_clock", False)
    if not isinstance(set_clock, bool):
        raise bad_request("field 'set_clock' must be true or false")
    service = onboarding_of(request.app)
    principal = _principal(request)
    if rtsp_url:
        result = await service.adopt_rtsp(principal, rtsp_url, username, password,
                                          site_id=site_id, name=name,
                                          address=client_address(request))
    else:
        result = await service.adopt(principal, onvif_url, username, password, site_id=site_id,
                                     name=name, set_clock=set_clock,
                                     address=client_address(request))
    detail = await request.app[GATEWAY].read(catalog.camera_detail, principal, result.camera_id)
    return web.json_response({**detail, "adoption": result.as_dict()},
                             status=201 if result.created else 200)


@routes.route("POST", "/api/v1/cameras/bulk", access="manage_cameras",
              summary="Adopt many cameras into one site with the same credentials",
              body={"type": "object", "required": ["site_id", "xaddrs"], "properties": {
                  "site_id": ID, **CREDENTIALS,
                  "xaddrs": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                             "maxItems": 1000},
                  "set_clock": {"type": "boolean"}}},
              response=obj(adopted=INT, failed=INT, results=array(obj(xaddr=STR, ok=BOOL))))
@_answers_refusals
async def api_camera_bulk(request: web.Request) -> web.StreamResponse:
    data = await json_object(request)
    site_id = get_int(data, "site_id", minimum=1, maximum=MAX_ID)
    xaddrs = [x.strip() for x in get_str_list(data, "xaddrs", max_items=1000) if x.strip()]
    if not xaddrs:
        raise bad_request("field 'xaddrs' must name at least one camera")
    username, password = _credentials(data)
    set_clock = data.get("set_clock", False)
    if not isinstance(set_clock, bool):
        raise bad_request("field 'set_clock' must be true or false")
    results = await onboarding_of(request.app).adopt_many(
        _principal(request), xaddrs, username, password, site_id=site_id, set_clock=set_clock,
        address=client_address(request))
    adopted = sum(1 for r in results if r["ok"])
    return web.json_response({"adopted": adopted, "failed": len(results) - adopted,
                              "results": _translated_results(results)})


def _profile(data: dict[str, Any]) -> RecordingProfile | None:
    raw = data.get("profile")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise bad_request("field 'profile' must be an object")
    fps = raw.get("fps")
    gop_s = raw.get("gop_s", 1.0)
    for key, value in (("fps", fps), ("gop_s", gop_s)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise bad_request(f"field 'profile.{key}' must be a number")
    try:
        return RecordingProfile(
            width=get_int(raw, "width", required=False, minimum=16, maximum=16384),
            height=get_int(raw, "height", required=False, minimum=16, maximum=16384),
            fps=float(fps) if fps is not None else None,
            bitrate_kbps=get_int(raw, "bitrate_kbps", required=False, minimum=16,
                                 maximum=200_000),
            gop_s=float(gop_s))
    except OnboardingError as exc:
        raise bad_request(f"profile: {exc}") from None


@routes.route("POST", "/api/v1/cameras/{id}/configure", access="manage_cameras",
              summary="Apply a recording profile / name / NTP / clock / reboot over ONVIF; "
                      "returns what the camera accepted",
              body={"type": "object", "properties": {
                  "stream": {"type": "string", "enum": ["main", "sub"]},
                  "profile": {"type": "object", "properties": {
                      "width": {"type": "integer", "minimum": 16, "maximum": 16384},
                      "height": {"type": "integer", "minimum": 16, "maximum": 16384},
                      "fps": {"type": "number"},
                      "bitrate_kbps": {"type": "integer", "minimum": 16, "maximum": 200_000},
                      "gop_s": {"type": "number", "maximum": 2}}},
                  "name": {"type": "string", "maxLength": 200}, "set_clock": {"type": "boolean"},
                  "ntp_servers": {"type": "array", "items": {"type": "string"}, "maxItems": 4},
                  "reboot": {"type": "boolean"}}},
              response=obj(camera_id=INT, requested=ANY_OBJECT, accepted=ANY_OBJECT,
                           clamped=array(STR)))
@_answers_refusals
async def api_camera_configure(request: web.Request) -> web.StreamResponse:
    camera_id = match_id(request)
    data = await json_object(request)
    flags = {}
    for key in ("set_clock", "reboot"):
        value = data.get(key, False)
        if not isinstance(value, bool):
            raise bad_request(f"field {key!r} must be true or false")
        flags[key] = value
    config = ConfigureRequest(
        stream=get_str(data, "stream", required=False, default="main", max_len=8) or "main",
        profile=_profile(data),
        name=get_str(data, "name", required=False, max_len=200).strip() or None,
        ntp_servers=get_str_list(data, "ntp_servers", max_items=4), **flags)
    if not (config.profile or config.name or config.ntp_servers or config.set_clock
            or config.reboot):
        raise bad_request("nothing to configure: give profile, name, ntp_servers, set_clock or "
                          "reboot")
    result = await onboarding_of(request.app).configure(
        _principal(request), camera_id, config, address=client_address(request))
    return web.json_response(result)


@routes.route("POST", "/api/v1/cameras/{id}/check-config", access="manage_cameras",
              summary="Re-read the camera's encoders over ONVIF now and flag drift from the "
                      "applied recording profile",
              response=obj(camera_id=INT, name=STR, streams=array(ANY_OBJECT)))
@_answers_refusals
async def api_camera_check_config(request: web.Request) -> web.StreamResponse:
    camera_id = match_id(request)
    result = await drift_of(request.app).check(_principal(request), camera_id)
    return web.json_response(result)


@routes.route("POST", "/api/v1/cameras/{id}/clock", access="manage_cameras",
              summary="Set the camera's clock to the server's (SetSystemDateAndTime)",
              response=obj(camera_id=INT, offset_before_us=nullable(INT),
                           clock_offset_us=nullable(INT)))
@_answers_refusals
async def api_camera_clock(request: web.Request) -> web.StreamResponse:
    camera_id = match_id(request)
    result = await onboarding_of(request.app).set_clock(
        _principal(request), camera_id, address=client_address(request))
    return web.json_response(result)


@routes.route("DELETE", "/api/v1/cameras/{id}", access="manage_cameras",
              query=(Param("delete_recordings", "true: also delete every recording of the camera "
                                                "(refused while evidence holds protect them); "
                                                "default false: archive, recordings kept",
                           {"type": "string", "enum": ["true", "false", "1", "0"]}),),
              summary="Remove a camera: archived (no live view, no recording), its recordings "
                      "kept and playable until retention; or deleted with them on request",
              response=obj(camera_id=INT, name=STR, removed=BOOL, archived=BOOL, archived_us=US,
                           recordings_deleted=BOOL, segments_deleted=INT, bytes_deleted=INT,
                           other_files_deleted=INT,
                           optional=("recordings_deleted", "segments_deleted", "bytes_deleted",
                                     "other_files_deleted")))
@_answers_refusals
async def api_camera_remove(request: web.Request) -> web.StreamResponse:
    camera_id = match_id(request)
    flag = request.query.get("delete_recordings", "false").lower()
    if flag not in ("true", "false", "1", "0"):
        raise bad_request("query parameter 'delete_recordings' must be true or false")
    principal = _principal(request)
    delete = flag in ("true", "1")
    if delete:
        try:  # another site's camera: 404, before anything is looked at
            await request.app[GATEWAY].read(catalog.get_camera, principal, camera_id)
        except catalog.NotFound:
            return json_error(404, f"no camera {camera_id}")
        problem = await request.app[GATEWAY].read(held_footage_problem, camera_id)
        if problem is not None:
            return json_error(409, problem)
    # archiving first stops the camera's recording (awaited), so no file is written after this
    result = await onboarding_of(request.app).remove(
        principal, camera_id, address=client_address(request))
    if delete:
        app = request.app
        try:
            purged = await asyncio.to_thread(
                delete_camera_recordings, app[GATEWAY], app[SETTINGS], app[CLOCK], camera_id,
                principal=principal, address=client_address(request))
        except PurgeRefused as exc:
            return json_error(409, str(exc))
        result = {**result, **purged.as_dict()}
    return web.json_response(result)


@routes.route("GET", "/api/v1/cameras/{id}/snapshot", access="live",
              query=(Param("stream", "main or sub (default sub)", enum("main", "sub")),),
              media=("image/jpeg",), summary="A fresh JPEG from the camera")
@_answers_refusals
async def api_camera_snapshot(request: web.Request) -> web.StreamResponse:
    camera_id = match_id(request)
    stream = request.query.get("stream", "sub")
    if stream not in ("main", "sub"):
        raise bad_request("query parameter 'stream' must be main or sub")
    remote = await live_holder_of(request, camera_id)  # None outside a cluster: no read
    if remote is not None:  # the node recording the camera asks it (an RTSP fallback included)
        try:  # another site's camera: 404, before anything is asked of another node
            await request.app[GATEWAY].read(catalog.get_camera, _principal(request), camera_id)
        except catalog.NotFound:
            return json_error(404, f"no camera {camera_id}")
        return await proxy(request, remote, "the camera's live picture")
    jpeg = await onboarding_of(request.app).snapshot(_principal(request), camera_id, stream)
    return web.Response(body=jpeg, content_type="image/jpeg",
                        headers={"Cache-Control": "no-store"})
