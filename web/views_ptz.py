"""PTZ routes: moves, stop, presets, home, click-to-centre, capabilities, and the control WebSocket.

Thin handlers over :class:`onvif_bridge.ptz_control.PtzControl` (``app[SERVICES]["ptz"]``). Every
route needs the ``ptz`` right (installers, operators, administrators; a viewer gets 403) and a
camera of the caller's sites (another site's camera is 404). ``POST …/ptz/move`` starts or keeps
alive the caller's move: repeat it at least every 500 ms or the server stops the camera (the
dead-man timer). The live page uses the WebSocket instead:

``GET /api/v1/cameras/{id}/ptz/ws`` — the client sends ``{"type": "move", "pan", "tilt", "zoom"}``
on press, ``{"type": "keepalive"}`` while holding (every ~150 ms), ``{"type": "stop"}`` on release;
the server sends ``{"type": "state", …, "mine"}`` whenever who moves the camera changes (``mine``:
this connection holds the move) and ``{"type": "error", "message"}``. Closing the socket stops the
connection's move.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
from typing import Any

from aiohttp import WSMsgType, web

from onvif_bridge.onboarding_common import OnboardingError
from onvif_bridge.ptz_control import PtzControl, new_owner
from vms.auth import Principal
from web.inputs import bad_request, get_str, json_object, match_id
from web.keys import principal_of, service_of
from web.middleware import client_address, json_error
from web.routing import Handler, Routes
from web.schemas import ANY_OBJECT, BOOL, INT, OK, STR, US, array, nullable, obj

log = logging.getLogger(__name__)

routes = Routes()

_HTTP_STATUS = {"invalid": 400, "not_found": 404, "conflict": 409, "camera": 424}
"""``conflict``: the camera has no PTZ or not this kind of move; ``camera``: it refused or did not
answer (424, not a 5xx: our server did not fail)."""
WS_HEARTBEAT_S = 20.0
AXES = ("pan", "tilt", "zoom")

VELOCITY = {"type": "number", "minimum": -1, "maximum": 1}
MOVE_BODY = {"type": "object", "properties": {axis: VELOCITY for axis in AXES}}
POSITION_BODY = {"type": "object", "required": ["pan", "tilt"], "properties": {
    "pan": VELOCITY, "tilt": VELOCITY, "zoom": {"type": "number", "minimum": 0, "maximum": 1}}}
NAME_BODY = {"type": "object", "required": ["name"],
             "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 64}}}
TOKEN = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$", "description": "a preset token"}
STATE = obj(camera_id=INT, capabilities=nullable(ANY_OBJECT), moving=BOOL, user=nullable(STR),
            since_us=nullable(US), deadman_ms=INT, max_move_ms=INT)
PRESET = obj(token=STR, name=STR)


def control_of(app: web.Application) -> PtzControl:
    return service_of(app, "ptz", PtzControl, "PTZ control is not running on this server")


def _principal(request: web.Request) -> Principal:
    principal = principal_of(request)
    assert principal is not None  # the access middleware let the request in
    return principal


def _answers_refusals(handler: Handler) -> Handler:
    """OnboardingError → its status (400/404/409/424) with the message, never a 500."""

    @functools.wraps(handler)
    async def answering(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except OnboardingError as exc:
            return json_error(_HTTP_STATUS.get(exc.kind, 400), str(exc), kind=exc.kind)

    return answering


async def _target(request: web.Request) -> tuple[PtzControl, Principal, Any]:
    """The PTZ service, the caller and the route's camera (404 when not of the caller's sites)."""
    principal = _principal(request)
    control = control_of(request.app)
    return control, principal, await control.camera(principal, match_id(request))


async def _preset_name(request: web.Request) -> str:
    """The body's preset ``name``, stripped and not blank."""
    name = get_str(await json_object(request), "name", max_len=64).strip()
    if not name:
        raise bad_request("field 'name' must not be blank")
    return name


def _ok() -> web.StreamResponse:
    return web.json_response({"ok": True})


def velocities(data: dict[str, Any]) -> tuple[float, float, float]:
    """pan, tilt, zoom from a body or a WebSocket message: numbers -1..1, at least one given."""
    if not any(axis in data for axis in AXES):
        raise bad_request("give at least one of 'pan', 'tilt', 'zoom' (velocities -1..1)")
    values = []
    for axis in AXES:
        value = data.get(axis, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
                value) or not -1 <= value <= 1:
            raise bad_request(f"field {axis!r} must be a number from -1 to 1")
        values.append(float(value))
    return values[0], values[1], values[2]


def _token(request: web.Request) -> str:
    token = request.match_info.get("token", "")
    if not 0 < len(token) <= 64 or not all(c.isascii() and (c.isalnum() or c in "_.:-")
                                           for c in token):
        raise web.HTTPNotFound(text="no such preset")
    return token


# --- reading ------------------------------------------------------------------------------------

