"""Fuzz the HTTP API from its own OpenAPI document with schemathesis, signed in as each role.

A real server (aiohttp on 127.0.0.1, real SQLite in a temporary folder) holds two sites, a user of
each role and a camera on each site (:func:`tests.web.conftest.seed_world`). Schemathesis reads
``/api/v1/openapi.json`` from it and, for every operation, generates requests from the declared
parameters and request body: valid ones (positive) and ones that break the schema (negative). Each
answer must not be a 5xx, must have a declared status and content type, must match its declared
response schema, and a request that breaks the schema must be refused with a 4xx. A user of Site A
must never be shown anything of Site B.

Bounded and deterministic: a few examples per operation and mode (see :data:`EXAMPLES`), Hypothesis
derandomized with no example database and no shrinking, so a run sends the same few hundred
requests every time and takes well under a minute. All traffic stays on loopback: the fixture
cameras sit at 127.0.0.1:9 (nothing listens there), the addresses that adopt and discovery
requests would reach are pinned to it before each request is sent (:func:`_loopback_only`), and
an audit hook refuses (and fails the test on) any connection or name look-up off loopback
(:class:`LoopbackGuard`).

What is not fuzzed, and why, is in :data:`SKIPPED`. Camera configure (reboot, clock, NTP) and clock
calls are fuzzed: they reach only 127.0.0.1:9, so no camera is rebooted. Cases naming one of the
fixture users in the path (role, grant or password changes of the very users signed in) are
discarded, so the roles keep their rights for the whole run.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from tests.web.conftest import PASSWORD, USERS, seed_world

LOOPBACK = "127.0.0.1"
DEAD_PORT = 9  # nothing listens on 127.0.0.1:9 (discard): a camera there refuses at once

ROLES = {"admin": "admin1", "installer": "installer1", "operator": "operator1",
         "viewer": "viewer1"}

SCALE = int(os.environ.get("VMS_FUZZ_SCALE", "1"))
EXAMPLES = {schemathesis.GenerationMode.POSITIVE: 3 * SCALE,
            schemathesis.GenerationMode.NEGATIVE: 2 * SCALE}
"""Hypothesis examples per operation, mode and role: about 185 requests per role, 740 in all
(~15 s). ``VMS_FUZZ_SCALE=20`` multiplies them for a longer hunt on a developer's machine."""

SKIPPED: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/auth/logout"):
        "ends the fuzzing session itself; every later case would answer 401",
    ("POST", "/api/v1/me/password"):
        "a valid change would replace the role user's password and end all its sessions",
    ("DELETE", "/api/v1/cameras/{id}"):
        "would remove the fixture cameras (every {id} operation is also tried with both) that "
        "the site scoping of every later case is checked with",
    ("GET", "/api/v1/events/stream"):
        "a server-sent-events feed never ends by itself, and schemathesis reads an answer to its "
        "end; its scoping, resumption and end are tested in tests/web/test_events.py",
}
"""Operations not fuzzed, and why: their effect would disturb the rest of the run."""


# --- the server ---------------------------------------------------------------------------------

