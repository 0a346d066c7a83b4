"""Typed application keys: what the composition root puts in the aiohttp app for the handlers."""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from prometheus_client import CollectorRegistry

from vms.auth import Accounts, Principal
from vms.bus import EventBus
from vms.clock import Clock
from vms.config import Settings
from vms.db.gateway import Gateway
from vms.passwords import LoginThrottle, PasswordPool
from vms.secrets import SecretBox

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)  # type: ignore[type-abstract]
GATEWAY = web.AppKey("gateway", Gateway)
ACCOUNTS = web.AppKey("accounts", Accounts)
THROTTLE = web.AppKey("throttle", LoginThrottle)
PASSWORDS = web.AppKey("passwords", PasswordPool)  # argon2 off the database threads
SECRETS = web.AppKey("secrets", SecretBox)
METRICS = web.AppKey("metrics", CollectorRegistry)
RULES = web.AppKey("rules", dict)
BUS = web.AppKey("bus", EventBus)
SERVICES = web.AppKey("services", dict)  # optional services by name: "recorder", "mqtt", ...

PRINCIPAL = "vms.principal"  # request key: Principal | None

T = TypeVar("T")


def service_of(app: web.Application, name: str, kind: type[T], not_running: str) -> T:
    """The optional service the composition root registered as ``name`` in :data:`SERVICES`;
    503 with the text ``not_running`` when this server does not run it."""
    service = app[SERVICES].get(name)
    if not isinstance(service, kind):
        raise web.HTTPServiceUnavailable(text=not_running)
    return service


def principal_of(request: web.Request) -> Principal | None:
    value: Any = request.get(PRINCIPAL)
    return value if isinstance(value, Principal) else None