@routes.route("GET", "/api/v1/cameras/{id}/ptz", access="ptz", response=STATE,
              summary="PTZ capabilities and who moves the camera")
@_answers_refusals
async def api_ptz(request: web.Request) -> web.StreamResponse:
    return web.json_response(await control_of(request.app).describe(_principal(request),
                                                                   match_id(request)))


@routes.route("POST", "/api/v1/cameras/{id}/ptz/capabilities", access="ptz", response=STATE,
              summary="Read the camera's PTZ capabilities again and store them")
@_answers_refusals
async def api_ptz_refresh(request: web.Request) -> web.StreamResponse:
    return web.json_response(await control_of(request.app).refresh(_principal(request),
                                                                  match_id(request)))


@routes.route("GET", "/api/v1/cameras/{id}/ptz/status", access="ptz",
              response=obj(pan=nullable({"type": "number"}), tilt=nullable({"type": "number"}),
                           zoom=nullable({"type": "number"}), pan_tilt_moving=nullable(BOOL),
                           zoom_moving=nullable(BOOL), error=STR),
              summary="The camera's PTZ position and whether it moves (GetStatus)")
@_answers_refusals
async def api_ptz_status(request: web.Request) -> web.StreamResponse:
    return web.json_response(await control_of(request.app).status(_principal(request),
                                                                 match_id(request)))


# --- moves --------------------------------------------------------------------------------------

@routes.route("POST", "/api/v1/cameras/{id}/ptz/move", access="ptz", body=MOVE_BODY,
              response=STATE,
              summary="Start or keep moving (velocities -1..1); repeat within 500 ms to keep "
                      "moving, or the server stops the camera")
@_answers_refusals
async def api_ptz_move(request: web.Request) -> web.StreamResponse:
    data = await json_object(request)
    pan, tilt, zoom = velocities(data)
    control, principal, cam = await _target(request)
    state = await control.move(principal, cam, pan, tilt, zoom,
                               owner=f"http:{principal.user_id}",
                               address=client_address(request))
    return web.json_response(state)


@routes.route("POST", "/api/v1/cameras/{id}/ptz/stop", access="ptz", response=STATE,
              summary="Stop the camera's pan, tilt and zoom (whoever moves it)")
@_answers_refusals
async def api_ptz_stop(request: web.Request) -> web.StreamResponse:
    control, _, cam = await _target(request)
    await control.stop(cam, reason="stopped")
    return web.json_response(control.state(cam))


@routes.route("POST", "/api/v1/cameras/{id}/ptz/relative", access="ptz", body=MOVE_BODY,
              response=OK,
              summary="Move by a translation (-1..1 of the generic space): click-to-centre")
@_answers_refusals
async def api_ptz_relative(request: web.Request) -> web.StreamResponse:
    pan, tilt, zoom = velocities(await json_object(request))
    control, principal, cam = await _target(request)
    await control.relative_move(principal, cam, pan, tilt, zoom,
                                address=client_address(request))
    return _ok()


@routes.route("POST", "/api/v1/cameras/{id}/ptz/absolute", access="ptz", body=POSITION_BODY,
              response=OK, summary="Move to a position: pan and tilt -1..1, zoom 0..1")
@_answers_refusals
async def api_ptz_absolute(request: web.Request) -> web.StreamResponse:
    data = await json_object(request)
    pan, tilt, _ = velocities({"pan": data.get("pan"), "tilt": data.get("tilt")})
    zoom = data.get("zoom")
    control, principal, cam = await _target(request)
    await control.absolute_move(principal, cam, pan, tilt,
                                float(zoom) if zoom is not None else None,
                                address=client_address(request))
    return _ok()


# --- presets and home ---------------------------------------------------------------------------

@routes.route("GET", "/api/v1/cameras/{id}/ptz/presets", access="ptz",
              response=obj(presets=array(PRESET)), summary="The camera's PTZ presets")
@_answers_refusals
async def api_presets(request: web.Request) -> web.StreamResponse:
    control, principal, cam = await _target(request)
    return web.json_response({"presets": await control.presets(principal, cam)})


@routes.route("POST", "/api/v1/cameras/{id}/ptz/presets", access="ptz", body=NAME_BODY,
              statuses=(201,), response=PRESET,
              summary="Save the current position as a preset")
@_answers_refusals
async def api_preset_save(request: web.Request) -> web.StreamResponse:
    name = await _preset_name(request)
    control, principal, cam = await _target(request)
    token = await control.save_preset(principal, cam, name, address=client_address(request))
    return web.json_response({"token": token, "name": name}, status=201)


@routes.route("PUT", "/api/v1/cameras/{id}/ptz/presets/{token}", access="ptz", body=NAME_BODY,
              params={"token": TOKEN}, response=OK,
              summary="Rename a preset (the camera goes there and saves it under the new name)")
