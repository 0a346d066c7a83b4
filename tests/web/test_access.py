"""Every route, every role, and a user of another site: the expected allow or deny.

The table below is written by hand on purpose: adding a route without deciding (here) who may call
it makes this test fail.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.web.conftest import World
from vms.auth import ROLE_RIGHTS

# (method, path) -> access: public | login | a right
EXPECTED: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "public",
    ("GET", "/manifest.webmanifest"): "public",
    ("GET", "/metrics"): "public",
    ("GET", "/api/v1/openapi.json"): "public",
    ("POST", "/api/v1/exports"): "export",
    ("GET", "/api/v1/exports"): "export",
    ("GET", "/api/v1/exports/{id}"): "export",
    ("POST", "/api/v1/exports/{id}/cancel"): "export",
    ("GET", "/api/v1/exports/{id}/file"): "export",
    ("GET", "/api/v1/exports/{id}/manifest"): "export",
    ("GET", "/api/v1/exports/signing-key"): "export",
    ("GET", "/exports"): "export",
    ("GET", "/"): "login",
    ("GET", "/login"): "public",
    ("POST", "/login"): "public",
    ("POST", "/logout"): "login",
    ("POST", "/language"): "public",
    ("POST", "/api/v1/auth/login"): "public",
    ("POST", "/api/v1/auth/logout"): "login",
    ("GET", "/api/v1/me"): "login",
    ("GET", "/api/v1/sites"): "login",
    ("GET", "/api/v1/cameras"): "live",
    ("GET", "/api/v1/cameras/{id}"): "live",
    ("GET", "/cameras"): "live",
    ("GET", "/cameras/{id}"): "live",
    ("GET", "/api/v1/users"): "manage_users",
    ("POST", "/api/v1/users"): "manage_users",
    ("POST", "/api/v1/users/{username}/grants"): "manage_users",
    ("POST", "/api/v1/sites"): "manage_users",
    ("POST", "/api/v1/me/password"): "login",
    ("GET", "/api/v1/tokens"): "login",
    ("POST", "/api/v1/tokens"): "login",
    ("DELETE", "/api/v1/tokens/{token_id}"): "login",
    ("GET", "/api/v1/users/{username}/tokens"): "manage_users",
    ("GET", "/account"): "login",
    ("POST", "/account/tokens"): "login",
    ("POST", "/account/tokens/{token_id}/revoke"): "login",
    ("POST", "/account/password"): "login",
    ("POST", "/admin/tokens/{token_id}/revoke"): "manage_users",
    ("GET", "/api/v1/audit"): "audit",
    ("GET", "/admin/audit"): "audit",
    ("GET", "/admin/nodes"): "manage_users",
    ("GET", "/api/v1/nodes"): "manage_users",
    ("GET", "/admin/users"): "manage_users",
    ("POST", "/admin/users"): "manage_users",
    ("POST", "/admin/users/{username}"): "manage_users",
    ("POST", "/admin/sites"): "manage_users",
    ("PATCH", "/api/v1/users/{username}"): "manage_users",
    ("GET", "/discovery"): "manage_cameras",
    ("POST", "/api/v1/discovery"): "manage_cameras",
    ("GET", "/api/v1/discovery/{id}"): "manage_cameras",
    ("GET", "/api/v1/discovery/{id}/snapshot"): "manage_cameras",
    ("POST", "/api/v1/discovery/{id}/adopt"): "manage_cameras",
    ("POST", "/api/v1/cameras"): "manage_cameras",
    ("POST", "/api/v1/cameras/bulk"): "manage_cameras",
    ("POST", "/api/v1/cameras/{id}/configure"): "manage_cameras",
    ("POST", "/api/v1/cameras/{id}/check-config"): "manage_cameras",
    ("POST", "/api/v1/cameras/{id}/clock"): "manage_cameras",
    ("DELETE", "/api/v1/cameras/{id}"): "manage_cameras",
    ("PATCH", "/api/v1/cameras/{id}"): "manage_cameras",
    ("GET", "/api/v1/cameras/{id}/events/soap-log"): "manage_cameras",
    ("PUT", "/api/v1/cameras/{id}/events/soap-log"): "manage_cameras",
    ("GET", "/api/v1/cameras/{id}/snapshot"): "live",
    ("GET", "/api/v1/cameras/{id}/recording"): "live",
    ("GET", "/cameras/{id}/recording"): "live",
    ("GET", "/api/v1/cameras/{id}/recording-settings"): "live",
    ("PUT", "/api/v1/cameras/{id}/recording-settings"): "manage_cameras",
    ("POST", "/cameras/{id}/recording-settings"): "manage_cameras",
    ("GET", "/api/v1/cameras/{id}/retention"): "live",
    ("PUT", "/api/v1/cameras/{id}/retention"): "manage_cameras",
    ("GET", "/api/v1/sites/{id}/retention"): "live",
    ("PUT", "/api/v1/sites/{id}/retention"): "manage_cameras",
    ("GET", "/api/v1/cameras/{id}/live"): "live",
    ("GET", "/api/v1/cameras/{id}/listen"): "live",
    ("GET", "/api/v1/cameras/{id}/talk"): "door",
    ("GET", "/cameras/{id}/live"): "live",
    ("GET", "/live"): "live",
    ("GET", "/api/v1/cameras/{id}/timeline"): "playback",
    ("GET", "/api/v1/timeline"): "playback",
    ("GET", "/api/v1/cameras/{id}/playlist.m3u8"): "playback",
    ("GET", "/api/v1/cameras/{id}/media/{segment_id}"): "playback",
    ("GET", "/api/v1/cameras/{id}/snapshot.jpg"): "playback",
    ("GET", "/api/v1/cameras/{id}/thumbnail.jpg"): "playback",
    ("GET", "/cameras/{id}/playback"): "playback",
    ("GET", "/playback"): "playback",
    ("GET", "/api/v1/cameras/{id}/holds"): "playback",
    ("GET", "/api/v1/storage"): "playback",
    ("GET", "/api/v1/storage/history"): "manage_cameras",
    ("GET", "/storage"): "playback",
    ("GET", "/api/v1/events"): "playback",
    ("GET", "/api/v1/events/stream"): "playback",
    ("GET", "/events"): "playback",
    ("GET", "/api/v1/cameras/{id}/events/settings"): "playback",
    ("PUT", "/api/v1/cameras/{id}/events/settings"): "manage_cameras",
    ("POST", "/cameras/{id}/events/settings"): "manage_cameras",
    ("POST", "/api/v1/cameras/{id}/holds"): "export",
    ("DELETE", "/api/v1/cameras/{id}/holds/{hold_id}"): "export",
    **{(method, "/api/v1/cameras/{id}/ptz" + tail): "ptz" for method, tail in (
        ("GET", ""), ("POST", "/capabilities"), ("GET", "/status"), ("POST", "/move"),
        ("POST", "/stop"), ("POST", "/relative"), ("POST", "/absolute"), ("GET", "/presets"),
        ("POST", "/presets"), ("PUT", "/presets/{token}"), ("DELETE", "/presets/{token}"),
        ("POST", "/presets/{token}/goto"), ("POST", "/home"), ("PUT", "/home"), ("GET", "/ws"))},
    ("GET", "/api/v1/cameras/{id}/relays"): "live",
    ("POST", "/api/v1/cameras/{id}/relays/refresh"): "manage_cameras",
    ("POST", "/api/v1/cameras/{id}/relays/{token}/pulse"): "door",
    ("GET", "/api/v1/rings"): "door",
    ("POST", "/api/v1/rings/{id}/answer"): "door",
    ("GET", "/api/v1/calls/missed"): "door",
    ("GET", "/calls"): "door",
    ("GET", "/api/v1/layouts"): "live",
    ("POST", "/api/v1/layouts"): "live",
    ("GET", "/api/v1/layouts/{id}"): "live",
    ("PUT", "/api/v1/layouts/{id}"): "live",
    ("DELETE", "/api/v1/layouts/{id}"): "live",
}

CAMERA_SCOPED = {path for (_m, path) in EXPECTED if "/cameras/{id}" in path}


def app_routes(world: World) -> set[tuple[str, str]]:
    found = set()
    for route in world.app.router.routes():
        resource = route.resource
        if resource is None or route.method == "HEAD" or resource.canonical.startswith("/static"):
            continue
        found.add((route.method, resource.canonical))
    return found


async def test_every_route_is_in_the_table(world: World) -> None:
    routes = app_routes(world)
    missing = routes - set(EXPECTED)
    assert not missing, f"routes without an expected access in this test: {sorted(missing)}"
    stale = set(EXPECTED) - routes
    assert not stale, f"table names routes that no longer exist: {sorted(stale)}"
    from web.keys import RULES

    for key, access in EXPECTED.items():
        assert world.app[RULES][key].access == access, key


async def session_for(world: World, username: str) -> tuple[str, str]:
    from vms.db import models as m
    from web.keys import ACCOUNTS, GATEWAY

    accounts = world.app[ACCOUNTS]

    def open_session() -> tuple[str, str]:
        user = m.User.get(m.User.username == username)
        return accounts.open_session(user, "127.0.0.1")

    return await world.app[GATEWAY].write(open_session)


def fill(path: str, world: World, camera_id: int) -> str:
    """A concrete URL: the camera (of site A), user viewer1, and 1 for any other parameter."""
    path = path.replace("{id}", str(camera_id)).replace("{username}", "viewer1")
    return re.sub(r"{[^}]+}", "1", path)


async def call(world: World, method: str, path: str, cookie: str | None, csrf: str | None) -> Any:
    headers = {}
    if cookie:
        headers["Cookie"] = f"vms_session={cookie}"
    if csrf:
        headers["X-CSRF-Token"] = csrf
    world.client.session.cookie_jar.clear()
    if method == "GET":
        return await world.client.get(path, headers=headers, allow_redirects=False)
    return await world.client.request(method, path, headers=headers, json={},
                                      allow_redirects=False)


# the sign-in form needs its own pre-session CSRF cookie: covered in test_auth.py
SEPARATELY_TESTED = {("POST", "/login")}


@pytest.mark.parametrize("username", ["anonymous", "admin1", "installer1", "operator1", "viewer1",
                                      "viewer_b"])
async def test_roles_get_exactly_their_rights(world: World, username: str) -> None:
    role = world.users.get(username)
    rights = ROLE_RIGHTS[role] if role else frozenset()
    for (method, path), access in sorted(EXPECTED.items()):
        if (method, path) in SEPARATELY_TESTED:
            continue
        cookie = csrf = None
        if role:
            cookie, csrf = await session_for(world, username)
        resp = await call(world, method, fill(path, world, world.camera_a), cookie, csrf)
        allowed = access == "public" or (role is not None and (access == "login" or
                                                                access in rights))
        where = f"{username} {method} {path} -> {resp.status}"
        if allowed:
            if username == "viewer_b" and path in CAMERA_SCOPED:
                assert resp.status == 404, where  # another site's camera does not exist for them
            else:
                assert resp.status not in (401, 403), where
                assert resp.status < 500, where
        elif role is None:
            if path.startswith("/api/"):
                assert resp.status == 401, where
            else:
                assert resp.status == 302 and resp.headers["Location"].startswith("/login"), where
        else:
            assert resp.status == 403, where


async def test_other_sites_cameras_are_invisible(world: World) -> None:
    await world.login("viewer_b")
    resp = await world.client.get("/api/v1/cameras")
    names = [c["name"] for c in (await resp.json())["cameras"]]
    assert names == ["Gate B"]
    for path in ("/api/v1/cameras/{id}", "/cameras/{id}"):
        resp = await world.client.get(fill(path, world, world.camera_a))
        assert resp.status == 404
        resp = await world.client.get(fill(path, world, world.camera_b))
        assert resp.status == 200
    resp = await world.client.get("/api/v1/cameras", params={"site_id": str(world.site_a)})
    assert (await resp.json())["cameras"] == []
    resp = await world.client.get("/api/v1/sites")
    assert [s["name"] for s in (await resp.json())["sites"]] == ["Site B"]
    resp = await world.client.get("/", headers={"Accept-Language": "en"})
    text = await resp.text()
    assert "Gate B" in text and "Gate A" not in text and "Site A" not in text


# State-changing routes an API token may call only with the scope "admin" (accounts, passwords,
# tokens); every other state change needs "control", every GET "read". Written by hand, like
# EXPECTED, so that a new route that changes credentials must be decided here.
ADMIN_SCOPE = {
    ("POST", "/api/v1/users"), ("PATCH", "/api/v1/users/{username}"),
    ("POST", "/api/v1/users/{username}/grants"), ("POST", "/api/v1/sites"),
    ("POST", "/api/v1/me/password"), ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{token_id}"),
    ("POST", "/admin/users"), ("POST", "/admin/users/{username}"), ("POST", "/admin/sites"),
    ("POST", "/admin/tokens/{token_id}/revoke"),
    ("POST", "/account/tokens"), ("POST", "/account/tokens/{token_id}/revoke"),
    ("POST", "/account/password"),
}


# GETs that act: the PTZ control WebSocket moves cameras, talk-back speaks through them, so they
# need "control".
CONTROL_GETS = {("GET", "/api/v1/cameras/{id}/ptz/ws"), ("GET", "/api/v1/cameras/{id}/talk")}


def expected_scope(method: str, path: str) -> str:
    if (method, path) in CONTROL_GETS:
        return "control"
    if method == "GET":
        return "read"
    return "admin" if (method, path) in ADMIN_SCOPE else "control"


async def test_token_scopes_on_every_route(world: World) -> None:
    """An administrator's token of each scope, on every route: refused (403, naming the scope)
    exactly when the route needs more."""
    from vms.auth import TOKEN_SCOPES, scope_allows
    from web.keys import ACCOUNTS, GATEWAY, RULES

    for (method, path), rule in world.app[RULES].items():
        if method != "HEAD" and rule.access != "public":
            assert rule.scope == expected_scope(method, path), (method, path)
    accounts = world.app[ACCOUNTS]
    tokens = {scope: await world.app[GATEWAY].write(accounts.create_api_token, "admin1", scope,
                                                    scope=scope) for scope in TOKEN_SCOPES}
    for scope, token in tokens.items():
        for (method, path), access in sorted(EXPECTED.items()):
            if access == "public":
                continue
            url = fill(path.replace("{token_id}", "999999"), world, world.camera_a)
            world.client.session.cookie_jar.clear()
            resp = await world.client.request(method, url, json={}, allow_redirects=False,
                                              headers={"Authorization": f"Bearer {token}"})
            where = f"{scope} token: {method} {path} -> {resp.status}"
            if scope_allows(scope, expected_scope(method, path)):
                assert resp.status not in (401, 403) and resp.status < 500, where
            else:
                assert resp.status == 403, where
                if path.startswith("/api/"):
                    assert f"scope ({scope})" in (await resp.json())["error"]["message"], where
