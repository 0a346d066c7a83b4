"""Saved live layouts: the JSON API (create, list, read, replace, delete), each user's own, and the
site rules — a layout is never saved with, nor shows, a camera its user may not see."""

from __future__ import annotations

from typing import Any

from tests.live.conftest import USER_PASSWORD, LiveWorld


async def _json(resp: Any, status: int) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json() if status != 204 else None


async def login(world: LiveWorld, username: str) -> str:
    """Sign in; the CSRF token of the session."""
    world.client.session.cookie_jar.clear()
    resp = await world.client.post("/api/v1/auth/login",
                                   json={"username": username, "password": USER_PASSWORD})
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["csrf_token"])


async def test_layouts_crud_and_site_rules(live_world: LiveWorld) -> None:
    client, ids = live_world.client, live_world.ids
    cam1, cam_b = ids["camera_1"], ids["camera_2"]  # camera_2 is Site B's
    headers = {"X-CSRF-Token": await login(live_world, "viewer_a")}

    async def call(method: str, path: str, status: int, body: Any = None) -> Any:
        resp = await client.request(method, path, json=body, headers=headers)
        return await _json(resp, status)

    assert await call("GET", "/api/v1/layouts", 200) == {"layouts": []}
    made = await call("POST", "/api/v1/layouts", 201,
                      {"name": "Gate", "grid": 2, "camera_ids": [None, cam1]})
    assert made["name"] == "Gate" and made["grid"] == 2
    assert made["camera_ids"] == [None, cam1, None, None]  # padded to the grid's 4 tiles
    lid = made["id"]
    assert (await call("GET", f"/api/v1/layouts/{lid}", 200))["camera_ids"] == made["camera_ids"]

    # another site's camera is "not found", as on every camera route; nothing is saved
    await call("POST", "/api/v1/layouts", 404, {"name": "Peek", "grid": 1, "camera_ids": [cam_b]})
    await call("PUT", f"/api/v1/layouts/{lid}", 404,
               {"name": "Gate", "grid": 2, "camera_ids": [cam_b]})
    await call("POST", "/api/v1/layouts", 409, {"name": "Gate", "grid": 1, "camera_ids": []})
    await call("POST", "/api/v1/layouts", 400, {"name": "Big", "grid": 5, "camera_ids": []})
    await call("POST", "/api/v1/layouts", 400,
               {"name": "Many", "grid": 1, "camera_ids": [cam1, cam1]})
    assert [lay["name"] for lay in (await call("GET", "/api/v1/layouts", 200))["layouts"]] \
        == ["Gate"]

    changed = await call("PUT", f"/api/v1/layouts/{lid}", 200,
                         {"name": "Gate 1x1", "grid": 1, "camera_ids": [cam1]})
    assert changed["camera_ids"] == [cam1] and changed["name"] == "Gate 1x1"

    # the grid page shows the layout: its grid, its camera, a full-screen control
    page = await client.get(f"/live?layout_id={lid}")
    html = await page.text()
    assert page.status == 200
    assert "live-grid-1" in html and f"/api/v1/cameras/{cam1}/live?stream=sub" in html
    assert 'data-fullscreen="#live-grid"' in html

    # another user sees neither the layout nor that it exists
    headers["X-CSRF-Token"] = await login(live_world, "viewer_b")
    assert await call("GET", "/api/v1/layouts", 200) == {"layouts": []}
    await call("GET", f"/api/v1/layouts/{lid}", 404)
    await call("PUT", f"/api/v1/layouts/{lid}", 404, {"name": "x", "grid": 1, "camera_ids": []})
    await call("DELETE", f"/api/v1/layouts/{lid}", 404)
    assert (await client.get(f"/live?layout_id={lid}")).status == 404

    # the camera moves to Site B: viewer_a's layout keeps the tile but shows it empty
    from vms.db import models as m
    from web.keys import GATEWAY

    def move() -> None:
        m.Camera.update(site=ids["site_b"]).where(m.Camera.id == cam1).execute()

    await live_world.app[GATEWAY].write(move)
    headers["X-CSRF-Token"] = await login(live_world, "viewer_a")
    assert (await call("GET", f"/api/v1/layouts/{lid}", 200))["camera_ids"] == [None]
    html = await (await client.get(f"/live?layout_id={lid}")).text()
    assert f"/api/v1/cameras/{cam1}/" not in html and "Cam 1" not in html

    await call("DELETE", f"/api/v1/layouts/{lid}", 204)
    await call("GET", f"/api/v1/layouts/{lid}", 404)


def test_layout_store_on_both_engines(db_url: str) -> None:
    """vms/layouts.py on SQLite and PostgreSQL: unique names per user (not across users), the JSON
    tiles, scope on read, the per-user limit, and a user's layouts going with the user."""
    import pytest

    from vms import layouts
    from vms.auth import Principal
    from vms.catalog import NotFound
    from vms.clock import FakeClock
    from vms.db import models as m
    from vms.db.gateway import Gateway

    gw = Gateway(db_url)
    gw.migrate()
    clock = FakeClock(1_800_000_000_000_000)
    try:
        def world() -> tuple[int, int, int, int, int]:
            now = clock.now_us()
            a = m.Site.create(name="A", created_us=now)
            b = m.Site.create(name="B", created_us=now)
            users = [m.User.create(username=n, password_hash="x", role="viewer", created_us=now,
                                   password_changed_us=now).id for n in ("u1", "u2")]
            cams = [m.Camera.create(site=s, name=f"c{s.name}", status_since_us=now,
                                    created_us=now, updated_us=now).id for s in (a, b)]
            return users[0], users[1], cams[0], cams[1], a.id

        u1, u2, cam_a, cam_b, site_a = gw.write_sync(world)
        p1 = Principal(user_id=u1, username="u1", role="viewer", site_ids=frozenset({site_a}))
        p2 = Principal(user_id=u2, username="u2", role="viewer", site_ids=frozenset({site_a}))
        made = gw.write_sync(layouts.save_layout, clock, p1, None, " Yard ", 2, [cam_a, None])
        assert made["name"] == "Yard" and made["camera_ids"] == [cam_a, None, None, None]
        gw.write_sync(layouts.save_layout, clock, p2, None, "Yard", 1, [cam_a])  # u2's own
        with pytest.raises(layouts.LayoutError):
            gw.write_sync(layouts.save_layout, clock, p1, None, "Yard", 1, [])
        with pytest.raises(NotFound):
            gw.write_sync(layouts.save_layout, clock, p1, None, "Peek", 1, [cam_b])
        with pytest.raises(NotFound):  # not u2's to change
            gw.write_sync(layouts.save_layout, clock, p2, made["id"], "Mine", 1, [])
        # the grant narrows: the tile empties, the id never comes back
        narrow = Principal(user_id=u1, username="u1", role="viewer", site_ids=frozenset())
        assert gw.read_sync(layouts.get_layout, narrow, made["id"])["camera_ids"] == [None] * 4
        assert [x["name"] for x in gw.read_sync(layouts.list_layouts, p1)] == ["Yard"]
        gw.write_sync(lambda: m.User.delete().where(m.User.id == u1).execute())
        assert gw.read_sync(lambda: m.LiveLayout.select().count()) == 1  # u2's only
    finally:
        gw.close()
