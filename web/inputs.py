"""Parsing what clients send: JSON bodies, forms and query parameters, with errors naming the field.

Every failure is an ``HTTPBadRequest`` whose text says which field was wrong and what was expected,
so a bad request never becomes a 500.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from vms.clock import parse_instant
from web.keys import RULES
from web.routing import rule_for
from web.validation import BodyError, check_body

MAX_JSON_BYTES = 1_000_000


def bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=message)


class FieldError(web.HTTPBadRequest):
    """A 400 about one field of the request body; JSON answers name it as ``error.field``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(text=message)
        self.field = field


async def json_object(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_JSON_BYTES,
                                            actual_size=request.content_length)
    raw = await request.read()
    if len(raw) > MAX_JSON_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_JSON_BYTES, actual_size=len(raw))
    try:
        value = json.loads(raw.decode("utf-8") if raw else "")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise bad_request(f"request body must be a JSON object, got {type(value).__name__}")
    check_declared_body(request, value)
    return value


def check_declared_body(request: web.Request, value: dict[str, Any]) -> None:
    """Refuse a body that breaks the JSON schema its route declares (:mod:`web.validation`)."""
    rule = rule_for(request, request.app.get(RULES) or {})
    if rule is not None and rule.body is not None:
        try:
            check_body(rule.body, value)
        except BodyError as exc:
            raise FieldError(exc.field, str(exc)) from None


async def form_or_json(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        return await json_object(request)
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def get_str(data: dict[str, Any], key: str, *, required: bool = True, max_len: int = 200,
            default: str = "") -> str:
    value = data.get(key)
    if value is None:
        if required:
            raise bad_request(f"field {key!r} is required")
        return default
    if not isinstance(value, str):
        raise bad_request(f"field {key!r} must be a string, got {type(value).__name__}")
    if len(value) > max_len:
        raise bad_request(f"field {key!r} is longer than {max_len} characters")
    if "\x00" in value:
        raise bad_request(f"field {key!r} contains a NUL character")
    return value


def get_int(data: dict[str, Any], key: str, *, required: bool = True,
            default: int | None = None, minimum: int | None = None,
            maximum: int | None = None) -> int | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise bad_request(f"field {key!r} is required")
        return default
    if isinstance(value, bool):
        raise bad_request(f"field {key!r} must be an integer, got a boolean")
    if isinstance(value, str):
        text = value
        try:
            value = int(text)
        except ValueError:
            raise bad_request(f"field {key!r} must be an integer, got {text[:40]!r}") from None
    if not isinstance(value, int):
        raise bad_request(f"field {key!r} must be an integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise bad_request(f"field {key!r} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise bad_request(f"field {key!r} must be <= {maximum}")
    return value


def get_str_list(data: dict[str, Any], key: str, *, max_items: int = 1000) -> list[str]:
    value = data.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"field {key!r} must be a list of strings")
    if len(value) > max_items:
        raise bad_request(f"field {key!r} has more than {max_items} items")
    return value


def match_id(request: web.Request, key: str = "id") -> int:
    text = request.match_info.get(key, "")
    if not (text.isascii() and text.isdigit()) or len(text) > 18:  # '²' is a digit, not an int
        raise web.HTTPNotFound(text=f"no such {key}")
    return int(text)


def query_instant(request: web.Request, key: str, *, required: bool = False) -> int | None:
    text = request.query.get(key)
    if text is None or text == "":
        if required:
            raise bad_request(f"query parameter {key!r} is required")
        return None
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise bad_request(f"query parameter {key!r}: {exc}") from None


def query_int(request: web.Request, key: str, *, default: int | None = None,
              minimum: int | None = None, maximum: int | None = None) -> int | None:
    return get_int(dict(request.query), key, required=False, default=default, minimum=minimum,
                   maximum=maximum)
