"""The control HTTP API of a virtual camera (see "Public contract" in DESIGN.md).

``POST {control_url}/event`` ``{"type": "doorbell"|"motion"|"plate"|"tamper", "state": bool,
"plate": "..."}``; ``POST {control_url}/fault`` ``{"kind": "drop"|"refuse"|"stall"|"reboot"|
"slow_soap"|"bad_xml"|"no_long_poll"|"snapshot_404"|"probe_bare"|"probe_garbled"|"clear", "seconds":
N}`` (``no_long_poll``: PullMessages answers at once for N seconds; ``snapshot_404``: the snapshot
URL answers 404; ``probe_bare``: WS-Discovery answers a bare ProbeMatch; ``probe_garbled``: a
ProbeMatch cut off half-way); ``GET {control_url}/state`` (also ``relay_settings`` and
``relay_history``: every relay change with its time and whether a client or the Monostable timer
made it; and ``backchannel``: what the camera's loudspeaker received from the newest ONVIF
backchannel session — packets, seconds, ``frequency_hz``, sequence and timestamp errors; see
:mod:`camsim.backchannel`). It listens on its own port so
that it keeps answering while the camera "reboots". Handlers are thin: parse, call the camera's
method, answer JSON.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from camsim.camera import VirtualCamera

logger = logging.getLogger(__name__)

CAMERA_KEY: web.AppKey[VirtualCamera] = web.AppKey("camera")
PREFIX = "/camsim"


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text='{"error": "body is not JSON"}',
                                 content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}',
                                 content_type="application/json")
    return body


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def post_event(request: web.Request) -> web.Response:
    camera = request.app[CAMERA_KEY]
    body = await _json_body(request)
    state = body.get("state", True)
    plate = body.get("plate")
    if not isinstance(state, bool) or (plate is not None and not isinstance(plate, str)):
        return _bad("'state' must be true/false and 'plate' a string")
    try:
        camera.fire_event(str(body.get("type", "")), state=state, plate=plate)
    except ValueError as exc:
        return _bad(str(exc))
    return web.json_response({"ok": True})


async def post_fault(request: web.Request) -> web.Response:
    camera = request.app[CAMERA_KEY]
    body = await _json_body(request)
    seconds = body.get("seconds", 0)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return _bad("'seconds' must be a number")
    try:
        await camera.fault(str(body.get("kind", "")), float(seconds))
    except ValueError as exc:
        return _bad(str(exc))
    return web.json_response({"ok": True})


async def get_state(request: web.Request) -> web.Response:
    return web.json_response(request.app[CAMERA_KEY].state())


async def get_info(request: web.Request) -> web.Response:
    return web.json_response(request.app[CAMERA_KEY].info())


def build_control_app(camera: VirtualCamera) -> web.Application:
    app = web.Application()
    app[CAMERA_KEY] = camera
    app.router.add_post(f"{PREFIX}/event", post_event)
    app.router.add_post(f"{PREFIX}/fault", post_fault)
    app.router.add_get(f"{PREFIX}/state", get_state)
    app.router.add_get(f"{PREFIX}/info", get_info)
    return app
