"""Parsing what clients send: JSON bodies, forms, query parameters and redirect targets, with
errors naming the field.

Every failure is an ``HTTPBadRequest`` whose text says which field was wrong and what was expected,
so a bad request never becomes a 500. JSON bodies are bounded in size, nesting depth and number
range (integers fit in 64 bits, floats are finite), so nothing downstream (the database, ``float()``,
a recursive walk) meets a value it cannot hold. :func:`safe_next` is the one check of a
client-supplied place to send the browser after a form (sign-in, language switch).
"""

from __future__ import annotations

import json
import math
import unicodedata
from typing import Any
from urllib.parse import unquote, urlsplit

from aiohttp import web

from vms.clock import parse_instant
from web.keys import RULES
from web.routing import rule_for
from web.validation import BodyError, check_body

MAX_JSON_BYTES = 1_000_000
MAX_JSON_DEPTH = 32
"""Arrays and objects nested deeper than this are refused (no API body needs more than a few)."""
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""What a database integer column holds; integers in bodies and queries must lie in this range."""
MAX_NEXT_CHARS = 2000


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
        value = json.loads(raw.decode("utf-8") if raw else "", parse_int=_json_int,
                           parse_float=_json_float, parse_constant=_json_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from None
    except _JsonNumberError as exc:
        raise bad_request(f"request body: {exc}") from None
    except RecursionError:
        raise bad_request(f"request body is nested too deeply (at most {MAX_JSON_DEPTH} levels "
                          "of arrays and objects)") from None
    if not isinstance(value, dict):
        raise bad_request(f"request body must be a JSON object, got {type(value).__name__}")
    if _json_depth(value) > MAX_JSON_DEPTH:
        raise bad_request(f"request body is nested too deeply (at most {MAX_JSON_DEPTH} levels "
                          "of arrays and objects)")
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


class _JsonNumberError(ValueError):
    pass


def _json_int(text: str) -> int:
    # refused before int() so a number of thousands of digits costs nothing
    if len(text.lstrip("-")) > 19 or not INT64_MIN <= int(text) <= INT64_MAX:
        shown = text if len(text) <= 24 else f"{text[:20]}..."
        raise _JsonNumberError(f"the integer {shown} does not fit in 64 bits")
    return int(text)


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 24 else f"{text[:20]}..."
        raise _JsonNumberError(f"the number {shown} is too large")
    return value


def _json_constant(text: str) -> float:
    raise _JsonNumberError(f"{text} is not a JSON number")


def _json_depth(value: Any) -> int:
    """Nesting depth of arrays and objects, walked without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


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
    if not INT64_MIN <= value <= INT64_MAX:
        raise bad_request(f"field {key!r} does not fit in 64 bits")
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


def safe_next(target: object) -> str:
    """``target`` when it is a path on this server, else ``/``: where to send the browser next.

    Accepted: printable ASCII only (a browser drops tabs and newlines from a URL, so a tab
    between two slashes would make ``//evil.example``), starting with a single ``/``, no
    backslash (browsers read it as ``/``), no scheme or host; and the same still holds of the path
    after undoing percent-escapes (``/%2F/x``, ``/%09/x``, ``/%5Cx``), however often applied.
    """
    if not isinstance(target, str) or not target or len(target) > MAX_NEXT_CHARS:
        return "/"
    if not all("!" <= ch <= "~" for ch in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    form = target
    for _ in range(8):
        path = form.split("?", 1)[0].split("#", 1)[0]
        if not _single_slash_path(path):
            return "/"
        decoded = unquote(form)
        if decoded == form:
            return target
        form = decoded
    return "/"  # escaped over and over: no page of ours needs that


def _single_slash_path(path: str) -> bool:
    if not path.startswith("/") or path[1:2] in ("/", "\\"):
        return False
    return not any(ch == "\\" or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp")
                   for ch in path)
