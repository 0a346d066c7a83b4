"""Rendering pages: every template gets the same base context (user, language, CSRF token)."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from web import i18n
from web.keys import principal_of


def base_context(request: web.Request) -> dict[str, Any]:
    principal = principal_of(request)
    return {
        "principal": principal,
        "lang": request.get("lang", "en"),
        "languages": i18n.LANGUAGES,
        "csrf_token": principal.csrf_token if principal else "",
        "request_path": request.path_qs,
    }


def render(request: web.Request, template: str, context: dict[str, Any],
           status: int = 200) -> web.Response:
    return aiohttp_jinja2.render_template(template, request, {**base_context(request), **context},
                                          status=status)
