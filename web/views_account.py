"""Your own account: password and API tokens (page and API), and revoking anyone's token.

Passwords are hashed and checked on the password pool (:class:`vms.passwords.PasswordPool`), never
inside a database job. API tokens are shown once at creation; listing shows their name, scope,
expiry, last use and state, never the token.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from vms import audit
from vms.auth import (
    DEFAULT_SCOPE,
    DEFAULT_TOKEN_DAYS,
    MAX_TOKEN_DAYS,
    TOKEN_SCOPES,
    USERNAME_RE,
    AccountError,
    Principal,
)
from vms.passwords import HashedPassword, PasswordPoolBusy
from web import i18n
from web.inputs import get_int, get_str, json_object, match_id
from web.keys import ACCOUNTS, CLOCK, GATEWAY, PASSWORDS, principal_of
from web.middleware import client_address
from web.render import render
from web.routing import Routes
from web.schemas import BOOL, INT, STR, US, array, enum, nullable, obj

routes = Routes()


def _principal(request: web.Request) -> Principal:
    principal = principal_of(request)
    assert principal is not None
    return principal


def _busy(exc: PasswordPoolBusy) -> web.HTTPServiceUnavailable:
    return web.HTTPServiceUnavailable(text=str(exc),
                                      headers={"Retry-After": str(exc.retry_after_s)})


async def hash_new_password(request: web.Request, password: str) -> HashedPassword:
    """``password`` checked for strength and hashed on the password pool (400 when too weak,
    503 with Retry-After when the pool is full)."""
    try:
        return await request.app[PASSWORDS].hash_new(password)
    except AccountError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    except PasswordPoolBusy as exc:
        raise _busy(exc) from None


async def _change_own_password(request: web.Request, current: str, new: str) -> int:
    """Check ``current`` and set ``new``: sessions end, API tokens are revoked (their count)."""
    accounts = request.app[ACCOUNTS]
    gateway = request.app[GATEWAY]
    clock = request.app[CLOCK]
    principal = _principal(request)
    pool = request.app[PASSWORDS]
    try:
        with pool.place():
            found = await gateway.read(accounts.password_hash_of, principal.username)
            right = await pool.verify(found[1] if found else None, current)
    except PasswordPoolBusy as exc:
        raise _busy(exc) from None
    if not right or found is None:
        await gateway.write(audit.record, clock, "password_change", principal=principal,
                            target=principal.username, address=client_address(request),
                            outcome="failed")
        raise web.HTTPForbidden(text="the current password is wrong")
    hashed = await hash_new_password(request, new)

    def change() -> int:
        revoked = accounts.set_password(principal.username, hashed)
        audit.record(clock, "password_change", principal=principal, target=principal.username,
                     address=client_address(request), detail={"tokens_revoked": revoked})
        return revoked

    return await gateway.write(change)


PASSWORD_BODY = {"type": "object", "required": ["current_password", "new_password"],
                 "properties": {"current_password": {"type": "string", "maxLength": 1024},
                                "new_password": {"type": "string", "maxLength": 1024}}}
TOKEN = obj(id=INT, username=STR, name=STR, scope=enum(*TOKEN_SCOPES), created_us=US,
            expires_us=US, last_used_us=nullable(US), state=enum("active", "revoked", "expired"))
"""An API token as listed (never the token itself)."""


@routes.route("POST", "/api/v1/me/password", access="login", body=PASSWORD_BODY,
              scope="admin", response=obj(ok=BOOL, tokens_revoked=INT),
              summary="Change your own password (ends all your sessions, revokes your API tokens)")
async def api_change_password(request: web.Request) -> web.StreamResponse:
    data = await json_object(request)
    current = get_str(data, "current_password", max_len=1024)
    new = get_str(data, "new_password", max_len=1024)
    revoked = await _change_own_password(request, current, new)
    return web.json_response({"ok": True, "tokens_revoked": revoked})


# --- API tokens -------------------------------------------------------------------------------

TOKEN_BODY = {"type": "object", "required": ["name"], "properties": {
    "name": {"type": "string", "maxLength": 100},
    "scope": {"enum": list(TOKEN_SCOPES)},
    "expires_days": {"type": "integer", "minimum": 1, "maximum": MAX_TOKEN_DAYS}}}


async def _create_token(request: web.Request, data: dict[str, Any]) -> dict[str, Any]:
    name = get_str(data, "name", max_len=100)
    scope = get_str(data, "scope", required=False, default=DEFAULT_SCOPE, max_len=16)
    days = get_int(data, "expires_days", required=False, default=DEFAULT_TOKEN_DAYS, minimum=1,
                   maximum=MAX_TOKEN_DAYS) or DEFAULT_TOKEN_DAYS
    accounts = request.app[ACCOUNTS]
    clock = request.app[CLOCK]
    principal = _principal(request)

    def create() -> dict[str, Any]:
        token = accounts.create_api_token(principal.username, name, scope=scope,
                                          expires_days=days)
        row = accounts.list_api_tokens(principal.username)[0]
        audit.record(clock, "token_create", principal=principal, target=name,
                     address=client_address(request),
                     detail={"token_id": row["id"], "scope": scope, "expires_days": days})
        return {**row, "token": token}

    try:
        return await request.app[GATEWAY].write(create)
    except AccountError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None


async def _revoke_token(request: web.Request, token_id: int, *, any_owner: bool) -> dict[str, Any]:
    """Revoke a token: one's own, or (``any_owner``, for user managers) anyone's."""
    accounts = request.app[ACCOUNTS]
    clock = request.app[CLOCK]
    principal = _principal(request)
    owner = None if any_owner else principal.username

    def revoke() -> dict[str, Any]:
        row = accounts.revoke_api_token(token_id, owner=owner)
        audit.record(clock, "token_revoke", principal=principal,
                     target=f"{row['username']}: {row['name']}", address=client_address(request),
                     detail={"token_id": token_id})
        return row

    try:
        return await request.app[GATEWAY].write(revoke)
    except AccountError as exc:
        raise web.HTTPNotFound(text=str(exc)) from None


@routes.route("GET", "/api/v1/tokens", access="login", response=obj(tokens=array(TOKEN)),
              summary="Your API tokens (never the tokens themselves)")
async def api_tokens(request: web.Request) -> web.StreamResponse:
    rows = await request.app[GATEWAY].read(request.app[ACCOUNTS].list_api_tokens,
                                           _principal(request).username)
    return web.json_response({"tokens": rows})


@routes.route("POST", "/api/v1/tokens", access="login", body=TOKEN_BODY, scope="admin",
              statuses=(201,), response={**TOKEN, "properties": {**TOKEN["properties"],
                                                                  "token": STR},
                                         "required": [*TOKEN["required"], "token"]},
              summary="Create an API token for yourself (shown once); scope read | control | "
                      "admin (default control), expires_days (default 90)")
async def api_create_token(request: web.Request) -> web.StreamResponse:
    return web.json_response(await _create_token(request, await json_object(request)),
                             status=201)


@routes.route("DELETE", r"/api/v1/tokens/{token_id:\d+}", access="login", scope="admin",
              response=TOKEN,
              summary="Revoke an API token: your own, or anyone's with the right manage_users")
async def api_revoke_token(request: web.Request) -> web.StreamResponse:
    principal = _principal(request)
    row = await _revoke_token(request, match_id(request, "token_id"),
                              any_owner=principal.can("manage_users"))
    return web.json_response(row)


@routes.route("GET", "/api/v1/users/{username}/tokens", access="manage_users",
              response=obj(tokens=array(TOKEN)),
              params={"username": {"type": "string", "pattern": USERNAME_RE.pattern}},
              summary="A user's API tokens (never the tokens themselves)")
async def api_user_tokens(request: web.Request) -> web.StreamResponse:
    username = request.match_info["username"][:64]
    accounts = request.app[ACCOUNTS]

    try:
        rows = await request.app[GATEWAY].read(accounts.list_api_tokens, username)
    except AccountError as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    return web.json_response({"tokens": rows})


# --- the account page -------------------------------------------------------------------------

async def _account_page(request: web.Request, *, new_token: dict[str, Any] | None = None,
                        error: str = "", message: str = "", status: int = 200) -> web.Response:
    rows = await request.app[GATEWAY].read(request.app[ACCOUNTS].list_api_tokens,
                                           _principal(request).username)
    return render(request, "account.html", {
        "tokens": rows, "new_token": new_token, "error": error, "message": message,
        "scopes": TOKEN_SCOPES, "default_scope": DEFAULT_SCOPE,
        "default_days": DEFAULT_TOKEN_DAYS, "max_days": MAX_TOKEN_DAYS}, status=status)


@routes.route("GET", "/account", access="login", summary="Your account: password and API tokens")
async def account_page(request: web.Request) -> web.StreamResponse:
    return await _account_page(request)


async def _form(request: web.Request) -> dict[str, Any]:
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@routes.route("POST", "/account/tokens", access="login", scope="admin",
              summary="Create an API token (form; the page shows it once)")
async def account_token_form(request: web.Request) -> web.StreamResponse:
    try:
        row = await _create_token(request, await _form(request))
    except web.HTTPBadRequest as exc:
        return await _account_page(request, error=exc.text or "", status=400)
    return await _account_page(request, new_token=row, status=201)


@routes.route("POST", r"/account/tokens/{token_id:\d+}/revoke", access="login",
              scope="admin", summary="Revoke one of your API tokens (form)")
async def account_revoke_form(request: web.Request) -> web.StreamResponse:
    await _revoke_token(request, match_id(request, "token_id"), any_owner=False)
    raise web.HTTPFound("/account")


@routes.route("POST", "/account/password", access="login", scope="admin",
              summary="Change your own password (form)")
async def account_password_form(request: web.Request) -> web.StreamResponse:
    data = await _form(request)
    current = get_str(data, "current_password", max_len=1024)
    new = get_str(data, "new_password", max_len=1024)
    try:
        await _change_own_password(request, current, new)
    except web.HTTPForbidden:
        return await _account_page(request, error=i18n.gettext("The current password is wrong."),
                                   status=403)
    except web.HTTPBadRequest as exc:
        return await _account_page(request, error=exc.text or "", status=400)
    # this session ended with the change: sign in again with the new password
    raise web.HTTPFound("/login?next=/account")


@routes.route("POST", r"/admin/tokens/{token_id:\d+}/revoke", access="manage_users",
              summary="Revoke any user's API token (form)")
async def admin_revoke_form(request: web.Request) -> web.StreamResponse:
    await _revoke_token(request, match_id(request, "token_id"), any_owner=True)
    raise web.HTTPFound("/admin/users")
