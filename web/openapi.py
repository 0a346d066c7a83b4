"""The OpenAPI document, generated from the route table so it grows with the API."""

from __future__ import annotations

import re
from typing import Any

from web.routing import Rule

_PARAM_RE = re.compile(r"{([^}:]+)(?::[^}]*)?}")


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
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {}}},
                "400": {"$ref": "#/components/responses/Error"},
                **({} if rule.access == "public" else {
                    "401": {"$ref": "#/components/responses/Error"},
                    "403": {"$ref": "#/components/responses/Error"}}),
            },
        }
        if rule.access == "public":
            operation["security"] = []
        params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in _PARAM_RE.findall(rule.path)]
        params += [{"name": name, "in": "query", "required": False, "description": desc,
                    "schema": {"type": "string"}} for name, desc in rule.query]
        if params:
            operation["parameters"] = params
        if rule.body is not None:
            operation["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": rule.body}}}
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
            "responses": {"Error": {"description": "Error", "content": {"application/json": {
                "schema": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                    "status": {"type": "integer"}, "message": {"type": "string"}}}}}}}}},
        },
        "paths": paths,
    }
