"""Sign-in, sessions, CSRF, throttling, tokens, secrets and escaping."""

from __future__ import annotations

import logging
import re

import pytest

from tests.web.conftest import CAMERA_PASSWORD, PASSWORD, World
from vms.db import models as m


async def test_login_form_flow_and_logout(world: World) -> None:
    client = world.client
    resp = await client.get("/login?next=/cameras")
    page = await resp.text()
    token = re.search(r'name="login_csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    resp = await client.post("/login", data={"username": "viewer1", "password": PASSWORD,
                                             "login_csrf": token, "next": "/cameras"},
                             allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/cameras"
    cookie = resp.cookies["vms_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    resp = await client.get("/cameras")
    assert resp.status == 200 and "Gate A" in await resp.text()
    page = await (await client.get("/")).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    resp = await client.post("/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert resp.status == 302
    resp = await client.get("/cameras", allow_redirects=False)
    assert resp.status == 302


async def test_login_form_without_its_csrf_cookie_is_refused(world: World) -> None:
    resp = await world.client.post("/login", data={"username": "viewer1", "password": PASSWORD,
                                                   "login_csrf": "forged"}, allow_redirects=False)
    assert resp.status == 403


async def test_open_redirect_after_login_is_refused(world: World) -> None:
    resp = await world.client.get("/login?next=//evil.example/")
    assert 'name="next" value="/"' in await resp.text()


async def test_wrong_password_is_refused_and_audited(world: World) -> None:
    resp = await world.client.post("/api/v1/auth/login",
                                   json={"username": "viewer1", "password": "nope-nope-nope"})
    assert resp.status == 401
    assert (await resp.json())["error"]["message"] == "wrong username or password"
    resp = await world.client.post("/api/v1/auth/login",
                                   json={"username": "ghost", "password": "nope-nope-nope"})
    assert resp.status == 401
    await world.login("admin1")
    entries = (await (await world.client.get("/api/v1/audit?action=login")).json())["entries"]
    outcomes = [(e["username"], e["outcome"]) for e in entries]
    assert ("viewer1", "failed") in outcomes and ("ghost", "failed") in outcomes
    assert ("admin1", "ok") in outcomes


async def test_csrf_missing_or_invalid_is_refused(world: World) -> None:
    csrf = await world.login("admin1")
    body = {"name": "New Site", "timezone": "Asia/Almaty"}
    resp = await world.client.post("/api/v1/sites", json=body)
    assert resp.status == 403
    assert "CSRF" in (await resp.json())["error"]["message"]
    resp = await world.client.post("/api/v1/sites", json=body, headers={"X-CSRF-Token": "bad"})
    assert resp.status == 403
    resp = await world.client.post("/api/v1/sites", json=body, headers={"X-CSRF-Token": csrf})
    assert resp.status == 201
    # a form post carries it as a field
    resp = await world.client.post("/admin/users", data={"username": "x", "password": "p"})
    assert resp.status == 403


async def test_throttling_after_repeated_failures(world: World) -> None:
    for _ in range(5):
        resp = await world.client.post("/api/v1/auth/login",
                                       json={"username": "operator1", "password": "wrong-wrong"})
        assert resp.status == 401
    resp = await world.client.post("/api/v1/auth/login",
                                   json={"username": "operator1", "password": PASSWORD})
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0


async def test_session_ends_at_logout_and_password_change(world: World) -> None:
    csrf = await world.login("operator1")
    cookie = world.client.session.cookie_jar.filter_cookies(world.client.make_url("/"))
    token = cookie["vms_session"].value
    resp = await world.client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert resp.status == 200
    resp = await world.client.get("/api/v1/me", headers={"Cookie": f"vms_session={token}"})
    assert resp.status == 401

    csrf = await world.login("operator1")
    cookie = world.client.session.cookie_jar.filter_cookies(world.client.make_url("/"))
    old = cookie["vms_session"].value
    resp = await world.client.post("/api/v1/me/password", headers={"X-CSRF-Token": csrf},
                                   json={"current_password": PASSWORD,
                                         "new_password": "another-long-pass"})
    assert resp.status == 200
    world.client.session.cookie_jar.clear()
    resp = await world.client.get("/api/v1/me", headers={"Cookie": f"vms_session={old}"})
    assert resp.status == 401
    await world.login("operator1", "another-long-pass")


async def test_api_token_authenticates_without_csrf_and_is_stored_hashed(world: World) -> None:
    csrf = await world.login("operator1")
    resp = await world.client.post("/api/v1/tokens", json={"name": "ci"},
                                   headers={"X-CSRF-Token": csrf})
    token = (await resp.json())["token"]
    world.client.session.cookie_jar.clear()
    resp = await world.client.get("/api/v1/cameras", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200
    assert [c["name"] for c in (await resp.json())["cameras"]] == ["Gate A"]
    resp = await world.client.get("/api/v1/cameras", headers={"Authorization": "Bearer nope"})
    assert resp.status == 401
    from web.keys import GATEWAY

    stored = await world.app[GATEWAY].read(lambda: [t.token_hash for t in m.ApiToken.select()])
    assert token not in stored and len(stored[0]) == 64


async def test_camera_password_is_encrypted_and_never_shown(world: World, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    await world.login("admin1")
    seen = []
    for path in ("/api/v1/cameras", f"/api/v1/cameras/{world.camera_a}", "/cameras",
                 f"/cameras/{world.camera_a}", "/", "/api/v1/audit", "/admin/audit"):
        resp = await world.client.get(path)
        seen.append(await resp.text())
    from web.keys import GATEWAY

    stored = await world.app[GATEWAY].read(lambda: m.Camera.get_by_id(world.camera_a).password_enc)
    assert stored and CAMERA_PASSWORD not in stored
    assert all(CAMERA_PASSWORD not in text for text in seen)
    assert CAMERA_PASSWORD not in caplog.text


@pytest.mark.parametrize("evil", ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>'])
async def test_names_are_escaped_in_pages(world: World, evil: str) -> None:
    from web.keys import GATEWAY

    def rename() -> None:
        m.Camera.update(name=evil).where(m.Camera.id == world.camera_a).execute()
        m.Site.update(name="Site " + evil).where(m.Site.id == world.site_a).execute()

    await world.app[GATEWAY].write(rename)
    await world.login("admin1")
    for path in ("/", "/cameras", f"/cameras/{world.camera_a}"):
        text = await (await world.client.get(path)).text()
        assert evil not in text, path
        assert "&lt;" in text, path


async def test_security_headers(world: World) -> None:
    resp = await world.client.get("/login")
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["Cache-Control"] == "no-store"
