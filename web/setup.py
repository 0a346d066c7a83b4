"""Wire the web layer into an aiohttp application: templates, languages, routes, static files.

Called by the composition root (:mod:`vms.app`) once the core services are in the app.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import Markup

from web import (
    i18n,
    messages,
    views_account,
    views_admin,
    views_auth,
    views_cameras,
    views_cluster,
    views_discovery,
    views_door,
    views_events,
    views_export,
    views_live,
    views_playback,
    views_ptz,
    views_recording,
    views_retention,
    views_storage,
    views_system,
    views_talk,
)
from web.forwarded import forwarded_middleware
from web.keys import RULES, SETTINGS
from web.middleware import (
    I18N_KEY,
    access_middleware,
    error_middleware,
    language_middleware,
    metrics_middleware_factory,
    security_headers,
)
from web.routing import Routes

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATES_DIR = WEB_DIR / "templates"

ALL_ROUTES: tuple[Routes, ...] = (
    views_system.routes, views_auth.routes, views_cameras.routes, views_admin.routes,
    views_account.routes,
    views_discovery.routes, views_live.routes, views_playback.routes,
    views_export.routes,
    views_recording.routes, views_retention.routes,
    views_storage.routes, views_events.routes,
    views_ptz.routes, views_door.routes, views_talk.routes,
    views_cluster.routes,
)


def _format_time(instant_us: int | None, tz_name: str = "UTC") -> str:
    """Template filter ``localtime``: date and time in the site's zone, in the page's language."""
    return i18n.format_instant(instant_us, tz_name)


def setup_web(app: web.Application, extra_routes: tuple[Routes, ...] = ()) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(["html", "xml"], default=True),
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
    )
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["localtime"] = _format_time
    env.filters["localday"] = i18n.format_day
    env.filters["number"] = i18n.format_number
    env.filters["gap_reason"] = i18n.gap_reason
    env.filters["message"] = messages.translate_message
    # a name or code shown inside translated text (a time zone, a key id): marked for the browser's
    # translator and the pages' English check alike
    env.filters["notranslate"] = lambda text: Markup('<span translate="no">{}</span>').format(text)
    env.filters["audit_action"] = messages.audit_action
    env.filters["audit_outcome"] = messages.audit_outcome
    env.filters["event_type"] = messages.event_type
    env.filters["stream_kind"] = messages.stream_kind
    env.globals["event_type_labels"] = messages.event_type_labels
    env.globals["static"] = lambda path: str(app.router["static"].url_for(filename=path))
    app[I18N_KEY] = i18n.load_catalogues()
    app[RULES] = {}
    app[views_playback.PREVIEWS] = views_playback.Previews()
    trusted_proxies = app[SETTINGS].server.trusted_proxies
    if trusted_proxies:  # first: every later middleware and handler sees the real client
        app.middlewares.append(forwarded_middleware(trusted_proxies))
    app.middlewares.extend([
        metrics_middleware_factory(app), language_middleware, error_middleware, access_middleware,
    ])
    for table in (*ALL_ROUTES, *extra_routes):
        table.add_to(app, app[RULES])
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=True)
    app.on_response_prepare.append(security_headers)