class LoopbackServer:
    """The app served by aiohttp on 127.0.0.1 from a thread of its own: schemathesis's calls are
    blocking (requests), so the server needs an event loop that is not the test's."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-server",
                                       daemon=True)
        self.runner = web.AppRunner(app)
        self.port = 0

    def run(self, coro: Any, timeout_s: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def start(self) -> None:
        self.thread.start()
        self.run(self.runner.setup())
        site = web.TCPSite(self.runner, LOOPBACK, 0)
        self.run(site.start())
        self.port = self.runner.addresses[0][1]

    def stop(self) -> None:
        try:
            self.run(self.runner.cleanup())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)
            self.loop.close()

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


@dataclass
class Fuzzed:
    server: LoopbackServer
    document: dict[str, Any]
    site_a: int
    site_b: int
    camera_a: int
    camera_b: int
    sessions: dict[str, requests.Session] = field(default_factory=dict)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    from vms.app import create_app
    from vms.config import load_settings
    from web.keys import GATEWAY

    folder: Path = tmp_path_factory.mktemp("fuzz")
    settings_ = load_settings(None, env={}, overrides={
        "data_dir": folder / "data", "server.port": 0,
        "database.url": f"sqlite:///{folder / 'vms.sqlite3'}"})
    app = create_app(settings_, start_recorder=False)
    server = LoopbackServer(app)
    sessions = {role: _loopback_session() for role in ROLES}
    server.start()
    try:
        site_a, site_b, cam_a, cam_b = server.run(app[GATEWAY].write(seed_world, app))
        document = sessions["admin"].get(f"{server.base_url}/api/v1/openapi.json",
                                         timeout=10).json()
        # every role signs in before any case runs: fuzzed sign-ins with wrong passwords
        # count towards the address's throttle, which must not lock out a later role
        for role, username in ROLES.items():
            _sign_in(sessions[role], server.base_url, username)
        yield Fuzzed(server, document, site_a, site_b, cam_a, cam_b, sessions)
    finally:
        for session in sessions.values():
            session.close()
        server.stop()


def _loopback_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: straight to 127.0.0.1
    return session


def _sign_in(session: requests.Session, base_url: str, username: str) -> None:
    resp = session.post(f"{base_url}/api/v1/auth/login",
                        json={"username": username, "password": PASSWORD}, timeout=10)
    assert resp.status_code == 200, resp.text
    session.headers["X-CSRF-Token"] = resp.json()["csrf_token"]


# --- keeping every request on loopback ----------------------------------------------------------

@dataclass
class LoopbackGuard:
    """A process audit hook (the server runs in this process) that refuses, while on, any socket
    connect, send or name look-up for an address off loopback, and keeps what it refused. The
    refusal is an OSError, which the server answers like an unreachable camera; the test then
    fails on :attr:`refused`. Audit hooks cannot be removed: off, it returns at once."""

    on: bool = False
    refused: list[str] = field(default_factory=list)

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.on or event not in ("socket.connect", "socket.sendto", "socket.getaddrinfo"):
            return
        target = args[0] if event == "socket.getaddrinfo" else args[1]
        host = target[0] if isinstance(target, tuple) else target
        if event != "socket.getaddrinfo" and not isinstance(target, tuple):
            return  # a Unix socket path
        if isinstance(host, bytes):
            host = host.decode(errors="replace")
        if host is None or _is_loopback(str(host)):
            return
        self.refused.append(f"{event} {target!r}")
        raise PermissionError(f"the API fuzz keeps to loopback: {event} {target!r} refused")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


_GUARD = LoopbackGuard()
sys.addaudithook(_GUARD)


_PINNED = {
    "onvif_url": f"http://{LOOPBACK}:{DEAD_PORT}/onvif/device_service",
    "rtsp_url": f"rtsp://{LOOPBACK}:{DEAD_PORT}/fuzz",
    "targets": f"{LOOPBACK}:{DEAD_PORT}",
    "xaddrs": f"http://{LOOPBACK}:{DEAD_PORT}/onvif/device_service",
}


def _pinned(address: str, generated: str) -> str:
    """``address``, padded (in a URL fragment) to the generated value's length, so a value that
    broke a ``maxLength`` still does."""
    extra = len(generated) - len(address) - 1
    return address if extra < 0 else f"{address}#{'x' * extra}"


def _loopback_only(body: Any) -> None:
    """Pin every address the server would contact (adopt, bulk adopt, discovery) to a dead
    loopback port, keeping lengths and list sizes as generated. Values of another type are left
    as they are: the server refuses them before contacting anything."""
    if not isinstance(body, dict):
        return
    for key, address in _PINNED.items():
        value = body.get(key)
        if isinstance(value, str) and value:
            body[key] = _pinned(address, value)
        elif isinstance(value, list):
            body[key] = [_pinned(address, v) if isinstance(v, str) and v else v for v in value]


# --- the fuzz -----------------------------------------------------------------------------------

def _operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((method.upper(), path) for path, item in document["paths"].items()
                  for method in item)


def _checks() -> list[Callable[..., Any]]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_schema_conformance,
        status_code_conformance,
    )

    return [not_a_server_error, status_code_conformance, content_type_conformance,
            response_schema_conformance, negative_data_rejection]


def _fuzz_role(world: Fuzzed, role: str) -> list[str]:
    """Fuzz every operation as ``role``; the failures, one line (and reproduction) each."""
    session = world.sessions[role]
    username = ROLES[role]
    other_site = [name for name in ("Site A", "Site B")
                  if role != "admin" and name not in USERS[username][1]]
    other_names = [*other_site, *(["Gate B"] if other_site == ["Site B"] else [])]
    # the role's session cookie and CSRF header authenticate every case: generated cookies and
    # bearer tokens would only replace them (401)
    config = schemathesis.Config.from_str(
        "[generation]\nwith-security-parameters = false\ndeterministic = true\n")
    schema = schemathesis.openapi.from_dict(world.document, config=config)
    checks = _checks()
    failures: list[str] = []
    statuses: Counter[tuple[str, str, int]] = Counter()

    def call(case: schemathesis.Case) -> None:
        assume(case.path_parameters is None
               or case.path_parameters.get("username") not in USERS)
        _loopback_only(case.body)
        response = case.call_and_validate(base_url=world.server.base_url, session=session,
                                          checks=checks, timeout=30)
        statuses[(case.method, case.path, response.status_code)] += 1
        leaked = [name for name in other_names if name in response.text]
        assert not leaked, (f"{username} ({role} of Site A) was shown {leaked} of another "
                            f"site by {case.method} {case.formatted_path}")

    for method, path in _operations(world.document):
        if (method, path) in SKIPPED:
            continue
        operation = schema[path][method]
        for mode, examples in EXAMPLES.items():
            if mode.is_negative and not (operation.path_parameters or operation.query
                                         or operation.body):
                continue  # nothing to break
            strategy = operation.as_strategy(generation_mode=mode)
            if "{id}" in path and "/discovery/" not in path:
                # the other site's camera and one's own, besides whatever ids are generated
                strategy = st.one_of(
                    strategy,
                    operation.as_strategy(generation_mode=mode,
                                          path_parameters={"id": world.camera_a}),
                    operation.as_strategy(generation_mode=mode,
                                          path_parameters={"id": world.camera_b}))

            @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                      phases=[Phase.generate], report_multiple_bugs=False,
                      suppress_health_check=list(HealthCheck))
            @given(case=strategy)
            def run(case: schemathesis.Case) -> None:
                call(case)

            try:
                run()
            except (Exception, BaseExceptionGroup) as exc:  # collected: every failing operation
                failures.append(f"{role} {method} {path} ({mode.value}): {exc}")
    for (method, path, status), count in sorted(statuses.items()):
        print(f"{role:9} {method:6} {path:48} {status} ×{count}")
    print(f"{role}: {sum(statuses.values())} requests")
    return failures


def test_every_api_route_declares_its_answer() -> None:
    """A JSON answer without a declared schema would pass the fuzz unchecked."""
    from web.routing import JSON
    from web.setup import ALL_ROUTES

    missing = [f"{rule.method} {rule.path}" for table in ALL_ROUTES for rule, _ in table.rules
               if rule.api and JSON in rule.media and rule.response is None
               and not set(rule.statuses) <= {101, 204}]
    assert not missing, f"declare response= (a JSON schema) for {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("role", list(ROLES))
def test_fuzz_api_as_role(fuzzed: Fuzzed, role: str) -> None:
    _GUARD.on = True
    try:
        failures = _fuzz_role(fuzzed, role)
    finally:
        _GUARD.on = False
    assert not _GUARD.refused, f"traffic off loopback was attempted: {_GUARD.refused[:5]}"
    assert not failures, "\n\n".join(failures)


def test_the_loopback_guard_refuses_other_addresses() -> None:
    """The guard the fuzz relies on: off loopback, a connect is refused before any packet."""
    import socket

    _GUARD.on = True
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            with pytest.raises(PermissionError, match="keeps to loopback"):
                sock.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed, and never reached
            sock.connect((LOOPBACK, DEAD_PORT))
    finally:
        _GUARD.on = False
        refused, _GUARD.refused[:] = list(_GUARD.refused), []
    assert refused == ["socket.connect ('192.0.2.1', 9)"]
