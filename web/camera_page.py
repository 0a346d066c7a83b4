"""What the camera page (camera.html) shows besides the camera row: the storage volumes its
recording-settings form offers and the state of its event pump. Every render of the page — the page
itself, a form answered with its error — takes its context from :func:`camera_page_context`."""

from __future__ import annotations

from aiohttp import web

from onvif_bridge.event_pumps import stopped_status
from web.keys import SERVICES, SETTINGS


def volume_names(request: web.Request) -> tuple[str, ...]:
    """The configured storage volumes' names (the recording-settings form offers them)."""
    return tuple(v.name for v in request.app[SETTINGS].volumes)


def events_status(app: web.Application, camera_id: int) -> dict[str, object]:
    """The camera's event pump (state, mode, last message, failures, error)."""
    pumps = app[SERVICES].get("event_pumps")
    return pumps.status(camera_id) if pumps is not None else stopped_status()


def camera_page_context(request: web.Request, camera: dict[str, object],
                        **extra: object) -> dict[str, object]:
    """camera.html's context: the camera, the volumes, the event pump, and ``extra``."""
    return {"camera": camera, "volumes": volume_names(request),
            "events": events_status(request.app, int(str(camera["id"]))), **extra}
