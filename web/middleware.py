"""Request middlewares: errors, access (authentication, rights, CSRF), language, metrics.

:func:`access_middleware` is the single place where authorisation happens: it finds the route's
:class:`web.routing.Rule`, refuses routes without one, resolves the caller (session cookie or bearer
token, or another cluster node's signed request) into a :class:`vms.auth.Principal`, checks the
rule's right and, for state-changing calls made with a cookie, the CSRF token. Site scoping of the
data itself is done by the services, which all take the Principal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web
from babel.support import NullTranslations
from prometheus_client import Counter, Histogram

from vms.auth import RIGHTS, Principal, csrf_matches, scope_allows
from vms.cluster import NODE_AUTH_HEADER, verify
from web import i18n
from web.inputs import FieldError
from web.keys import ACCOUNTS, GATEWAY, METRICS, PRINCIPAL, RULES, SERVICES, SETTINGS, principal_of
from web.messages import translate_message
from web.render import render
from web.routing import rule_for

log = logging.getLogger(__name__)

SESSION_COOKIE = "vms_session"
LANG_COOKIE = "vms_lang"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def json_error(status: int, message: str, **extra: object) -> web.Response:
    body = {"error": {"status": status, "message": message, **extra}}
    return web.json_response(body, status=status)


def client_address(request: web.Request) -> str:
    return request.remote or ""


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """JSON errors under /api/, rendered pages elsewhere; a 500 never shows internals."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.empty_body:
            raise
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        if is_api(request):
            extra = {"field": exc.field} if isinstance(exc, FieldError) else {}
            # the pages show API errors as they come: in the caller's language when known
            response = json_error(exc.status, translate_message(message or exc.reason), **extra)
        else:
            response = render_error(request, exc.status, translate_message(message or exc.reason))
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if header in exc.headers:
                response.headers[header] = exc.headers[header]
        return response
    except ConnectionError as exc:
        if not _client_gone(request, exc):
            log.exception("unhandled error in %s %s", request.method, request.path)
            return _server_error(request)
        # the client left mid-answer (a closed tab, a seek in a video): nothing to answer to
        # and nothing wrong here
        log.debug("%s %s: the client closed the connection (%s)", request.method, request.path,
                  type(exc).__name__)
        return web.Response(status=499, reason="Client Closed Request")
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return _server_error(request)


def _server_error(request: web.Request) -> web.Response:
    if is_api(request):
        return json_error(500, i18n.gettext("Something went wrong on the server."))
    return render_error(request, 500, i18n.gettext("Something went wrong on the server."))


def _client_gone(request: web.Request, exc: ConnectionError) -> bool:
    """Whether ``exc`` says our own client went away (a reset, a broken pipe, aiohttp's
    "Connection lost" on a write), not that a connection the handler made (to a camera) failed."""
    if isinstance(exc, ConnectionResetError | BrokenPipeError):  # aiohttp's Client…ResetError too
        return True
    transport = request.transport
    return transport is None or transport.is_closing()


def render_error(request: web.Request, status: int, message: str) -> web.Response:
    titles = {
        400: i18n.gettext("Bad request"), 401: i18n.gettext("Sign in required"),
        403: i18n.gettext("Forbidden"), 404: i18n.gettext("Page not found"),
        405: i18n.gettext("Method not allowed"), 429: i18n.gettext("Too many attempts"),
        500: i18n.gettext("Server error"),
    }
    try:
        return render(request, "error.html",
            {"status": status, "title": titles.get(status, str(status)), "message": message},
            status=status)
    except Exception:  # the template itself failed: plain text, never a second 500 loop
        log.exception("error page for %s could not be rendered", status)
        return web.Response(status=status, text=f"{status}: {message}")


def set_request_language(request: web.Request) -> None:
    """Pick the UI language for this request (user's choice, cookie, browser, default)."""
    settings = request.app[SETTINGS]
    principal = principal_of(request)
    lang = i18n.choose_language(
        principal.language if principal else "", request.cookies.get(LANG_COOKIE),
        request.headers.get("Accept-Language", ""), settings.server.default_language)
    request["lang"] = lang
    catalogues = request.app[I18N_KEY]
    i18n.activate(catalogues.get(lang, catalogues["en"]), lang)


@web.middleware
async def language_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    set_request_language(request)
    return await handler(request)


