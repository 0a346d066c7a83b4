"""Administration: users, sites, grants, passwords and the audit log (API tokens: views_account)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from vms import audit
from vms.auth import ROLES, USERNAME_RE, AccountError, Principal
from vms.db import models as m
from vms.passwords import MIN_PASSWORD_LENGTH
from web.inputs import get_str, get_str_list, json_object, query_instant, query_int
from web.keys import ACCOUNTS, CLOCK, GATEWAY, principal_of
from web.middleware import client_address
from web.render import render
from web.routing import Param, Routes
from web.schemas import ANY_OBJECT, BOOL, ID, INSTANT, INT, OK, STR, US, array, enum, nullable, obj, or_blank
from web.views_account import hash_new_password

routes = Routes()


def _principal(request: web.Request) -> Principal:
    principal = principal_of(request)
    assert principal is not None
    return principal


async def _create_user(request: web.Request, data: dict[str, Any]) -> dict[str, Any]:
    username = get_str(data, "username", max_len=64)
    password = get_str(data, "password", max_len=1024)
    role = get_str(data, "role", max_len=16)
    sites = get_str_list(data, "sites")
    hashed = await hash_new_password(request, password)
    accounts = request.app[ACCOUNTS]
    clock = request.app[CLOCK]
    principal = _principal(request)

    def create() -> dict[str, Any]:
        user = accounts.create_user(username, hashed, role, sites)
        audit.record(clock, "user_create", principal=principal, target=username,
                     address=client_address(request), detail={"role": role, "sites": sites})
        return {"id": user.id, "username": user.username, "role": user.role, "sites": sites}

    try:
        return await request.app[GATEWAY].write(create)
    except AccountError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None


USER_BODY = {"type": "object", "required": ["username", "password", "role"], "properties": {
    "username": {"type": "string", "pattern": USERNAME_RE.pattern},
    "password": {"type": "string", "minLength": MIN_PASSWORD_LENGTH, "maxLength": 1024},
    "role": {"enum": list(ROLES)},
    "sites": {"type": "array", "items": {"type": "string"}, "maxItems": 1000}}}
USER = obj(id=INT, username=STR, role=enum(*ROLES), disabled=BOOL, sites=array(STR), created_us=US)


@routes.route("GET", "/api/v1/users", access="manage_users", summary="All users",
              response=obj(users=array(USER)))
async def api_users(request: web.Request) -> web.StreamResponse:
    users = await request.app[GATEWAY].read(request.app[ACCOUNTS].list_users)
    return web.json_response({"users": users})


@routes.route("POST", "/api/v1/users", access="manage_users", body=USER_BODY, statuses=(201,),
              response=obj(id=INT, username=STR, role=enum(*ROLES), sites=array(STR)),
              summary="Create a user with a role and site grants")
async def api_create_user(request: web.Request) -> web.StreamResponse:
    return web.json_response(await _create_user(request, await json_object(request)), status=201)


@routes.route("POST", "/api/v1/users/{username}/grants", access="manage_users",
              body={"type": "object", "required": ["site"],
                    "properties": {"site": {"type": "string", "maxLength": 200},
                                   "revoke": {"type": "boolean"}}},
              response=OK, summary="Grant (or revoke) a site to a user")
async def api_grant(request: web.Request) -> web.StreamResponse:
    data = await json_object(request)
    site = get_str(data, "site")
    revoke = bool(data.get("revoke", False))
    username = request.match_info["username"][:64]
    accounts = request.app[ACCOUNTS]
    clock = request.app[CLOCK]
    principal = _principal(request)

    def change() -> None:
        (accounts.revoke if revoke else accounts.grant)(username, site)
        audit.record(clock, "revoke" if revoke else "grant", principal=principal,
                     target=f"{username} -> {site}", address=client_address(request))

    try:
        await request.app[GATEWAY].write(change)
    except AccountError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    return web.json_response({"ok": True})


async def _create_site(request: web.Request, name: str, tz: str) -> dict[str, Any]:
    """Create a site on the writer, audited (``site_create``); AccountError when refused. The new
    site as the API answers it."""
    accounts = request.app[ACCOUNTS]
    clock = request.app[CLOCK]
    principal = _principal(request)
    address = client_address(request)

    def create() -> dict[str, Any]:
        try:
            site = accounts.create_site(name, tz)
        except ValueError as exc:
            raise AccountError(str(exc)) from None
        audit.record(clock, "site_create", principal=principal, target=name, site_id=site.id,
                     address=address, detail={"timezone": tz})
        return {"id": site.id, "name": site.name, "timezone": site.timezone}

    result: dict[str, Any] = await request.app[GATEWAY].write(create)
    return result


@routes.route("POST", "/api/v1/sites", access="manage_users",
              body={"type": "object", "required": ["name"], "properties": {
                  "name": {"type": "string", "maxLength": 200},
                  "timezone": {"type": "string", "maxLength": 64}}},
              statuses=(201,), response=obj(id=INT, name=STR, timezone=STR),
              summary="Create a site")
async def api_create_site(request: web.Request) -> web.StreamResponse:
    data = await json_object(request)
    name = get_str(data, "name")
    tz = get_str(data, "timezone", required=False, default="UTC", max_len=64)
    try:
        return web.json_response(await _create_site(request, name, tz), status=201)
    except AccountError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None


AUDIT_QUERY = (("action", "only this action"), ("username", "only this user"),
               Param("from", "from this instant", or_blank(INSTANT)),
               Param("to", "before this instant", or_blank(INSTANT)),
               Param("limit", "at most this many rows (default 200)",
                     or_blank({"type": "integer", "minimum": 1, "maximum": 1000})))
AUDIT_ENTRY = obj(id=INT, at_us=US, username=STR, action=STR, target=STR, site_id=nullable(ID),
                  address=STR, outcome=STR, detail=ANY_OBJECT)


async def _audit_rows(request: web.Request) -> list[dict[str, Any]]:
    principal = _principal(request)
    return await request.app[GATEWAY].read(
        audit.query, principal, action=request.query.get("action") or None,
        username=request.query.get("username") or None,
        from_us=query_instant(request, "from"), to_us=query_instant(request, "to"),
        limit=query_int(request, "limit", default=200, minimum=1, maximum=1000) or 200)


@routes.route("GET", "/api/v1/audit", access="audit", query=AUDIT_QUERY,
              response=obj(entries=array(AUDIT_ENTRY)), summary="The audit log, newest first")
async def api_audit(request: web.Request) -> web.StreamResponse:
    return web.json_response({"entries": await _audit_rows(request)})


@routes.route("GET", "/admin/audit", access="audit", query=AUDIT_QUERY, summary="Audit log page")
async def audit_page(request: web.Request) -> web.StreamResponse:
    return render(request, "audit.html",
                  {"entries": await _audit_rows(request), "query": dict(request.query)})


async def _update_user(request: web.Request, username: str, data: dict[str, Any]) -> dict[str, Any]:
    role = get_str(data, "role", required=False, max_len=16) or None
    sites = get_str_list(data, "sites") if "sites" in data else None
    disabled_raw = data.get("disabled")
    if disabled_raw is not None and not isinstance(disabled_raw, bool):
        if disabled_raw not in ("on", "true", "false", ""):
            raise web.HTTPBadRequest(text="field 'disabled' must be a boolean")
        disabled_raw = disabled_raw in ("on", "true")
    password = get_str(data, "password", required=False, max_len=1024) or None
    accounts = request.app[ACCOUNTS]
    clock = request.app[CLOCK]
    principal = _principal(request)
    if username == principal.username and (disabled_raw or (role and role != "admin")):
        raise web.HTTPBadRequest(text="you cannot disable yourself or drop your own admin role")
    hashed = await hash_new_password(request, password) if password else None

    def update() -> dict[str, Any]:
        changes = accounts.update_user(username, role=role, sites=sites, disabled=disabled_raw,
                                       password=hashed)
        if changes:
            audit.record(clock, "user_change", principal=principal, target=username,
                         address=client_address(request), detail=changes)
        return changes

    try:
        return await request.app[GATEWAY].write(update)
    except AccountError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None


@routes.route("PATCH", "/api/v1/users/{username}", access="manage_users",
              body={"type": "object", "properties": {
                  "role": {"enum": list(ROLES)}, "disabled": {"type": "boolean"},
                  "sites": {"type": "array", "items": {"type": "string"}, "maxItems": 1000},
                  "password": {"type": "string", "minLength": MIN_PASSWORD_LENGTH,
                               "maxLength": 1024}}},
              response=obj(changes=ANY_OBJECT),
              summary="Change a user's role, sites, disabled flag or password (a new password "
                      "ends their sessions and revokes their API tokens)")
async def api_update_user(request: web.Request) -> web.StreamResponse:
    changes = await _update_user(request, request.match_info["username"][:64],
                                 await json_object(request))
    return web.json_response({"changes": changes})


async def _users_page(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    gateway = request.app[GATEWAY]
    users = await gateway.read(request.app[ACCOUNTS].list_users)
    sites = await gateway.read(lambda: [{"name": s.name, "timezone": s.timezone}
                                        for s in m.Site.select().order_by(m.Site.name)])
    tokens: dict[str, list[dict[str, object]]] = {}
    for row in await gateway.read(request.app[ACCOUNTS].list_api_tokens):
        if row["state"] == "active":
            tokens.setdefault(str(row["username"]), []).append(row)
    return render(request, "users.html",
                  {"users": users, "sites": sites, "roles": ROLES, "error": error,
                   "tokens": tokens}, status=status)


@routes.route("GET", "/admin/users", access="manage_users", summary="Users and sites page")
async def users_page(request: web.Request) -> web.StreamResponse:
    return await _users_page(request)


async def _form(request: web.Request) -> dict[str, Any]:
    form = await request.post()
    data: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str) and k != "sites"}
    data["sites"] = [v for v in form.getall("sites", []) if isinstance(v, str)]
    return data


@routes.route("POST", "/admin/users", access="manage_users", summary="Create a user (form)")
async def users_form(request: web.Request) -> web.StreamResponse:
    try:
        await _create_user(request, await _form(request))
    except web.HTTPBadRequest as exc:
        return await _users_page(request, exc.text or "", 400)
    raise web.HTTPFound("/admin/users")


@routes.route("POST", "/admin/users/{username}", access="manage_users",
              summary="Change a user's role, sites, disabled flag or password (form)")
async def user_update_form(request: web.Request) -> web.StreamResponse:
    data = await _form(request)
    data.setdefault("disabled", "false")
    if not data.get("password"):
        data.pop("password", None)
    try:
        await _update_user(request, request.match_info["username"][:64], data)
    except web.HTTPBadRequest as exc:
        return await _users_page(request, exc.text or "", 400)
    raise web.HTTPFound("/admin/users")


@routes.route("POST", "/admin/sites", access="manage_users", summary="Create a site (form)")
async def sites_form(request: web.Request) -> web.StreamResponse:
    data = await _form(request)
    name = get_str(data, "name")
    tz = get_str(data, "timezone", required=False, default="UTC", max_len=64) or "UTC"
    try:
        await _create_site(request, name, tz)
    except AccountError as exc:
        return await _users_page(request, str(exc), 400)
    raise web.HTTPFound("/admin/users")
