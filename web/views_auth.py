"""Signing in and out (page and API), the current user, and the language switch."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from aiohttp import web

from vms import audit
from vms.auth import ROLES, AccountError, AuthError, csrf_matches
from web import i18n
from web.inputs import form_or_json, get_str, json_object
from web.keys import ACCOUNTS, CLOCK, GATEWAY, SETTINGS, THROTTLE, principal_of
from web.middleware import LANG_COOKIE, SESSION_COOKIE, client_address, set_request_language
from web.render import render
from web.routing import Routes
from web.schemas import ID, INT, OK, STR, array, enum, nullable, obj

log = logging.getLogger(__name__)
routes = Routes()

LOGIN_CSRF_COOKIE = "vms_login_csrf"


def _safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    settings = request.app[SETTINGS]
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Lax", path="/",
                        secure=request.secure, max_age=settings.server.session_hours * 3600)


async def _login(request: web.Request, username: str, password: str) -> tuple[str, str, Any]:
    """Check throttling and credentials, open a session; audit either way."""
    throttle = request.app[THROTTLE]
    gateway = request.app[GATEWAY]
    accounts = request.app[ACCOUNTS]
    clock = request.app[CLOCK]
    address = client_address(request)
    keys = (f"user:{username.lower()}", f"addr:{address}")
    wait_s = throttle.retry_after_s(*keys)
    if wait_s:
        await gateway.write(audit.record, clock, "login", username=username[:64], address=address,
                            outcome="throttled")
        raise web.HTTPTooManyRequests(
            text=f"too many failed sign-ins; try again in {wait_s} s",
            headers={"Retry-After": str(wait_s)})

    def check() -> tuple[str, str, Any] | None:
        try:
            user = accounts.authenticate(username, password)
        except AuthError:
            # committed, not rolled back: the failure itself is what the audit must keep
            audit.record(clock, "login", username=username[:64], address=address,
                         outcome="failed")
            return None
        token, csrf = accounts.open_session(user, address)
        audit.record(clock, "login", username=user.username, address=address)
        return token, csrf, user

    result = await gateway.write(check)
    if result is None:
        throttle.failed(*keys)
        raise web.HTTPUnauthorized(text="wrong username or password")
    token, csrf, user = result
    throttle.succeeded(*keys)
    return token, csrf, user


@routes.route("GET", "/login", access="public", summary="Sign-in page")
async def login_page(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    first_run = await request.app[GATEWAY].read(request.app[ACCOUNTS].user_count) == 0
    response = render(request, "login.html",
                      {"next": _safe_next(request.query.get("next")), "login_csrf": token,
                       "error": "", "first_run": first_run})
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/login")
    return response


@routes.route("POST", "/login", access="public", summary="Sign in from the form", csrf=False)
async def login_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    given = form.get("login_csrf")
    if not csrf_matches(expected, given if isinstance(given, str) else None):
        raise web.HTTPForbidden(text=i18n.gettext("The sign-in form expired; reload the page."))
    username = str(form.get("username", ""))[:64]
    password = str(form.get("password", ""))[:1024]
    next_url = _safe_next(str(form.get("next", "/")))
    try:
        token, _csrf, _user = await _login(request, username, password)
    except web.HTTPUnauthorized:
        return render(request, "login.html",
                      {"next": next_url, "login_csrf": expected, "first_run": False,
                       "error": i18n.gettext("Wrong username or password.")}, status=401)
    except web.HTTPTooManyRequests as exc:
        page = render(request, "login.html",
                      {"next": next_url, "login_csrf": expected, "first_run": False,
                       "error": i18n.gettext("Too many failed attempts. Try again later.")},
                      status=429)
        page.headers["Retry-After"] = exc.headers.get("Retry-After", "60")
        return page
    response = web.HTTPFound(next_url)
    _set_session_cookie(request, response, token)
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
    raise response


@routes.route("POST", "/logout", access="login", summary="Sign out (form)")
async def logout_form(request: web.Request) -> web.StreamResponse:
    await _logout(request)
    response = web.HTTPFound("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


async def _logout(request: web.Request) -> None:
    principal = principal_of(request)
    token = request.cookies.get(SESSION_COOKIE)
    accounts = request.app[ACCOUNTS]
    clock = request.app[CLOCK]

    def close() -> None:
        if token:
            accounts.close_session(token)
        audit.record(clock, "logout", principal=principal, address=client_address(request))

    await request.app[GATEWAY].write(close)


LOGIN_BODY = {"type": "object", "required": ["username", "password"],
              "properties": {"username": {"type": "string"}, "password": {"type": "string"}}}


@routes.route("POST", "/api/v1/auth/login", access="public", csrf=False, body=LOGIN_BODY,
              response=obj(csrf_token=STR, user=obj(id=INT, username=STR, role=enum(*ROLES))),
              summary="Sign in; sets the session cookie and returns the CSRF token")
async def api_login(request: web.Request) -> web.StreamResponse:
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send the credentials as application/json")
    body = await json_object(request)
    username = get_str(body, "username", max_len=64)
    password = get_str(body, "password", max_len=1024)
    token, csrf, user = await _login(request, username, password)
    response = web.json_response({"csrf_token": csrf, "user": {
        "id": user.id, "username": user.username, "role": user.role}})
    _set_session_cookie(request, response, token)
    return response


@routes.route("POST", "/api/v1/auth/logout", access="login", summary="Sign out", response=OK)
async def api_logout(request: web.Request) -> web.StreamResponse:
    await _logout(request)
    response = web.json_response({"ok": True})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@routes.route("GET", "/api/v1/me", access="login", summary="The signed-in user, rights and sites",
              response=obj(id=INT, username=STR, role=enum(*ROLES), rights=array(STR), language=STR,
                           site_ids=nullable(array(ID)), csrf_token=nullable(STR)))
async def api_me(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    assert principal is not None
    return web.json_response({
        "id": principal.user_id, "username": principal.username, "role": principal.role,
        "rights": sorted(principal.rights), "language": principal.language,
        "site_ids": None if principal.site_ids is None else sorted(principal.site_ids),
        "csrf_token": principal.csrf_token or None,
    })


@routes.route("POST", "/language", access="public", summary="Choose the UI language", csrf=False)
async def set_language(request: web.Request) -> web.StreamResponse:
    data = await form_or_json(request)
    lang = get_str(data, "language", max_len=8)
    if lang not in i18n.LANGUAGES:
        raise web.HTTPBadRequest(text=f"unknown language {lang!r}; expected one of "
                                      f"{', '.join(i18n.LANGUAGES)}")
    principal = principal_of(request)
    if principal is not None:
        # changing a signed-in user's preference is a state change: it needs the CSRF token
        given = data.get("csrf_token") or request.headers.get("X-CSRF-Token")
        if principal.via == "session" and not csrf_matches(principal.csrf_token, given):
            raise web.HTTPForbidden(text="missing or invalid CSRF token")
        try:
            await request.app[GATEWAY].write(request.app[ACCOUNTS].set_language,
                                             principal.user_id, lang)
        except AccountError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
    response = web.HTTPFound(_safe_next(str(data.get("next", "/"))))
    response.set_cookie(LANG_COOKIE, lang, samesite="Lax", path="/", max_age=365 * 86400)
    request[LANG_COOKIE] = lang
    set_request_language(request)
    raise response
