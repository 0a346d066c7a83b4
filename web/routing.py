"""The route table: every route is declared with its access rule, in one place.

A handler is registered with :meth:`Routes.route` naming who may call it: ``public`` (no login),
``login`` (any signed-in user) or a right from :data:`vms.auth.RIGHTS`. The access middleware
(:mod:`web.middleware`) refuses any route that has no rule, so a route cannot be added without
deciding its access. The same table feeds the OpenAPI document.

A call made with an API token also needs the token's scope to reach the rule's ``scope``
(:data:`vms.auth.TOKEN_SCOPES`): by default ``read`` for GET, ``admin`` for a state change that
needs ``manage_users``, ``control`` for any other state change. Routes that change credentials
(passwords, tokens) say ``admin`` themselves.

Each API route also declares its shapes next to its access rule: ``query`` (parameters, typed with
:class:`Param`), ``params`` (path parameters, when not the usual integer ids), ``body`` (the JSON
request body, which :func:`web.inputs.json_object` checks against it before the handler sees it)
and ``response`` (the JSON answer on success; ``statuses`` and ``media`` when it is not a plain 200
JSON answer). The schemas are built from :mod:`web.schemas`; ``tests/web/test_fuzz_api.py`` holds
every answer to them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiohttp import web

from vms.auth import RIGHTS, TOKEN_SCOPES

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JSON = "application/json"


class Param(NamedTuple):
    """A query parameter, typed by a JSON schema."""

    name: str
    description: str
    schema: dict[str, Any] = {"type": "string"}  # shared by every Param: never mutate it
    required: bool = False


Query = tuple[str, str] | Param
"""A query parameter: (name, description) for an optional string, or a :class:`Param`."""

ACCESS_LEVELS = ("public", "login", *RIGHTS)


@dataclass(frozen=True)
class Rule:
    method: str
    path: str
    access: str
    summary: str
    api: bool
    name: str
    query: tuple[Query, ...] = ()                # (name, description) or Param, for OpenAPI
    body: dict[str, Any] | None = None           # JSON schema of the request body
    response: dict[str, Any] | None = None       # JSON schema of the answer on success
    statuses: tuple[int, ...] = (200,)           # the success statuses
    media: tuple[str, ...] = (JSON,)             # the success answer's content types
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # path parameter schemas
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
              query: tuple[Query, ...] = (), body: dict[str, Any] | None = None,
              response: dict[str, Any] | None = None, statuses: tuple[int, ...] = (200,),
              media: tuple[str, ...] = (JSON,), params: dict[str, dict[str, Any]] | None = None,
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
                        body=body, response=response, statuses=statuses, media=media,
                        params=params or {}, csrf=csrf, scope=scope)
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
