"""The server's check of JSON request bodies against the schema their route declares.

:func:`web.inputs.json_object` calls :func:`check_body` with the route's ``body`` schema (from the
route table, :mod:`web.routing`) once the body is parsed, so every declared body is checked in one
place before a handler reads it, and the OpenAPI document cannot promise what the server does not
hold to. A body that breaks its schema is refused with a 400 naming the field
(``field 'profile.fps' must be a number``).

Validation is JSON Schema 2020-12 (the dialect of OpenAPI 3.1) by the ``jsonschema`` package; a
validator is compiled once per schema. ``format`` is an annotation only, as the standard says:
handlers parse instants and addresses themselves, with their own messages.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

_TYPE_NAMES = {"string": "a string", "integer": "an integer", "number": "a number",
               "boolean": "true or false", "array": "a list", "object": "an object",
               "null": "null"}
MAX_SHOWN = 60

_validators: dict[int, tuple[dict[str, Any], Draft202012Validator]] = {}


class BodyError(ValueError):
    """A request body that breaks its schema; the message names the field, and ``field`` is its
    path (``profile.fps``; '' for the body as a whole)."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(message)
        self.field = field_path


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    known = _validators.get(id(schema))
    if known is not None and known[0] is schema:
        return known[1]
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    _validators[id(schema)] = (schema, validator)  # the schema is kept: its id stays unique
    return validator


def check_body(schema: dict[str, Any], value: Any) -> None:
    """Raise :class:`BodyError` when ``value`` breaks ``schema``: about the first field (in the
    schema's order) that is wrong; within an ``anyOf``, the most fitting alternative's complaint."""
    first = next(iter(_validator(schema).iter_errors(value)), None)
    if first is not None:
        error = best_match([first]) or first
        raise BodyError(field_of(error), describe(error))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "…"


def _types(kind: Any) -> str:
    kinds = kind if isinstance(kind, list) else [kind]
    return " or ".join(_TYPE_NAMES.get(k, str(k)) for k in kinds)


def field_of(error: ValidationError) -> str:
    """The path of the field the error is about (a missing one included)."""
    path = [str(part) for part in error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, dict):
        path.append(next((n for n in error.validator_value if n not in error.instance), "?"))
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        path.append(next((k for k in sorted(error.instance) if k not in known), "?"))
    return ".".join(path)


def describe(error: ValidationError) -> str:
    """A message a person can act on: which field, and what was expected."""
    path = [str(part) for part in error.absolute_path]
    field = ".".join(path)
    kind = error.validator
    rule: Any = error.validator_value
    if kind == "required":
        return f"field {field_of(error)!r} is required"
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        return f"unknown field {field_of(error)!r}"
    name = f"field {field!r}" if field else "the request body"
    if kind == "type":
        return f"{name} must be {_types(rule)}, got {_shown(error.instance)}"
    if kind in ("enum", "const"):
        values = rule if kind == "enum" else [rule]
        return f"{name} must be one of {', '.join(_shown(v) for v in values)}"
    if kind in ("minimum", "exclusiveMinimum"):
        return f"{name} must be {'>' if kind == 'exclusiveMinimum' else '>='} {rule}"
    if kind in ("maximum", "exclusiveMaximum"):
        return f"{name} must be {'<' if kind == 'exclusiveMaximum' else '<='} {rule}"
    if kind == "maxLength":
        return f"{name} is longer than {rule} characters"
    if kind == "minLength":
        return f"{name} must have at least {rule} character{'s' if rule != 1 else ''}"
    if kind == "maxItems":
        return f"{name} has more than {rule} items"
    if kind == "minItems":
        return f"{name} must have at least {rule} item{'s' if rule != 1 else ''}"
    if kind in ("anyOf", "oneOf") and error.schema.get("description"):
        return f"{name}: expected {error.schema['description']}"
    return f"{name}: {error.message[:200]}"
