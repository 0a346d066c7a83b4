"""The route table: every route is declared with its access rule, in one place.

A handler is registered with :meth:`Routes.route` naming who may call it: ``public`` (no login),
``login`` (any signed-in user) or a right from :data:`vms.auth.RIGHTS`. The access middleware
(:mod:`web.middleware`) refuses any route that has no rule, so a route cannot be added without
deciding its access. The same table feeds the OpenAPI document.

A call made with an API token also needs the token's scope to reach the rule's ``scope``
(:data:`vms.auth.TOKEN_SCOPES`): by default ``read`` for GET, ``admin`` for a state change that
needs ``manage_users``, ``control`` for any other state change. Routes that change credentials
(passwords, tokens) say ``admin`` themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from vms.auth import RIGHTS, TOKEN_SCOPES

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ACCESS_LEVELS = ("public", "login", *RIGHTS)


@dataclass(frozen=True)
class Rule:
    method: str
    path: str
    access: str
    summary: str
    api: bool
    name: str
    query: tuple[tuple[str, str], ...] = ()      # (name, description) for OpenAPI
    body: dict[str, Any] | None = None           # JSON schema of the request body
    csrf: bool = True                            # state-changing: needs a CSRF token with a cookie
    scope: str = "read"                          # the least API-token scope that may call it
    tags: tuple[str, ...] = field(default=())


def default_scope(method: str, access: str) -> str:
    if method.upper() in ("GET", "HEAD", "OPTIONS"):
        return "read"
    return "admin" if access == "manage_users" else "control"


class Routes:
    def __init__(self) -> None:
        self.rules: list[tuple[Rule, Handler]] = []

    def route(self, method: str, path: str, *, access: str, summary: str,
              query: tuple[tuple[str, str], ...] = (), body: dict[str, Any] | None = None,
              csrf: bool = True, name: str | None = None,
              scope: str | None = None) -> Callable[[Handler], Handler]:
        if access not in ACCESS_LEVELS:
            raise ValueError(f"route {method} {path}: unknown access {access!r}")
        if scope is None:
            scope = default_scope(method, access)
        elif scope not in TOKEN_SCOPES:
            raise ValueError(f"route {method} {path}: unknown API-token scope {scope!r}")

        def register(handler: Handler) -> Handler:
            rule = Rule(method=method.upper(), path=path, access=access, summary=summary,
                        api=path.startswith("/api/"), name=name or handler.__name__, query=query,
                        body=body, csrf=csrf, scope=scope)
            self.rules.append((rule, handler))
            return handler

        return register

    def add_to(self, app: web.Application, rules: dict[tuple[str, str], Rule]) -> None:
        for rule, handler in self.rules:
            added = app.router.add_route(rule.method, rule.path, handler, name=rule.name)
            # keyed by the canonical path ({name:regex} becomes {name}), as rule_for looks it up
            path = added.resource.canonical if added.resource is not None else rule.path
            rules[(rule.method, path)] = rule
            if rule.method == "GET":
                rules[("HEAD", path)] = rule


def rule_for(request: web.Request, rules: dict[tuple[str, str], Rule]) -> Rule | None:
    route = request.match_info.route
    resource = route.resource
    if resource is None:
        return None
    return rules.get((request.method, resource.canonical))
