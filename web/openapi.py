"""The OpenAPI document, generated from the route table so it grows with the API.

Each operation carries what its :class:`web.routing.Rule` declares: typed query and path
parameters, the JSON request body, and the success answer (status, content type, JSON schema).
Every error answers the same JSON shape (:data:`web.schemas.ERROR`), declared for 400, 401/403
(routes that need a login), 404 (routes with path parameters) and as the default for any other.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from web import schemas
from web.routing import JSON, Param, Rule

_PARAM_RE = re.compile(r"{([^}:]+)(?::[^}]*)?}")

PATH_PARAMS: dict[str, dict[str, Any]] = {
    "id": schemas.path_id("the id in the path"),
    "segment_id": schemas.path_id("a recorded segment's id (from the playlist)"),
    "hold_id": schemas.path_id("a hold's id"),
    "token_id": schemas.path_id("an API token's id"),
}
"""Path parameters by name, unless the route declares its own (``params``); others are strings."""

_ERROR = {"$ref": "#/components/responses/Error"}


def _responses(rule: Rule) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status in rule.statuses:
        answer: dict[str, Any] = {"description": HTTPStatus(status).phrase}
        if status not in (101, 204) and rule.media:
            answer["content"] = {
                media: ({"schema": rule.response} if media == JSON and rule.response else {})
                for media in rule.media}
        responses[str(status)] = answer
    responses["400"] = _ERROR
    if rule.access != "public":
        responses["401"] = _ERROR
        responses["403"] = _ERROR
    if _PARAM_RE.search(rule.path):
        responses["404"] = _ERROR
    responses["default"] = _ERROR
    return responses


def _parameters(rule: Rule) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for name in _PARAM_RE.findall(rule.path):
        schema = rule.params.get(name) or PATH_PARAMS.get(name) or schemas.STR
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    for entry in rule.query:
        param = entry if isinstance(entry, Param) else Param(*entry)
        params.append({"name": param.name, "in": "query", "required": param.required,
                       "description": param.description, "schema": param.schema})
    return params


def build_openapi(rules: dict[tuple[str, str], Rule]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for (method, _path), rule in sorted(rules.items()):
        if not rule.api or method == "HEAD":
            continue
        path = _PARAM_RE.sub(r"{\1}", rule.path)
        operation: dict[str, Any] = {
            "operationId": rule.name,
            "summary": rule.summary,
            "x-vms-access": rule.access,
            "x-vms-token-scope": rule.scope,
            "responses": _responses(rule),
        }
        if rule.access == "public":
            operation["security"] = []
        params = _parameters(rule)
        if params:
            operation["parameters"] = params
        if rule.body is not None:
            operation["requestBody"] = {"required": True, "content": {
                JSON: {"schema": rule.body}}}
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "VMS API", "version": "1",
                 "description": "Instants are integer UTC microseconds in fields named *_us; "
                                "query parameters accept those or ISO-8601 with an offset."},
        "servers": [{"url": "/"}],
        "security": [{"session": []}, {"bearer": []}],
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "vms_session",
                            "description": "state-changing calls also need X-CSRF-Token"},
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "an API token; x-vms-token-scope names the least "
                                          "scope (read < control < admin) an operation needs"},
            },
            "responses": {"Error": {"description": "Error", "content": {JSON: {
                "schema": schemas.ERROR}}}},
        },
        "paths": paths,
    }
