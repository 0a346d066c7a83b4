"""Administration of users and sites: grants, disabling, password reset, first run."""

from __future__ import annotations

import re

from tests.web.conftest import PASSWORD, World


async def test_grants_change_what_a_user_sees(world: World) -> None:
    csrf = await world.login("admin1")
    resp = await world.client.patch("/api/v1/users/viewer1", json={"sites": ["Site B"]},
                                    headers={"X-CSRF-Token": csrf})
    assert resp.status == 200
    assert (await resp.json())["changes"] == {"sites": ["Site B"]}
    await world.login("viewer1")
    cameras = (await (await world.client.get("/api/v1/cameras")).json())["cameras"]
    assert [c["name"] for c in cameras] == ["Gate B"]
    await world.login("admin1")
    entries = (await (await world.client.get("/api/v1/audit?action=user_change")).json())["entries"]
    assert entries[0]["target"] == "viewer1" and entries[0]["detail"] == {"sites": ["Site B"]}


async def test_disabling_a_user_ends_their_session(world: World) -> None:
    await world.login("operator1")
    cookie = world.client.session.cookie_jar.filter_cookies(world.client.make_url("/"))
    token = cookie["vms_session"].value
    csrf = await world.login("admin1")
    resp = await world.client.patch("/api/v1/users/operator1", json={"disabled": True},
                                    headers={"X-CSRF-Token": csrf})
    assert resp.status == 200
    world.client.session.cookie_jar.clear()
    resp = await world.client.get("/api/v1/me", headers={"Cookie": f"vms_session={token}"})
    assert resp.status == 401
    resp = await world.client.post("/api/v1/auth/login",
                                   json={"username": "operator1", "password": PASSWORD})
    assert resp.status == 401


async def test_admin_cannot_lock_themselves_out(world: World) -> None:
    csrf = await world.login("admin1")
    resp = await world.client.patch("/api/v1/users/admin1", json={"disabled": True},
                                    headers={"X-CSRF-Token": csrf})
    assert resp.status == 400


async def test_user_and_site_forms(world: World) -> None:
    await world.login("admin1")
    page = await (await world.client.get("/admin/users")).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    resp = await world.client.post("/admin/sites", data={"csrf_token": csrf, "name": "School 12",
                                                         "timezone": "Asia/Almaty"},
                                   allow_redirects=False)
    assert resp.status == 302
    resp = await world.client.post("/admin/sites", data={"csrf_token": csrf, "name": "Bad",
                                                         "timezone": "Mars/Olympus"})
    assert resp.status == 400 and "unknown time zone" in await resp.text()
    resp = await world.client.post("/admin/users", data={
        "csrf_token": csrf, "username": "teacher", "password": "long-enough-1", "role": "viewer",
        "sites": "School 12"}, allow_redirects=False)
    assert resp.status == 302
    resp = await world.client.post("/admin/users", data={
        "csrf_token": csrf, "username": "short", "password": "short", "role": "viewer"})
    assert resp.status == 400 and "password too short" in await resp.text()
    resp = await world.client.post("/admin/users/teacher", data={
        "csrf_token": csrf, "role": "operator", "sites": ["School 12", "Site A"],
        "password": "a-new-password"}, allow_redirects=False)
    assert resp.status == 302
    users = {u["username"]: u for u in
             (await (await world.client.get("/api/v1/users")).json())["users"]}
    assert users["teacher"]["role"] == "operator"
    assert users["teacher"]["sites"] == ["School 12", "Site A"]
    await world.login("teacher", "a-new-password")


async def test_login_page_explains_the_first_run(db_url: str, settings_factory,  # type: ignore[no-untyped-def]
                                                  aiohttp_client) -> None:
    from vms.app import create_app

    client = await aiohttp_client(create_app(settings_factory(db_url), start_recorder=False))
    text = await (await client.get("/login")).text()
    assert 'id="first-run"' in text and "vms user add admin --admin" in text