I18N_KEY: web.AppKey[dict[str, NullTranslations]] = web.AppKey("i18n_catalogues", dict)


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    rules = request.app[RULES]
    rule = rule_for(request, rules)
    route = request.match_info.route
    if rule is None:
        if isinstance(route.resource, web.StaticResource) or route.resource is None:
            # static files, and aiohttp's own 404/405 routes: no data behind them
            request[PRINCIPAL] = await _resolve_principal(request)
            return await handler(request)
        log.error("route %s %s has no access rule: refused", request.method, request.path)
        raise web.HTTPForbidden(text="this route has no access rule")

    for key, text in request.query.items():
        if "\x00" in key or "\x00" in text:  # no database stores it; PostgreSQL refuses it
            raise web.HTTPBadRequest(text=f"query parameter {key[:40]!r} contains a NUL character")
    principal = await _resolve_principal(request)
    request[PRINCIPAL] = principal
    if principal is not None and principal.language:
        set_request_language(request)
    if rule.access == "public":
        return await handler(request)
    if principal is None:
        if rule.api:
            raise web.HTTPUnauthorized(text="sign in first (POST /api/v1/auth/login) or send a "
                                            "bearer token", headers={"WWW-Authenticate": "Bearer"})
        raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='')}")
    if rule.access != "login" and not principal.can(rule.access):
        raise web.HTTPForbidden(text=f"your role ({principal.role}) does not allow this "
                                     f"(needs the right {rule.access!r})")
    if principal.via == "node" and rule.scope != "read":  # reads (and their WebSockets) only
        raise web.HTTPForbidden(text="a node-to-node credential may only read")
    if principal.via == "token" and not scope_allows(principal.token_scope, rule.scope):
        raise web.HTTPForbidden(text=f"this API token's scope ({principal.token_scope}) does not "
                                     f"allow this (needs a token of scope {rule.scope!r})")
    if request.method in UNSAFE_METHODS and principal.via == "session" and rule.csrf:
        given = request.headers.get(CSRF_HEADER)
        if given is None and request.content_type in ("application/x-www-form-urlencoded",
                                                       "multipart/form-data"):
            form = await request.post()
            value = form.get("csrf_token")
            given = value if isinstance(value, str) else None
        if not csrf_matches(principal.csrf_token, given):
            raise web.HTTPForbidden(text="missing or invalid CSRF token")
    return await handler(request)


async def _resolve_principal(request: web.Request):  # type: ignore[no-untyped-def]
    accounts = request.app[ACCOUNTS]
    gateway = request.app[GATEWAY]
    if NODE_AUTH_HEADER in request.headers:
        return _node_principal(request)
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        token = auth[7:].strip()
        principal = await gateway.read(accounts.token_principal, token) if token else None
        if principal is None:
            raise web.HTTPUnauthorized(text="invalid, expired or revoked API token",
                                       headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return principal
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return await gateway.read(accounts.session_principal, cookie)
    return None


def _node_principal(request: web.Request) -> Principal:
    """Another node of the cluster, fetching footage, an export's file or a live stream (a
    WebSocket upgrade is a GET) kept or recorded here, for a user it has already checked
    (web/cluster_proxy.py): a signature by the cluster secret, GET and HEAD of routes of the
    ``read`` scope only (not talk-back, whose scope is ``control``)."""
    secret = request.app[SERVICES].get("cluster_secret")
    node = verify(secret, request.headers, request.method, request.rel_url.path_qs) \
        if secret is not None else None
    if node is None or request.method not in ("GET", "HEAD"):
        raise web.HTTPUnauthorized(text="invalid node-to-node credential")
    return Principal(user_id=0, username=f"node:{node}", role="admin", site_ids=None,
                     via="node", rights=frozenset(RIGHTS))


HEADERS_SENT_AT = "vms.metrics.headers_sent_at"
"""Request key: ``perf_counter()`` when the response headers were sent (``on_response_prepare``)."""


def metrics_middleware_factory(app: web.Application):  # type: ignore[no-untyped-def]
    """Requests by method and status, and their latency: the time until the handler returned, or,
    for a response streamed from inside the handler (a WebSocket, an SSE feed, a streamed download),
    the time until its headers were sent — its long life is not latency."""
    registry = app[METRICS]
    requests = Counter("vms_http_requests", "HTTP requests served", ["method", "status"],
                       registry=registry)
    latency = Histogram("vms_http_request_seconds",
                        "HTTP request latency (streamed responses and WebSockets: time to headers)",
                        registry=registry)

    async def headers_sent(request: web.Request, response: web.StreamResponse) -> None:
        request.setdefault(HEADERS_SENT_AT, time.perf_counter())

    app.on_response_prepare.append(headers_sent)

    @web.middleware
    async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            end = request.get(HEADERS_SENT_AT) or time.perf_counter()
            requests.labels(request.method, str(status)).inc()
            latency.observe(end - start)

    return metrics_middleware


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: cache policy for static files, hardening headers for the rest."""
    if request.path.startswith("/static/"):
        if "v" in request.query:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        else:
            response.headers.setdefault("Cache-Control", "public, max-age=3600")
    else:
        response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
