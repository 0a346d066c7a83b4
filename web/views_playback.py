"""Timeline and playback over HTTP: timeline JSON, HLS playlists, recorded media, snapshots,
timeline previews (keyframe thumbnails, cached in memory: recorder/thumbnail.py), pages.

Every route needs the ``playback`` right and is site-scoped: the camera is fetched through
:func:`vms.catalog.get_camera` first (a camera of another site is "not found", even when the query
is also malformed). The timeline and playlist routes do the camera look-up and the index query in
one gateway read (one connection: on PostgreSQL each read opens one). Recorded files are found by
segment id in the index, only among the camera's own segments, and resolved inside their storage
volume; no path ever comes from the client. In a cluster, a file on another node's volume is
fetched from that node (web/cluster_proxy.py) after the same checks. Nothing recorded is cached by the browser
(``Cache-Control: no-store``).

Holds (a camera's range kept as evidence; retention must skip the segments they overlap) are listed
with ``playback`` and created or deleted with ``export`` (operators and administrators); each
creation and deletion writes an audit record in the same transaction.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import peewee as pw
from aiohttp import web

from recorder import playback, snapshot, thumbnail, timeline
from vms import audit, catalog
from vms.auth import Principal
from vms.clock import Clock, check_instant, parse_instant
from vms.db import models as m
from web import i18n
from web.cluster_proxy import RemoteFootage, owner_of, proxy
from web.inputs import bad_request, get_str, json_object, match_id, query_instant
from web.keys import CLOCK, GATEWAY, SETTINGS, principal_of
from web.middleware import client_address
from web.render import render
from web.routing import Param, Routes
from web.schemas import ANY_OBJECT, BOOL, INSTANT, INT, STR, US, array, enum, nullable, obj, or_blank

log = logging.getLogger(__name__)

routes = Routes()

DAY_US = 86_400 * 1_000_000
HOUR_US = 3_600 * 1_000_000
MAX_CAMERAS = 16
CHUNK_BYTES = 256 * 1024
NO_STORE = "no-store"
"""Recorded video, its playlists and snapshots are never kept in a browser's cache: on a shared
computer they would stay there after the user logs out."""
TIME_QUERY = (Param("from", "start: ISO-8601 with offset or integer UTC µs", or_blank(INSTANT)),
              Param("to", "end (exclusive): ISO-8601 with offset or integer UTC µs",
                    or_blank(INSTANT)))
CAMERA_IDS = {"type": "string", "pattern": r"^[0-9,\s]*[0-9][0-9,\s]*$",
              "description": "comma-separated camera ids"}

HOLD = obj(id=INT, camera_id=INT, start_us=US, end_us=US, reason=STR, created_by=nullable(STR),
           created_us=US, optional=("camera_id",))
"""A hold (a camera's range kept as evidence); listed holds leave out the camera's id."""

TIMELINE = obj(
    camera_id=INT, from_us=US, to_us=US,
    spans=array(obj(start_us=US, end_us=US, run=INT)),
    gaps=array(obj(start_us=US, end_us=US, reason=STR, kind=enum(*timeline.GAP_KINDS))),
    events=array(obj(id=INT, type=STR, start_us=US, end_us=nullable(US), data=ANY_OBJECT)),
    events_truncated=BOOL, holds=array(obj(id=INT, start_us=US, end_us=US, reason=STR)),
    camera=obj(id=INT, name=STR), timezone=STR, now_us=US)
"""One camera's timeline (:meth:`recorder.timeline.Timeline.to_dict`, with camera and zone)."""


PREVIEW_THREADS = 2
"""Previews decoded at once per server (each is one keyframe; the rest wait)."""


class Previews:
    """The timeline previews of one app: the cache and a bound on concurrent decodes."""

    def __init__(self) -> None:
        self.cache = thumbnail.ThumbnailCache()
        self.limit = asyncio.Semaphore(PREVIEW_THREADS)


PREVIEWS = web.AppKey("previews", Previews)


@dataclass(frozen=True)
class CameraInfo:
    id: int
    name: str
    timezone: str


def _principal(request: web.Request) -> Principal:
    principal = principal_of(request)
    assert principal is not None
    return principal


def _camera_info(principal: Principal, camera_id: int) -> CameraInfo:
    camera = catalog.get_camera(principal, camera_id)
    return CameraInfo(int(camera.id), camera.name, camera.site.timezone)


async def _camera(request: web.Request, camera_id: int | None = None) -> CameraInfo:
    cid = match_id(request) if camera_id is None else camera_id
    try:
        return await request.app[GATEWAY].read(_camera_info, _principal(request), cid)
    except catalog.NotFound:
        raise web.HTTPNotFound(text="no such camera") from None


def _range(request: web.Request, default_span_us: int) -> tuple[int, int]:
    now_us = request.app[CLOCK].now_us()
    from_us = query_instant(request, "from")
    to_us = query_instant(request, "to")
    if to_us is None:
        to_us = now_us if from_us is None else from_us + default_span_us
    if from_us is None:
        from_us = to_us - default_span_us
    if to_us <= from_us:
        raise bad_request("'to' must be after 'from'")
    return from_us, to_us


def _camera_ids(request: web.Request) -> list[int]:
    text = request.query.get("camera_ids", "")
    ids: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if not (part.isascii() and part.isdigit()) or len(part) > 18:
            raise bad_request(f"query parameter 'camera_ids': {part[:20]!r} is not a camera id")
        if int(part) not in ids:
            ids.append(int(part))
    if len(ids) > MAX_CAMERAS:
        raise bad_request(f"query parameter 'camera_ids': at most {MAX_CAMERAS} cameras")
    return ids


def _range_or_refusal(request: web.Request,
                      default_span_us: int) -> tuple[int, int] | web.HTTPBadRequest:
    """The range, or the 400 to answer once the camera has been checked (another site's camera
    stays "not found" whatever the query says)."""
    try:
        return _range(request, default_span_us)
    except web.HTTPBadRequest as exc:
        return exc


def _timelines_of(principal: Principal, camera_ids: list[int], from_us: int, to_us: int,
                  now_us: int) -> list[tuple[CameraInfo, timeline.Timeline]]:
    """Site-scoped camera look-ups, then their timelines: one gateway read (one connection)."""
    cameras = [_camera_info(principal, cid) for cid in camera_ids]
    return [(camera, timeline.build_timeline(camera.id, from_us, to_us, now_us=now_us))
            for camera in cameras]


async def _timelines(request: web.Request, camera_ids: list[int]) -> tuple[int, int,
                                                                         list[dict[str, Any]]]:
    span = _range_or_refusal(request, DAY_US)
    if isinstance(span, web.HTTPBadRequest):
        for cid in camera_ids:
            await _camera(request, cid)
        raise span
    from_us, to_us = span
    now_us = request.app[CLOCK].now_us()
    try:
        found = await request.app[GATEWAY].read(_timelines_of, _principal(request), camera_ids,
                                                from_us, to_us, now_us)
    except catalog.NotFound:
        raise web.HTTPNotFound(text="no such camera") from None
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    answers = []
    for camera, result in found:
        data = result.to_dict()
        data.update({"camera": {"id": camera.id, "name": camera.name},
                     "timezone": camera.timezone, "now_us": now_us})
        answers.append(data)
    return from_us, to_us, answers


@routes.route("GET", "/api/v1/cameras/{id}/timeline", access="playback", query=TIME_QUERY,
              summary="Recorded spans, gaps (with reasons) and events of one camera, plus the "
                      "site's time zone", response=TIMELINE)
async def api_timeline(request: web.Request) -> web.StreamResponse:
    _from_us, _to_us, answers = await _timelines(request, [match_id(request)])
    return web.json_response(answers[0])


@routes.route("GET", "/api/v1/timeline", access="playback",
              query=(Param("camera_ids", "comma-separated camera ids", CAMERA_IDS, required=True),
                     *TIME_QUERY),
              response=obj(from_us=US, to_us=US, cameras=array(TIMELINE), timezone=STR),
              summary="Timelines of several cameras over one range")
async def api_timelines(request: web.Request) -> web.StreamResponse:
    ids = _camera_ids(request)
    if not ids:
        raise bad_request("query parameter 'camera_ids' is required (e.g. camera_ids=1,2)")
    from_us, to_us, answers = await _timelines(request, ids)
    zones = {a["timezone"] for a in answers}
    return web.json_response({"from_us": from_us, "to_us": to_us, "cameras": answers,
                              "timezone": answers[0]["timezone"] if len(zones) == 1 else "UTC"})


def _playlist_of(principal: Principal, camera_id: int, from_us: int, to_us: int,
                 now_us: int) -> tuple[list[playback.PlaylistSegment], bool]:
    """The site-scoped camera look-up, then the playlist's segments: one gateway read."""
    camera = _camera_info(principal, camera_id)
    return playback.playlist_segments(camera.id, from_us, to_us, now_us)


@routes.route("GET", "/api/v1/cameras/{id}/playlist.m3u8", access="playback", query=TIME_QUERY,
              media=("application/vnd.apple.mpegurl",),
              summary="HLS playlist of a recorded range (fMP4, program-date-time, "
                      "discontinuities at every file and gap)")
async def api_playlist(request: web.Request) -> web.StreamResponse:
    camera_id = match_id(request)
    span = _range_or_refusal(request, HOUR_US)
    if isinstance(span, web.HTTPBadRequest):
        await _camera(request, camera_id)
        raise span
    from_us, to_us = span
    try:
        segments, live = await request.app[GATEWAY].read(
            _playlist_of, _principal(request), camera_id, from_us, to_us,
            request.app[CLOCK].now_us())
    except catalog.NotFound:
        raise web.HTTPNotFound(text="no such camera") from None
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    if not segments:
        raise web.HTTPNotFound(text="nothing recorded in this range")
    result = playback.build_playlist(segments, from_us, media_base=f"/api/v1/cameras/{camera_id}/media",
                                     live=live)
    return web.Response(text=result.text, content_type="application/vnd.apple.mpegurl",
                        headers={"Cache-Control": NO_STORE})


def _segment_row(camera_id: int, segment_id: int) -> tuple[str, str, int] | None:
    row = (m.Segment.select(m.Segment.volume, m.Segment.path, m.Segment.start_us)
           .where((m.Segment.id == segment_id) & (m.Segment.camera == camera_id)).tuples().first())
    return (row[0], row[1], row[2]) if row else None


async def _segment_file(request: web.Request, camera: CameraInfo,
                        segment_id: int) -> tuple[Path, int]:
    row = await request.app[GATEWAY].read(_segment_row, camera.id, segment_id)
    if row is None:
        raise web.HTTPNotFound(text="no such recording")
    remote = await owner_of(request, row[0])
    if remote is not None:  # recorded by another node of the cluster: the caller proxies
        raise remote
    volumes = {v.name: v.path for v in request.app[SETTINGS].volumes}
    try:
        path = playback.resolve_segment_file(volumes, row[0], row[1])
    except playback.UnsafePath as exc:
        log.warning("camera %s segment %s refused: %s", camera.name, segment_id, exc)
        raise web.HTTPNotFound(text="no such recording") from None
    if not path.is_file():
        raise web.HTTPNotFound(text="the recording's file is missing")
    return path, row[2]


@routes.route("GET", "/api/v1/cameras/{id}/media/{segment_id:[^/]+}", access="playback",
              query=(Param("part", "init (ftyp+moov) | fragments (moof/mdat) | omitted: whole file",
                           or_blank(enum("init", "fragments"))),),
              statuses=(200, 206), media=("video/mp4",),
              summary="A recorded segment file (fragmented MP4) with HTTP Range support")
async def api_media(request: web.Request) -> web.StreamResponse:
    camera = await _camera(request)
    segment_id = match_id(request, "segment_id")
    try:
        path, _start = await _segment_file(request, camera, segment_id)
    except RemoteFootage as remote:
        return await proxy(request, remote)
    part = request.query.get("part", "")
    if part not in ("", "init", "fragments"):
        raise bad_request("query parameter 'part' must be 'init' or 'fragments'")
    if part:
        try:
            parts = await asyncio.to_thread(playback.file_parts, path)
        except (playback.MediaFormatError, OSError) as exc:
            log.warning("camera %s segment %s: %s", camera.name, segment_id, exc)
            raise web.HTTPNotFound(text="the recording cannot be played") from None
        base, limit = parts.init if part == "init" else parts.fragments
    else:
        base, limit = 0, path.stat().st_size
    size = limit - base
    try:
        wanted = playback.parse_range(request.headers.get("Range"), size)
    except ValueError as exc:
        return web.Response(status=416, text=str(exc), headers={"Content-Range": f"bytes */{size}"})
    start, end = wanted if wanted else (0, size)
    response = web.StreamResponse(status=206 if wanted else 200, headers={
        "Content-Type": "video/mp4", "Accept-Ranges": "bytes",
        "Content-Length": str(end - start), "Cache-Control": NO_STORE})
    if wanted:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    with path.open("rb") as fh:
        position = base + start
        remaining = end - start
        while remaining > 0:
            chunk = await asyncio.to_thread(_read_at, fh, position, min(CHUNK_BYTES, remaining))
            if not chunk:
                break
            await response.write(chunk)
            position += len(chunk)
            remaining -= len(chunk)
    await response.write_eof()
    return response


def _read_at(fh: Any, position: int, count: int) -> bytes:
    fh.seek(position)
    data: bytes = fh.read(count)
    return data


def _segment_at(camera_id: int, at_us: int) -> tuple[int, str, str, int, int] | None:
    seg = timeline.segment_at(camera_id, at_us)
    if seg is None or seg.state not in timeline.PLAYABLE_STATES:
        return None
    return seg.id, seg.volume, seg.path, seg.start_us, seg.end_us


@routes.route("GET", "/api/v1/cameras/{id}/snapshot.jpg", access="playback",
              query=(Param("at", "the recorded instant: ISO-8601 with offset or integer UTC µs",
                           INSTANT, required=True),),
              media=("image/jpeg",),
              summary="JPEG of a recorded instant (the frame shown at that instant)")
async def api_recorded_snapshot(request: web.Request) -> web.StreamResponse:
    camera = await _camera(request)
    at_us = query_instant(request, "at", required=True)
    assert at_us is not None
    found = await request.app[GATEWAY].read(_segment_at, camera.id, at_us)
    if found is None:
        raise web.HTTPNotFound(text="nothing recorded at this instant")
    segment_id, _volume, _path, start_us, _end_us = found
    try:
        path, _ = await _segment_file(request, camera, segment_id)
    except RemoteFootage as remote:
        return await proxy(request, remote)
    try:
        shot = await asyncio.to_thread(snapshot.snapshot_at, path, start_us, at_us)
    except snapshot.SnapshotError as exc:
        log.warning("camera %s: snapshot at %d failed: %s", camera.name, at_us, exc)
        raise web.HTTPNotFound(text="this instant cannot be decoded") from None
    return web.Response(body=shot.jpeg, content_type="image/jpeg", headers={
        "X-Frame-Time-Us": str(shot.frame_us), "X-Segment-Id": str(segment_id),
        "X-Frame-Pts": f"{shot.frame_pts_s:.6f}", "Cache-Control": NO_STORE})


@routes.route("GET", "/api/v1/cameras/{id}/thumbnail.jpg", access="playback",
              query=(Param("at", "the recorded instant: ISO-8601 with offset or integer UTC µs",
                           INSTANT, required=True),),
              media=("image/jpeg",),
              summary="Small preview JPEG of the keyframe at or before a recorded instant (for "
                      "the timeline; cached, never a transcode)")
async def api_thumbnail(request: web.Request) -> web.StreamResponse:
    camera = await _camera(request)
    at_us = query_instant(request, "at", required=True)
    assert at_us is not None
    found = await request.app[GATEWAY].read(_segment_at, camera.id, at_us)
    if found is None:
        raise web.HTTPNotFound(text="nothing recorded at this instant")
    segment_id, _volume, _path, start_us, _end_us = found
    path, _ = await _segment_file(request, camera, segment_id)
    previews = request.app[PREVIEWS]
    try:
        async with previews.limit:
            thumb, hit = await asyncio.to_thread(thumbnail.keyframe_thumbnail, previews.cache,
                                                 segment_id, path, start_us, at_us)
    except snapshot.SnapshotError as exc:
        log.warning("camera %s: preview at %d failed: %s", camera.name, at_us, exc)
        raise web.HTTPNotFound(text="this instant cannot be decoded") from None
    return web.Response(body=thumb.jpeg, content_type="image/jpeg", headers={
        "X-Frame-Time-Us": str(thumb.frame_us), "X-Segment-Id": str(segment_id),
        "X-Frame-Pts": f"{thumb.frame_pts_s:.6f}", "X-Cache": "hit" if hit else "miss",
        "Cache-Control": NO_STORE})


def gap_labels() -> dict[str, str]:
    """Every gap reason and kind as the user reads it, in the request's language (for the
    timeline's hover and tap)."""
    labels = {code: i18n.gap_reason(code) for code in i18n.GAP_REASONS}
    labels.update({f"kind:{kind}": i18n.gettext(text) for kind, text in i18n.GAP_KINDS.items()})
    return labels


def _page_context(cameras: list[CameraInfo], request: web.Request) -> dict[str, Any]:
    at_us = query_instant(request, "at")
    return {"cameras": cameras, "camera_ids": ",".join(str(c.id) for c in cameras),
            "timezone": cameras[0].timezone if cameras else "UTC",
            "at_us": "" if at_us is None else str(at_us), "gap_labels": gap_labels(),
            "choices": [], "max_grid": MAX_GRID}


@routes.route("GET", "/cameras/{id}/playback", access="playback",
              query=(("at", "instant to open at"),), summary="Timeline and playback page of a camera")
async def playback_page(request: web.Request) -> web.StreamResponse:
    camera = await _camera(request)
    return render(request, "playback.html", {**_page_context([camera], request),
                                             "title": camera.name, "multi": False})


MAX_GRID = 4
"""Cameras played together on the multi-camera page (2×2)."""


@routes.route("GET", "/playback", access="playback",
              query=(("camera_ids", "up to four camera ids, comma-separated"),
                     ("at", "instant to open at")),
              summary="Synchronised playback of up to four cameras (2×2), chosen on the page")
async def playback_grid_page(request: web.Request) -> web.StreamResponse:
    ids = _camera_ids(request)[:MAX_GRID]
    listed = await request.app[GATEWAY].read(catalog.list_cameras, _principal(request),
                                             archived=None)
    if not ids:
        ids = [int(c["id"]) for c in listed if c["archived_us"] is None][:MAX_GRID]
    cameras = [await _camera(request, cid) for cid in ids]
    choices = [{"id": int(c["id"]), "name": c["name"], "site": c["site"]["name"],
                "archived": c["archived_us"] is not None, "chosen": int(c["id"]) in ids}
               for c in listed]
    return render(request, "playback.html", {**_page_context(cameras, request), "title": "",
                                             "multi": True, "choices": choices})


# --- holds ---------------------------------------------------------------------------------------

HOLD_MAX_US = timeline.HOLD_MAX_US
HOLD_REASON_MAX = 500


class HoldNotFound(Exception):
    pass


def _body_instant(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if value is None or value == "":
        raise bad_request(f"field {key!r} is required")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise bad_request(f"field {key!r} must be ISO-8601 with an offset or integer UTC µs")
    try:
        return check_instant(value) if isinstance(value, int) else parse_instant(value)
    except ValueError as exc:
        raise bad_request(f"field {key!r}: {exc}") from None


def _hold_dict(row: m.Hold, username: str | None) -> dict[str, Any]:
    return {"id": row.id, "camera_id": row.camera_id, "start_us": row.start_us,
            "end_us": row.end_us, "reason": row.reason, "created_by": username,
            "created_us": row.created_us}


def _holds_of(principal: Principal, camera_id: int, from_us: int,
              to_us: int) -> list[dict[str, Any]]:
    camera = _camera_info(principal, camera_id)
    found = timeline.holds_in_range(camera.id, from_us, to_us)
    ids = [h["id"] for h in found]
    extra: dict[int, tuple[str | None, int]] = {}
    if ids:
        rows = (m.Hold.select(m.Hold.id, m.User.username, m.Hold.created_us)
                .join(m.User, pw.JOIN.LEFT_OUTER, on=(m.Hold.created_by == m.User.id))
                .where(m.Hold.id.in_(ids)).tuples())
        extra = {hid: (username, created_us) for hid, username, created_us in rows}
    for hold in found:
        hold["created_by"], hold["created_us"] = extra.get(hold["id"], (None, 0))
    return found


def _create_hold(clock: Clock, principal: Principal, camera_id: int, start_us: int, end_us: int,
                 reason: str, address: str) -> dict[str, Any]:
    camera = catalog.get_camera(principal, camera_id)
    row = m.Hold.create(camera=camera.id, start_us=start_us, end_us=end_us, reason=reason,
                        created_by=principal.user_id, created_us=clock.now_us())
    audit.record(clock, "hold_create", principal=principal,
                 target=f"camera {camera.id} hold {row.id}", site_id=camera.site_id,
                 address=address, detail={"hold_id": row.id, "camera_id": camera.id,
                                          "start_us": start_us, "end_us": end_us,
                                          "reason": reason})
    return _hold_dict(row, principal.username)


def _delete_hold(clock: Clock, principal: Principal, camera_id: int, hold_id: int,
                 address: str) -> None:
    camera = catalog.get_camera(principal, camera_id)
    row = m.Hold.get_or_none((m.Hold.id == hold_id) & (m.Hold.camera == camera.id))
    if row is None:
        raise HoldNotFound
    row.delete_instance()
    audit.record(clock, "hold_delete", principal=principal,
                 target=f"camera {camera.id} hold {hold_id}", site_id=camera.site_id,
                 address=address, detail={"hold_id": hold_id, "camera_id": camera.id,
                                          "start_us": row.start_us, "end_us": row.end_us,
                                          "reason": row.reason})


@routes.route("GET", "/api/v1/cameras/{id}/holds", access="playback", query=TIME_QUERY,
              response=obj(camera_id=INT, from_us=US, to_us=US, holds=array(HOLD)),
              summary="Holds (ranges kept as evidence) of a camera overlapping a range")
async def api_holds(request: web.Request) -> web.StreamResponse:
    camera = await _camera(request)
    from_us, to_us = _range(request, HOLD_MAX_US)
    if to_us - from_us > timeline.MAX_RANGE_US:
        raise bad_request(f"a range covers at most {timeline.MAX_RANGE_US // DAY_US} days")
    try:
        holds = await request.app[GATEWAY].read(_holds_of, _principal(request), camera.id,
                                                from_us, to_us)
    except catalog.NotFound:
        raise web.HTTPNotFound(text="no such camera") from None
    return web.json_response({"camera_id": camera.id, "from_us": from_us, "to_us": to_us,
                              "holds": holds})


@routes.route("POST", "/api/v1/cameras/{id}/holds", access="export",
              body={"type": "object", "required": ["from", "to", "reason"], "properties": {
                  "from": INSTANT, "to": INSTANT,
                  "reason": {"type": "string", "maxLength": HOLD_REASON_MAX}}},
              statuses=(201,), response=HOLD,
              summary="Hold a camera's range as evidence (retention keeps it); at most 31 days")
async def api_hold_create(request: web.Request) -> web.StreamResponse:
    camera = await _camera(request)
    data = await json_object(request)
    start_us = _body_instant(data, "from")
    end_us = _body_instant(data, "to")
    if end_us <= start_us:
        raise bad_request("field 'to' must be after 'from'")
    if end_us - start_us > HOLD_MAX_US:
        raise bad_request(f"field 'to': a hold covers at most {HOLD_MAX_US // DAY_US} days")
    reason = get_str(data, "reason", max_len=HOLD_REASON_MAX).strip()
    if not reason:
        raise bad_request("field 'reason' must not be empty")
    principal = _principal(request)
    try:
        hold = await request.app[GATEWAY].write(
            _create_hold, request.app[CLOCK], principal, camera.id, start_us, end_us, reason,
            client_address(request))
    except catalog.NotFound:
        raise web.HTTPNotFound(text="no such camera") from None
    return web.json_response(hold, status=201)


@routes.route("DELETE", "/api/v1/cameras/{id}/holds/{hold_id}", access="export",
              statuses=(204,), media=(), summary="Release a hold")
async def api_hold_delete(request: web.Request) -> web.StreamResponse:
    camera = await _camera(request)
    hold_id = match_id(request, "hold_id")
    try:
        await request.app[GATEWAY].write(_delete_hold, request.app[CLOCK], _principal(request),
                                         camera.id, hold_id, client_address(request))
    except catalog.NotFound:
        raise web.HTTPNotFound(text="no such camera") from None
    except HoldNotFound:
        raise web.HTTPNotFound(text="no such hold") from None
    return web.Response(status=204)
