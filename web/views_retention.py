"""Retention policies over the API: a camera's and a site's overrides of the ``[retention]``
defaults (continuous days, event days, and a camera's byte cap), with the effective policy and
where each value comes from. Reads need ``live``; changes ``manage_cameras`` (installers and
admins) and are audited (``retention_change``). Site-scoped: a camera or site the user may not see
is "not found". The logic lives in :mod:`vms.retention`; the purge that acts on it in
recorder/retention.py. Also the retention fields of the camera page's recording-settings form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from vms import catalog
from vms import retention as policy
from vms.auth import Principal
from web.inputs import json_object, match_id
from web.keys import CLOCK, GATEWAY, SETTINGS, principal_of
from web.middleware import client_address, json_error
from web.routing import Routes
from web.schemas import INT, STR, array, nullable, obj

routes = Routes()

DAYS = {"anyOf": [{"type": "integer", "minimum": 0, "maximum": policy.MAX_DAYS},
                  {"type": "null"}],
        "description": "days; 0: no age limit; null: inherit (site, then [retention])"}
BYTES = {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}],
         "description": "cap on the camera's recorded bytes; null: no cap"}

CAMERA_BODY: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {"continuous_days": DAYS, "event_days": DAYS, "max_bytes": BYTES},
}
SITE_BODY: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {"continuous_days": DAYS, "event_days": DAYS},
}
SOURCES = {"type": "object", "additionalProperties": {"enum": ["camera", "site", "default"]}}
DAY_PAIR = obj(continuous_days=nullable(INT), event_days=nullable(INT))
CAMERA_VIEW = obj(
    camera_id=INT, name=STR, site_id=INT,
    camera=obj(continuous_days=nullable(INT), event_days=nullable(INT), max_bytes=nullable(INT)),
    site=DAY_PAIR, defaults=obj(continuous_days=INT, event_days=INT),
    effective=obj(continuous_days=INT, event_days=INT, max_bytes=nullable(INT)),
    sources=SOURCES)
"""A camera's retention policy (:func:`vms.retention.camera_policy_view`)."""
SITE_VIEW = obj(site_id=INT, name=STR, site=DAY_PAIR,
                defaults=obj(continuous_days=INT, event_days=INT),
                effective=obj(continuous_days=INT, event_days=INT), sources=SOURCES)


def _with_changed(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "properties": {**schema["properties"], "changed": array(STR)},
            "required": [*schema["required"], "changed"]}


@routes.route("GET", "/api/v1/cameras/{id}/retention", access="live", response=CAMERA_VIEW,
              summary="A camera's retention policy: its overrides, its site's, the defaults and "
                      "the effective values with their source")
async def api_camera_retention(request: web.Request) -> web.StreamResponse:
    principal = _principal(request)
    try:
        data = await request.app[GATEWAY].read(policy.camera_policy_view, principal,
                                               match_id(request), request.app[SETTINGS].retention)
    except catalog.NotFound:
        raise web.HTTPNotFound(text="no such camera") from None
    return web.json_response(data)


@routes.route("PUT", "/api/v1/cameras/{id}/retention", access="manage_cameras",
              body=CAMERA_BODY, response=_with_changed(CAMERA_VIEW),
              summary="Change a camera's retention overrides (members left out stay; null "
                      "inherits); audited")
async def api_put_camera_retention(request: web.Request) -> web.StreamResponse:
    return await _put_policy(request, policy.FIELDS, policy.set_camera_policy, "camera")


@routes.route("GET", "/api/v1/sites/{id}/retention", access="live", response=SITE_VIEW,
              summary="A site's retention policy (its overrides, the defaults, the effective "
                      "values)")
async def api_site_retention(request: web.Request) -> web.StreamResponse:
    try:
        data = await request.app[GATEWAY].read(policy.site_policy_view, _principal(request),
                                               match_id(request), request.app[SETTINGS].retention)
    except catalog.NotFound:
        raise web.HTTPNotFound(text="no such site") from None
    return web.json_response(data)


@routes.route("PUT", "/api/v1/sites/{id}/retention", access="manage_cameras", body=SITE_BODY,
              response=_with_changed(SITE_VIEW),
              summary="Change a site's retention overrides (null inherits [retention]); audited")
async def api_put_site_retention(request: web.Request) -> web.StreamResponse:
    return await _put_policy(request, policy.SITE_FIELDS, policy.set_site_policy, "site")


async def _put_policy(request: web.Request, fields: tuple[str, ...],
                      apply: Callable[..., dict[str, Any]], what: str) -> web.StreamResponse:
    """A camera's or a site's overrides changed from a JSON body (parsed against ``fields``)."""
    raw = await json_object(request)
    try:
        change = policy.parse_change(raw, fields)
    except policy.PolicyError as exc:
        return json_error(400, str(exc), field=exc.field)
    try:
        data = await request.app[GATEWAY].write(
            apply, _principal(request), match_id(request), change, request.app[CLOCK],
            request.app[SETTINGS].retention, address=client_address(request))
    except catalog.NotFound:
        raise web.HTTPNotFound(text=f"no such {what}") from None
    return web.json_response(data)


def _principal(request: web.Request) -> Principal:
    principal = principal_of(request)
    if principal is None:  # the access rule lets no anonymous caller here
        raise web.HTTPUnauthorized(text="sign in first")
    return principal


FORM_PREFIX = "retention."


def form_change(fields: dict[str, str]) -> dict[str, int | None]:
    """The retention fields of the recording-settings form (``retention.continuous_days`` …; a
    blank field inherits) as a change; fields not sent are left out. PolicyError names a bad one."""
    raw: dict[str, Any] = {}
    for key in policy.FIELDS:
        if FORM_PREFIX + key not in fields:
            continue
        text = fields[FORM_PREFIX + key].strip()
        if not text:
            raw[key] = None
        elif text.isascii() and text.isdigit() and len(text) <= 18:
            raw[key] = int(text)
        else:
            raise policy.PolicyError(key, f"expected a whole number or blank, got {text!r}")
    return policy.parse_change(raw, policy.FIELDS)


async def apply_form(request: web.Request, camera_id: int, fields: dict[str, str]) -> None:
    """Apply the form's retention fields (if any were sent). Raises PolicyError, NotFound."""
    change = form_change(fields)
    if change:
        await request.app[GATEWAY].write(
            policy.set_camera_policy, _principal(request), camera_id, change,
            request.app[CLOCK], request.app[SETTINGS].retention, address=client_address(request))
