"""API tokens: expiry, listing, revocation (API, page, CLI), death by password change, scopes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import PASSWORD, World
from vms.clock import US_PER_S, FakeClock
from vms.db import models as m
from web.keys import ACCOUNTS, GATEWAY


async def make_token(world: World, username: str, csrf: str, **body: Any) -> dict[str, Any]:
    """A token made through the API by the signed-in ``username``."""
    resp = await world.client.post("/api/v1/tokens", json={"name": "ci", **body},
                                   headers={"X-CSRF-Token": csrf})
    assert resp.status == 201, await resp.text()
    row = await resp.json()
    assert row["username"] == username and row["token"].startswith("vms_")
    return dict(row)


async def bearer(world: World, method: str, path: str, token: str, **kwargs: Any) -> Any:
    world.client.session.cookie_jar.clear()
    return await world.client.request(method, path, headers={"Authorization": f"Bearer {token}"},
                                      **kwargs)


async def test_token_expires(db_url: str, settings_factory, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    from vms.app import create_app

    clock = FakeClock(start_us=1_780_000_000 * US_PER_S)
    app = create_app(settings_factory(db_url), clock=clock, start_recorder=False)
    client = await aiohttp_client(app)
    accounts = app[ACCOUNTS]

    def seed() -> tuple[str, str]:
        accounts.create_user("op", PASSWORD, "operator")
        return (accounts.create_api_token("op", "short", expires_days=2),
                accounts.create_api_token("op", "default"))

    short, default = await app[GATEWAY].write(seed)
    rows = await app[GATEWAY].read(accounts.list_api_tokens, "op")
    assert {r["name"]: r["expires_us"] - r["created_us"] for r in rows} == {
        "short": 2 * 86_400 * US_PER_S, "default": 90 * 86_400 * US_PER_S}
    auth = {"Authorization": f"Bearer {short}"}
    assert (await client.get("/api/v1/me", headers=auth)).status == 200
    clock.advance(2 * 86_400 - 1)
    assert (await client.get("/api/v1/me", headers=auth)).status == 200
    clock.advance(1)
    resp = await client.get("/api/v1/me", headers=auth)
    assert resp.status == 401 and "expired" in (await resp.json())["error"]["message"]
    assert (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {default}"})).status == 200
    rows = await app[GATEWAY].read(accounts.list_api_tokens, "op")
    assert {r["name"]: r["state"] for r in rows} == {"short": "expired", "default": "active"}


async def test_tokens_are_listed_and_revoked(world: World) -> None:
    csrf = await world.login("operator1")
    first = await make_token(world, "operator1", csrf, scope="read", expires_days=7)
    second = await make_token(world, "operator1", csrf)
    assert second["scope"] == "control" and first["scope"] == "read"
    resp = await world.client.get("/api/v1/tokens")
    listed = (await resp.json())["tokens"]
    assert [t["id"] for t in listed] == [second["id"], first["id"]]
    assert all(t["state"] == "active" and "token" not in t for t in listed)
    text = json.dumps(listed)
    assert first["token"] not in text and second["token"] not in text

    # another user can neither see nor revoke them
    other = await world.login("viewer1")
    resp = await world.client.delete(f"/api/v1/tokens/{first['id']}",
                                      headers={"X-CSRF-Token": other})
    assert resp.status == 404
    assert (await (await world.client.get("/api/v1/tokens")).json())["tokens"] == []
    assert (await bearer(world, "GET", "/api/v1/me", first["token"])).status == 200

    # the owner revokes one: it stops working at once, the other goes on
    csrf = await world.login("operator1")
    resp = await world.client.delete(f"/api/v1/tokens/{first['id']}",
                                      headers={"X-CSRF-Token": csrf})
    assert resp.status == 200 and (await resp.json())["state"] == "revoked"
    resp = await bearer(world, "GET", "/api/v1/me", first["token"])
    assert resp.status == 401
    assert (await bearer(world, "GET", "/api/v1/me", second["token"])).status == 200

    # a user manager sees and revokes anyone's
    admin = await world.login("admin1")
    resp = await world.client.get("/api/v1/users/operator1/tokens")
    assert {t["id"]: t["state"] for t in (await resp.json())["tokens"]} == {
        first["id"]: "revoked", second["id"]: "active"}
    assert (await world.client.get("/api/v1/users/nobody/tokens")).status == 404
    resp = await world.client.delete(f"/api/v1/tokens/{second['id']}",
                                      headers={"X-CSRF-Token": admin})
    assert resp.status == 200
    assert (await bearer(world, "GET", "/api/v1/me", second["token"])).status == 401
    await world.login("admin1")
    entries = (await (await world.client.get("/api/v1/audit?action=token_revoke")).json())
    assert [e["username"] for e in entries["entries"]] == ["admin1", "operator1"]


@pytest.mark.parametrize("changed_by", ["self", "admin"])
async def test_a_password_change_revokes_every_token(world: World, changed_by: str) -> None:
    csrf = await world.login("operator1")
    tokens = [await make_token(world, "operator1", csrf, scope=scope)
              for scope in ("read", "admin")]
    if changed_by == "self":
        resp = await world.client.post("/api/v1/me/password", headers={"X-CSRF-Token": csrf},
                                       json={"current_password": PASSWORD,
                                             "new_password": "another-long-pass"})
        assert resp.status == 200 and (await resp.json())["tokens_revoked"] == 2
    else:
        admin = await world.login("admin1")
        resp = await world.client.patch("/api/v1/users/operator1",
                                        headers={"X-CSRF-Token": admin},
                                        json={"password": "another-long-pass"})
        assert resp.status == 200 and (await resp.json())["changes"]["tokens_revoked"] == 2
    for token in tokens:
        assert (await bearer(world, "GET", "/api/v1/me", token["token"])).status == 401
    # tokens made after the change work
    csrf = await world.login("operator1", "another-long-pass")
    fresh = await make_token(world, "operator1", csrf)
    assert (await bearer(world, "GET", "/api/v1/me", fresh["token"])).status == 200


async def test_scopes_limit_what_a_token_may_do(world: World) -> None:
    csrf = await world.login("admin1")
    read, control, admin = [(await make_token(world, "admin1", csrf, scope=s))["token"]
                            for s in ("read", "control", "admin")]
    change = {"current_password": PASSWORD, "new_password": "another-long-pass"}
    hold = {"from": 1_780_000_000_000_000, "to": 1_780_000_060_000_000, "reason": "incident"}
    holds = f"/api/v1/cameras/{world.camera_a}/holds"

    # read: reads only
    assert (await bearer(world, "GET", "/api/v1/cameras", read)).status == 200
    me = await (await bearer(world, "GET", "/api/v1/me", read)).json()
    assert me["token_scope"] == "read" and me["role"] == "admin"
    resp = await bearer(world, "POST", holds, read, json=hold)
    assert resp.status == 403
    assert "scope (read)" in (await resp.json())["error"]["message"]

    # control: acts, but changes no account, password or token
    resp = await bearer(world, "POST", holds, control, json=hold)
    assert resp.status not in (401, 403), await resp.text()
    for method, path, body in (
            ("POST", "/api/v1/me/password", change),
            ("POST", "/api/v1/tokens", {"name": "escalate", "scope": "admin"}),
            ("POST", "/api/v1/users", {"username": "mallory", "password": "long-enough-pw",
                                       "role": "admin"}),
            ("PATCH", "/api/v1/users/viewer1", {"password": "long-enough-pw"}),
            ("POST", "/api/v1/users/viewer1/grants", {"site": "Site B"}),
            ("POST", "/api/v1/sites", {"name": "Rogue"}),
            ("DELETE", "/api/v1/tokens/1", None)):
        resp = await bearer(world, method, path, control, json=body)
        assert resp.status == 403, (method, path, resp.status)
    users = await world.app[GATEWAY].read(lambda: [u.username for u in m.User.select()])
    assert "mallory" not in users

    # admin: may change the password, which revokes every token, itself included
    resp = await bearer(world, "POST", "/api/v1/me/password", admin, json=change)
    assert resp.status == 200 and (await resp.json())["tokens_revoked"] == 3
    for token in (read, control, admin):
        assert (await bearer(world, "GET", "/api/v1/me", token)).status == 401


async def test_account_page_creates_shows_once_and_revokes(world: World) -> None:
    await world.login("viewer1")
    page = await (await world.client.get("/account")).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert 'id="token-table"' in page and "No API tokens yet." in page
    resp = await world.client.post("/account/tokens", data={
        "csrf_token": csrf, "name": "door panel", "scope": "read", "expires_days": "30"})
    assert resp.status == 201
    page = await resp.text()
    token = re.search(r"<code>(vms_[^<]+)</code>", page).group(1)  # type: ignore[union-attr]
    assert "door panel" in page
    page = await (await world.client.get("/account")).text()
    assert token not in page and "door panel" in page  # shown once
    rows = await world.app[GATEWAY].read(world.app[ACCOUNTS].list_api_tokens, "viewer1")
    assert [(r["name"], r["scope"], r["state"]) for r in rows] == [("door panel", "read", "active")]
    assert rows[0]["expires_us"] - rows[0]["created_us"] == 30 * 86_400 * US_PER_S

    # a bad expiry is refused with the reason, on the page
    resp = await world.client.post("/account/tokens", data={
        "csrf_token": csrf, "name": "x", "scope": "read", "expires_days": "0"})
    assert resp.status == 400 and "expires_days" in await resp.text()

    resp = await world.client.post(f"/account/tokens/{rows[0]['id']}/revoke",
                                   data={"csrf_token": csrf}, allow_redirects=False)
    assert resp.status == 302
    assert (await bearer(world, "GET", "/api/v1/me", token)).status == 401

    # the users page shows an admin each user's active tokens, with a revoke button
    csrf_v = await world.login("viewer1")
    kept = await make_token(world, "viewer1", csrf_v)
    await world.login("admin1")
    page = await (await world.client.get("/admin/users")).text()
    assert f'action="/admin/tokens/{kept["id"]}/revoke"' in page
    assert f'action="/admin/tokens/{rows[0]["id"]}/revoke"' not in page  # revoked: not listed
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    resp = await world.client.post(f"/admin/tokens/{kept['id']}/revoke",
                                   data={"csrf_token": csrf}, allow_redirects=False)
    assert resp.status == 302
    assert (await bearer(world, "GET", "/api/v1/me", kept["token"])).status == 401


def test_cli_token_add_list_revoke_and_passwd(db_url: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from vms.auth import Accounts
    from vms.cli import main
    from vms.clock import SystemClock
    from vms.db.gateway import Gateway

    config = tmp_path / "vms.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[database]\nurl = "{db_url}"\n')
    gateway = Gateway(db_url)
    gateway.migrate()
    accounts = Accounts(SystemClock())
    try:
        gateway.write_sync(accounts.create_user, "op", PASSWORD, "operator")

        def cli(*args: str) -> Any:
            capsys.readouterr()
            assert main([*args, "--config", str(config), "--json"]) == 0
            out = capsys.readouterr().out
            return [json.loads(line) for line in out.splitlines()]

        made = cli("user", "token", "add", "op", "nightly export", "--scope", "read",
                   "--expires-days", "7")[0]
        assert made["scope"] == "read" and made["expires_us"] - made["created_us"] == \
            7 * 86_400 * US_PER_S
        assert gateway.read_sync(accounts.token_principal, made["token"]) is not None
        other = cli("user", "token", "add", "op", "wall display")[0]
        assert other["scope"] == "control"
        assert [r["name"] for r in cli("user", "token", "list", "op")] == [
            "wall display", "nightly export"]
        revoked = cli("user", "token", "revoke", str(made["id"]))[0]
        assert revoked["state"] == "revoked"
        assert gateway.read_sync(accounts.token_principal, made["token"]) is None
        assert [r["name"] for r in cli("user", "token", "list")] == ["wall display"]
        assert {r["name"]: r["state"] for r in cli("user", "token", "list", "--all")} == {
            "wall display": "active", "nightly export": "revoked"}

        # a password change from the command line revokes the rest
        capsys.readouterr()
        assert main(["user", "passwd", "op", "--password", "another-long-pass",
                     "--config", str(config)]) == 0
        assert "1 API token(s) were revoked" in capsys.readouterr().out
        assert gateway.read_sync(accounts.token_principal, other["token"]) is None

        assert main(["user", "token", "revoke", "999999", "--config", str(config)]) == 2
        assert "no API token 999999" in capsys.readouterr().err
    finally:
        gateway.close()
