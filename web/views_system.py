"""Health, metrics, the OpenAPI document, the web app manifest and the home page."""

from __future__ import annotations

import hmac

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vms import catalog
from web import i18n
from web.keys import GATEWAY, METRICS, RULES, SETTINGS, principal_of
from web.openapi import build_openapi
from web.render import render
from web.routing import Routes
from web.schemas import STR, obj

routes = Routes()


@routes.route("GET", "/healthz", access="public", summary="Liveness and database check")
async def healthz(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]

    def ping() -> bool:
        gateway.db.execute_sql("SELECT 1")
        return True

    try:
        await gateway.read(ping)
    except Exception as exc:  # any database failure means "not healthy", said plainly
        return web.json_response({"status": "error", "database": f"unavailable: {exc}"},
                                 status=503)
    return web.json_response({"status": "ok", "database": "ok"})


@routes.route("GET", "/metrics", access="public",
              summary="Prometheus metrics (bearer token when server.metrics_token is set)")
async def metrics(request: web.Request) -> web.StreamResponse:
    token = request.app[SETTINGS].server.metrics_token
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise web.HTTPUnauthorized(text="metrics need the configured bearer token",
                                       headers={"WWW-Authenticate": "Bearer"})
    # rendered on a reader thread: some collectors (vms/storage_metrics.py) read the database and
    # the file systems when scraped
    body = await request.app[GATEWAY].read(generate_latest, request.app[METRICS])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.route("GET", "/api/v1/openapi.json", access="public", summary="This API, as OpenAPI 3.1",
              response=obj(openapi=STR, info={"type": "object"}, paths={"type": "object"}))
async def openapi(request: web.Request) -> web.StreamResponse:
    return web.json_response(build_openapi(request.app[RULES]))


@routes.route("GET", "/manifest.webmanifest", access="public",
              summary="Web app manifest: install the UI on a phone's home screen")
async def manifest(request: web.Request) -> web.StreamResponse:
    """Public (browsers fetch it without cookies); names in the request's language."""
    icons = [
        {"src": "/static/img/icon-192.png", "sizes": "192x192", "type": "image/png",
         "purpose": "any"},
        {"src": "/static/img/icon-512.png", "sizes": "512x512", "type": "image/png",
         "purpose": "any"},
        {"src": "/static/img/icon-maskable-512.png", "sizes": "512x512", "type": "image/png",
         "purpose": "maskable"},
        {"src": "/static/img/favicon.svg", "sizes": "any", "type": "image/svg+xml"},
    ]
    body = {
        "name": "VMS · " + i18n.gettext("Video management"), "short_name": "VMS",
        "description": i18n.gettext("Live view and recordings of your cameras"),
        "lang": request.get("lang", "en"), "id": "/", "start_url": "/live", "scope": "/",
        "display": "standalone", "background_color": "#1d2330", "theme_color": "#1d2330",
        "icons": icons,
    }
    return web.json_response(body, content_type="application/manifest+json")


@routes.route("GET", "/", access="login", summary="Home: the cameras you may see")
async def home(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    assert principal is not None
    gateway = request.app[GATEWAY]
    sites = await gateway.read(catalog.list_sites, principal)
    cameras = await gateway.read(catalog.list_cameras, principal)
    return render(request, "home.html", {"sites": sites, "cameras": cameras})
