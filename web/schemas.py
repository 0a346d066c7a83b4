"""JSON Schema building blocks for the route table: request bodies, query parameters and answers.

The view modules declare each route's schemas next to its handler (``body=``, ``query=``,
``response=`` of :meth:`web.routing.Routes.route`), built from the pieces here. The same schemas
feed the OpenAPI document (:mod:`web.openapi`) and the server's check of request bodies
(:mod:`web.validation`); the fuzz test (``tests/web/test_fuzz_api.py``) checks every answer
against them.

Answers list every member they always carry as ``required``; members are never forbidden, so
adding one to an answer is not a breaking change.
"""

from __future__ import annotations

from typing import Any

from vms.clock import MAX_INSTANT_US, MIN_INSTANT_US

Schema = dict[str, Any]

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
US: Schema = {"type": "integer", "description": "UTC microseconds"}
MAX_ID = 2**63 - 1
"""The largest id a database row can have (a signed 64-bit integer): a larger number given for an
id is refused (400), never handed to the database (an overflow there was a 500)."""
ID: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
ANY_OBJECT: Schema = {"type": "object"}

INSTANT: Schema = {
    "description": "ISO-8601 with a UTC offset (2026-03-29T01:30:00+00:00) or integer UTC "
                   "microseconds",
    "anyOf": [{"type": "integer", "minimum": MIN_INSTANT_US, "maximum": MAX_INSTANT_US},
              {"type": "string", "format": "date-time"}],
}
"""An instant as a client may give it (a query parameter or a body member)."""


def nullable(schema: Schema) -> Schema:
    """``schema`` or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


def obj(*, optional: tuple[str, ...] = (), **properties: Schema) -> Schema:
    """An object with these members, all required except those named in ``optional``."""
    schema: Schema = {"type": "object", "properties": properties}
    required = [name for name in properties if name not in optional]
    if required:
        schema["required"] = required
    return schema


def enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def or_blank(schema: Schema) -> Schema:
    """A query parameter that may also be sent empty (``?from=``, as an HTML form sends a field
    left blank): empty means not given."""
    return {"anyOf": [schema, {"type": "string", "maxLength": 0}],
            **({"description": schema["description"]} if "description" in schema else {})}


def path_id(description: str) -> Schema:
    """An id in a path: digits (0 is never an id, but answers 404 rather than 400)."""
    return {"type": "integer", "minimum": 0, "maximum": 10**18 - 1, "description": description}


OK: Schema = obj(ok={"const": True})
"""``{"ok": true}``: the answer of calls that only change something."""

ERROR: Schema = obj(error=obj(status=INT, message=STR))
"""Every error answer under /api/ (:func:`web.middleware.json_error`); some add members to
``error`` (``kind``, ``report``, ``field``)."""

SITE_REF: Schema = obj(id=INT, name=STR, timezone=STR)
SITE: Schema = obj(id=INT, name=STR, timezone=STR, created_us=US)

CAMERA: Schema = obj(
    optional=("event_types",),
    event_types=obj(kept=array(STR), recorded=array(STR)),
    id=INT, name=STR, site=SITE_REF, status=STR, status_reason=STR, status_since_us=US,
    mac=nullable(STR), manufacturer=STR, model=STR, firmware=STR, serial=STR, onvif_url=STR,
    username=STR, enabled=BOOL, recording_mode=STR, clock_offset_us=nullable(INT),
    created_us=US, updated_us=US, archived_us=nullable(US))
"""A camera as :func:`vms.catalog.camera_dict` shows it (never its password)."""

STREAM: Schema = obj(
    kind=STR, profile_token=STR, rtsp_url=STR, codec=STR, width=INT, height=INT, fps=INT,
    bitrate_kbps=INT, record=BOOL,
    applied=nullable(obj(width=nullable(INT), height=nullable(INT), fps=nullable(INT),
                         bitrate_kbps=nullable(INT), gov_length=nullable(INT), applied_us=US)),
    drift=STR, checked_us=nullable(US))

RECORDING_STATUS: Schema = obj(state=STR, reason=STR, since_us=nullable(US),
                               streams=ANY_OBJECT, recorder_running=BOOL)
"""The recorder's state of one camera (:func:`web.views_recording.live_status`)."""

EVENT_PUMP: Schema = obj(
    state=enum("subscribing", "subscribed", "polling", "backoff", "auth_failed", "unsupported",
               "stopped"),
    mode=enum("long_poll", "fixed_poll"), last_message_us=nullable(US), failures=INT,
    failures_total=INT, subscriptions=INT, error=STR, clock_offset_us=nullable(INT),
    soap_log=BOOL)
"""The ONVIF event pump of one camera (:meth:`onvif_bridge.event_pumps.EventPumps.status`)."""

SOAP_EXCHANGE: Schema = obj(at_us=US, operation=STR, url=STR, request=STR,
                            status=nullable(INT), response=STR, duration_ms=INT, error=STR)
SOAP_LOG: Schema = obj(enabled=BOOL, exchanges=array(SOAP_EXCHANGE))
"""A camera's raw-SOAP log of its event pump (credentials never included)."""

CAMERA_DETAIL: Schema = {**CAMERA, "properties": {**CAMERA["properties"],
                                                  "streams": array(STREAM)},
                         "required": [*CAMERA["required"], "streams"]}
