"""Behind a reverse proxy (``server.trusted_proxies``): login throttling, the audit log, session
addresses and the cookie's ``Secure`` flag use the real client from ``X-Forwarded-For`` and
``X-Forwarded-Proto`` — and those headers are ignored from any peer that is not a listed proxy.

The test server listens on 127.0.0.1 and the test client connects from 127.0.0.1: configuring
127.0.0.1/32 as a trusted proxy makes the client play the proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import PASSWORD
from vms.config import ConfigError, load_settings
from vms.db import models as m
from web.forwarded import forwarded_client, forwarded_scheme, parse_address

Proxied = Callable[[list[str]], Awaitable[Any]]
# which peer is believed is decided in the web layer; the audit rows it writes are tested on both
# engines in test_admin.py
pytestmark = pytest.mark.engines("sqlite")


@pytest.fixture
def proxied(db_url: str, settings_factory: Any, aiohttp_client: Any) -> Proxied:
    """A server with ``server.trusted_proxies`` set, and one viewer; returns its test client."""

    async def make(trusted: list[str]) -> Any:
        from vms.app import create_app
        from web.keys import ACCOUNTS, GATEWAY

        app = create_app(settings_factory(db_url, **{"server.trusted_proxies": trusted}),
                         start_recorder=False)
        client = await aiohttp_client(app)

        def seed() -> None:
            site = app[ACCOUNTS].create_site("Site A", "UTC")
            app[ACCOUNTS].create_user("viewer1", PASSWORD, "viewer", [site.name])

        await app[GATEWAY].write(seed)
        return client

    return make


async def _login(client: Any, username: str, password: str, **headers: str) -> Any:
    return await client.post("/api/v1/auth/login", json={"username": username,
                                                         "password": password},
                             headers=headers)


def _session_cookie(resp: Any) -> str:
    lines = [c for c in resp.headers.getall("Set-Cookie", []) if c.startswith("vms_session=")]
    assert len(lines) == 1, lines
    return str(lines[0])


async def _rows(client: Any, query: Callable[[], list[Any]]) -> list[Any]:
    from web.keys import GATEWAY

    return list(await client.app[GATEWAY].read(query))


def _login_addresses() -> list[tuple[str, str, str]]:
    return [(r.username, r.address, r.outcome)
            for r in m.AuditLog.select().where(m.AuditLog.action == "login").order_by(m.AuditLog.id)]


def _session_addresses() -> list[str]:
    return [s.address for s in m.Session.select().order_by(m.Session.id)]


FORGED = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}


async def test_behind_a_trusted_proxy_the_real_client_is_used(proxied: Proxied) -> None:
    client = await proxied(["127.0.0.1/32"])
    resp = await _login(client, "viewer1", PASSWORD, **{
        "X-Forwarded-For": "198.51.100.1, 203.0.113.7", "X-Forwarded-Proto": "https"})
    assert resp.status == 200, await resp.text()
    assert "Secure" in _session_cookie(resp)  # https at the proxy: the cookie is Secure
    assert await _rows(client, _login_addresses) == [("viewer1", "203.0.113.7", "ok")]
    assert await _rows(client, _session_addresses) == ["203.0.113.7"]

    # plain http at the proxy: no Secure flag
    client.session.cookie_jar.clear()
    resp = await _login(client, "viewer1", PASSWORD, **{"X-Forwarded-For": "203.0.113.8",
                                                        "X-Forwarded-Proto": "http"})
    assert resp.status == 200 and "Secure" not in _session_cookie(resp)


async def test_throttling_counts_per_real_client_behind_a_trusted_proxy(proxied: Proxied) -> None:
    """One client guessing passwords is throttled; another client behind the same proxy is not
    (before, every request seemed to come from the proxy: all were locked out together)."""
    client = await proxied(["127.0.0.1/32"])
    guesser = {"X-Forwarded-For": "203.0.113.66"}
    statuses = []
    for i in range(30):
        resp = await _login(client, f"nobody{i}", "wrong-guess", **guesser)
        statuses.append(resp.status)
        if resp.status == 429:
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {401}, statuses
    resp = await _login(client, "viewer1", PASSWORD, **{"X-Forwarded-For": "203.0.113.77"})
    assert resp.status == 200, await resp.text()
    audit = await _rows(client, _login_addresses)
    assert {a for _u, a, _o in audit} == {"203.0.113.66", "203.0.113.77"}, audit


async def test_a_chain_of_trusted_proxies_is_walked_to_the_first_untrusted_hop(
        proxied: Proxied) -> None:
    client = await proxied(["127.0.0.1/32", "10.0.0.0/8"])
    resp = await _login(client, "viewer1", PASSWORD, **{
        "X-Forwarded-For": "6.6.6.6, 203.0.113.9, 10.1.2.3"})  # 6.6.6.6: forged by the client
    assert resp.status == 200
    assert await _rows(client, _session_addresses) == ["203.0.113.9"]


@pytest.mark.parametrize("trusted", [[], ["10.0.0.0/8", "::1/128"]])
async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(proxied: Proxied,
                                                                    trusted: list[str]) -> None:
    client = await proxied(trusted)
    resp = await _login(client, "viewer1", PASSWORD, **FORGED)
    assert resp.status == 200
    assert "Secure" not in _session_cookie(resp)
    assert await _rows(client, _session_addresses) == ["127.0.0.1"]
    if not trusted:
        return  # no middleware at all; the throttling below is the same code either way
    # a forged address does not escape throttling either
    statuses = []
    for i in range(30):
        resp = await _login(client, f"nobody{i}", "wrong", **{"X-Forwarded-For": f"198.51.100.{i}"})
        statuses.append(resp.status)
        if resp.status == 429:
            break
    assert statuses[-1] == 429, statuses
    assert {a for _u, a, _o in await _rows(client, _login_addresses)} == {"127.0.0.1"}


NETS = [ipaddress.ip_network(n) for n in ("127.0.0.0/8", "10.0.0.0/8", "fd00::/8")]


@pytest.mark.parametrize(("headers", "client"), [
    (["203.0.113.7"], "203.0.113.7"),
    (["1.1.1.1, 203.0.113.7"], "203.0.113.7"),
    (["1.1.1.1", "203.0.113.7, 10.0.0.2"], "203.0.113.7"),  # two header lines, in order
    (["10.0.0.3, 10.0.0.2"], "10.0.0.3"),  # all trusted: the farthest one
    (["garbage, 10.0.0.2"], "10.0.0.2"),  # not an address: stop at the last good hop
    (["[2001:db8::1]:4711, fd00::5"], "2001:db8::1"),
    (["203.0.113.7:5555"], "203.0.113.7"),
    (["::ffff:203.0.113.7"], "203.0.113.7"),
    ([""], None), ([], None), (["unknown"], None),
])
def test_forwarded_client(headers: list[str], client: str | None) -> None:
    assert forwarded_client(headers, NETS) == client


def test_forwarded_scheme_and_addresses() -> None:
    assert forwarded_scheme(["https"]) == "https"
    assert forwarded_scheme(["http, HTTPS"]) == "https"
    assert forwarded_scheme(["gopher"]) is None and forwarded_scheme([]) is None
    assert parse_address("::ffff:127.0.0.1") == ipaddress.ip_address("127.0.0.1")
    assert parse_address("nginx") is None


def test_trusted_proxies_setting(tmp_path: Path) -> None:
    config = tmp_path / "vms.toml"
    config.write_text('[server]\ntrusted_proxies = ["127.0.0.1", "10.0.0.0/8", "fd00::/8"]\n')
    assert load_settings(config, env={}).server.trusted_proxies == (
        "127.0.0.1/32", "10.0.0.0/8", "fd00::/8")
    env = {"VMS_SERVER_TRUSTED_PROXIES": "192.168.1.0/24, 127.0.0.1"}
    assert load_settings(None, env=env).server.trusted_proxies == ("192.168.1.0/24", "127.0.0.1/32")
    assert load_settings(None, env={}).server.trusted_proxies == ()
    for bad, expected in (('"10.0.0.0/8"', "expected a list of strings"),
                          ('["nginx"]', "'nginx' is not an IP address or CIDR")):
        config.write_text(f"[server]\ntrusted_proxies = {bad}\n")
        with pytest.raises(ConfigError, match="server.trusted_proxies") as err:
            load_settings(config, env={})
        assert expected in str(err.value) and str(config) in str(err.value)
