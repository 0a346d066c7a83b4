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