@_answers_refusals
async def api_preset_rename(request: web.Request) -> web.StreamResponse:
    token = _token(request)
    name = await _preset_name(request)
    control, principal, cam = await _target(request)
    await control.rename_preset(principal, cam, token, name, address=client_address(request))
    return _ok()


@routes.route("DELETE", "/api/v1/cameras/{id}/ptz/presets/{token}", access="ptz",
              params={"token": TOKEN}, response=OK, summary="Remove a preset")
@_answers_refusals
async def api_preset_remove(request: web.Request) -> web.StreamResponse:
    token = _token(request)
    control, principal, cam = await _target(request)
    await control.remove_preset(principal, cam, token, address=client_address(request))
    return _ok()


@routes.route("POST", "/api/v1/cameras/{id}/ptz/presets/{token}/goto", access="ptz",
              params={"token": TOKEN}, response=OK, summary="Go to a preset")
@_answers_refusals
async def api_preset_goto(request: web.Request) -> web.StreamResponse:
    token = _token(request)
    control, principal, cam = await _target(request)
    await control.goto_preset(principal, cam, token, address=client_address(request))
    return _ok()


@routes.route("POST", "/api/v1/cameras/{id}/ptz/home", access="ptz", response=OK,
              summary="Go to the home position")
@_answers_refusals
async def api_home_goto(request: web.Request) -> web.StreamResponse:
    control, principal, cam = await _target(request)
    await control.goto_home(principal, cam, address=client_address(request))
    return _ok()


@routes.route("PUT", "/api/v1/cameras/{id}/ptz/home", access="ptz", response=OK,
              summary="Make the current position the home position")
@_answers_refusals
async def api_home_set(request: web.Request) -> web.StreamResponse:
    control, principal, cam = await _target(request)
    await control.set_home(principal, cam, address=client_address(request))
    return _ok()


# --- the control WebSocket ----------------------------------------------------------------------

def _same_origin(request: web.Request) -> bool:
    """A browser WebSocket carries the page's Origin: refuse other sites (cross-site hijacking)."""
    origin = request.headers.get("Origin")
    return origin is None or origin in (f"{request.scheme}://{request.host}",
                                        f"https://{request.host}", f"http://{request.host}")


@routes.route("GET", "/api/v1/cameras/{id}/ptz/ws", access="ptz", statuses=(101,), media=(),
              scope="control",
              summary="PTZ control WebSocket: press-and-hold moves with keep-alives; tells who "
                      "moves the camera")
@_answers_refusals
async def api_ptz_ws(request: web.Request) -> web.StreamResponse:
    control, principal, cam = await _target(request)
    ws = web.WebSocketResponse(heartbeat=WS_HEARTBEAT_S, max_msg_size=4096)
    if not ws.can_prepare(request).ok:
        raise bad_request("this URL is a WebSocket: connect with 'Upgrade: websocket'")
    if not _same_origin(request):
        raise web.HTTPForbidden(text="WebSocket from another origin")
    owner = new_owner("ws")
    address = client_address(request)
    queue = control.subscribe(cam)
    await ws.prepare(request)
    sender = asyncio.create_task(_forward(ws, queue, owner), name=f"ptz-ws-{cam.id}")
    try:
        await ws.send_str(json.dumps({"type": "state", **control.state(cam), "mine": False}))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                if msg.type == WSMsgType.ERROR:
                    break
                continue
            error = await _command(control, cam, principal, owner, address, msg.data)
            if error:
                await ws.send_str(json.dumps({"type": "error", "message": error}))
    except (ConnectionResetError, RuntimeError):
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        control.unsubscribe(cam, queue)
        # shielded: a server stopping (or a cancelled handler) still sends the Stop
        await asyncio.shield(control.release(cam, owner))
    return ws


async def _command(control: PtzControl, cam: Any, principal: Principal, owner: str,
                   address: str, text: str) -> str:
    """Carry out one client message; the error text to send back, or ""."""
    try:
        data = json.loads(text) if len(text) <= 1024 else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return "messages are JSON objects"
    kind = data.get("type")
    try:
        if kind == "keepalive":
            control.keepalive(cam, owner)
        elif kind == "move":
            pan, tilt, zoom = velocities(data)
            await control.move(principal, cam, pan, tilt, zoom, owner=owner, address=address)
        elif kind == "stop":
            await control.stop(cam, owner=owner, reason="released")
        else:
            return "type must be move, keepalive or stop"
    except web.HTTPBadRequest as exc:
        return exc.text or "bad message"
    except OnboardingError as exc:
        return str(exc)
    return ""


async def _forward(ws: web.WebSocketResponse, queue: asyncio.Queue[dict[str, Any]],
                   owner: str) -> None:
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        while True:
            message = dict(await queue.get())
            if message.get("closed"):
                await ws.close()
                return
            mine = message.pop("owner", None) == owner and message["moving"]
            await ws.send_str(json.dumps({"type": "state", **message, "mine": mine}))
