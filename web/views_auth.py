"""Signing in and out (page and API), the current user, and the language switch."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from aiohttp import web

from vms import audit
from vms.auth import ROLES, AccountError, csrf_matches
from vms.passwords import PasswordPoolBusy, Throttled
from web import i18n
from web.inputs import form_or_json, get_str, json_object, safe_next
from web.keys import ACCOUNTS, CLOCK, GATEWAY, PASSWORDS, SETTINGS, THROTTLE, principal_of
from web.middleware import LANG_COOKIE, SESSION_COOKIE, client_address, set_request_language
from web.render import render
from web.routing import Routes
from web.schemas import ID, INT, OK, STR, array, enum, nullable, obj

log = logging.getLogger(__name__)
routes = Routes()

LOGIN_CSRF_COOKIE = "vms_login_csrf"


def _set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    settings = request.app[SETTINGS]
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Lax", path="/",
                        secure=request.secure, max_age=settings.server.session_hours * 3600)


async def _login(request: web.Request, username: str, password: str) -> tuple[str, str, Any]:
    """Throttle, check the password on the password pool, open a session; audit either way.

    The attempt is counted by the throttle before anything is awaited, so parallel guesses are
    counted as they arrive. No argon2 runs inside a database job: the user's hash is read on a
    reader thread, checked on the password pool, and only the small session and audit rows go
    through the writer (which the recorder's index writes share)."""
    throttle = request.app[THROTTLE]
    gateway = request.app[GATEWAY]
    accounts = request.app[ACCOUNTS]
    passwords = request.app[PASSWORDS]
    clock = request.app[CLOCK]
    address = client_address(request)
    keys = (f"user:{username.lower()}", f"addr:{address}")
    try:
        throttle.begin(*keys)
    except Throttled as exc:
        if exc.first:  # once per lock: a flood of refusals must not become a flood of writes
            await gateway.write(audit.record, clock, "login", username=username[:64],
                                address=address, outcome="throttled",
                                detail={"retry_after_s": exc.retry_after_s})
        raise web.HTTPTooManyRequests(text=str(exc),
                                      headers={"Retry-After": str(exc.retry_after_s)}) from None
    outcome: bool | None = None  # None: the password was never looked at
    try:
        with passwords.place():  # a full pool refuses at once, before any database read
            outcome = False  # from here, an attempt cancelled or failed half-way is a failure
            found = await gateway.read(accounts.password_hash_of, username)
            outcome = await passwords.verify(found[1] if found else None, password)
    except PasswordPoolBusy as exc:
        raise web.HTTPServiceUnavailable(
            text=str(exc), headers={"Retry-After": str(exc.retry_after_s)}) from None
    finally:
        if outcome is None:
            throttle.release(*keys)  # not a guess: it was never checked
        else:
            throttle.finish(*keys, ok=outcome)
    ok = outcome

    if ok and found is not None:
        user_id, checked_hash = found

        def open_session() -> tuple[str, str, Any] | None:
            try:
                user = accounts.user_by_id(user_id)
            except AccountError:
                return None  # removed while the password was being checked
            if user.disabled or user.password_hash != checked_hash:
                return None  # disabled, or the password changed, while it was being checked
            token, csrf = accounts.open_session(user, address)
            audit.record(clock, "login", username=user.username, address=address)
            return token, csrf, user

        result = await gateway.write(open_session)
        if result is not None:
            return result
    # committed, not rolled back: the failure itself is what the audit must keep
    await gateway.write(audit.record, clock, "login", username=username[:64], address=address,
                        outcome="failed")
    raise web.HTTPUnauthorized(text="wrong username or password")


@routes.route("GET", "/login", access="public", summary="Sign-in page")
async def login_page(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    first_run = await request.app[GATEWAY].read(request.app[ACCOUNTS].user_count) == 0
    response = render(request, "login.html",
                      {"next": safe_next(request.query.get("next")), "login_csrf": token,
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
    next_url = safe_next(form.get("next"))
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
    except web.HTTPServiceUnavailable as exc:
        page = render(request, "login.html",
                      {"next": next_url, "login_csrf": expected, "first_run": False,
                       "error": i18n.gettext("The server is busy checking other sign-ins. "
                                             "Try again in a moment.")},
                      status=503)
        page.headers["Retry-After"] = exc.headers.get("Retry-After", "1")
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
        "token_scope": principal.token_scope or None,  # when called with an API token
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
    response = web.HTTPFound(safe_next(data.get("next")))
    response.set_cookie(LANG_COOKIE, lang, samesite="Lax", path="/", max_age=365 * 86400)
    request[LANG_COOKIE] = lang
    set_request_language(request)
    raise response
