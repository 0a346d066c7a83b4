"""Holds: create, list, delete over the API; validation, access, site scope, timeline, audit."""

from __future__ import annotations

from typing import Any

import peewee as pw
import pytest

from tests.web.conftest import World
from vms.db import models as m
from web.keys import GATEWAY

T0 = 1_780_000_000_000_000  # 2026-05-28, UTC µs
HOUR = 3_600 * 1_000_000
DAY = 24 * HOUR


async def _post(world: World, username: str, camera_id: int, body: Any) -> Any:
    csrf = await world.login(username)
    return await world.client.post(f"/api/v1/cameras/{camera_id}/holds", json=body,
                                   headers={"X-CSRF-Token": csrf})


async def _audit(world: World, action: str) -> list[tuple[str, str, int | None]]:
    def rows() -> list[tuple[str, str, int | None]]:
        return [(r.username, r.target, r.site_id)
                for r in m.AuditLog.select().where(m.AuditLog.action == action)]

    return await world.app[GATEWAY].read(rows)


async def test_create_list_delete(world: World) -> None:
    cam = world.camera_a
    resp = await _post(world, "operator1", cam, {"from": "2026-05-28T00:00:00+00:00",
                                                 "to": str(T0 + HOUR), "reason": "incident 42"})
    assert resp.status == 201, await resp.text()
    hold = await resp.json()
    start = 1_779_926_400_000_000  # 2026-05-28T00:00:00Z
    assert (hold["start_us"], hold["end_us"], hold["reason"]) == (start, T0 + HOUR, "incident 42")
    assert hold["created_by"] == "operator1" and hold["camera_id"] == cam
    resp = await _post(world, "admin1", cam, {"from": T0 + 2 * HOUR, "to": T0 + 3 * HOUR,
                                              "reason": "second"})
    assert resp.status == 201, await resp.text()
    second = await resp.json()

    # a viewer may list them
    await world.login("viewer1")
    resp = await world.client.get(f"/api/v1/cameras/{cam}/holds",
                                  params={"from": str(T0), "to": str(T0 + DAY)})
    assert resp.status == 200, await resp.text()
    listed = (await resp.json())["holds"]
    assert [(h["id"], h["reason"], h["created_by"]) for h in listed] == [
        (hold["id"], "incident 42", "operator1"), (second["id"], "second", "admin1")]
    # only those overlapping the range
    resp = await world.client.get(f"/api/v1/cameras/{cam}/holds",
                                  params={"from": str(T0 + HOUR), "to": str(T0 + 2 * HOUR)})
    assert (await resp.json())["holds"] == []

    # the timeline answer carries them
    resp = await world.client.get(f"/api/v1/cameras/{cam}/timeline",
                                  params={"from": str(T0 + 30 * 60 * 1_000_000),
                                          "to": str(T0 + DAY)})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["holds"] == [
        {"id": hold["id"], "start_us": start, "end_us": T0 + HOUR, "reason": "incident 42"},
        {"id": second["id"], "start_us": T0 + 2 * HOUR, "end_us": T0 + 3 * HOUR,
         "reason": "second"}]
    resp = await world.client.get("/api/v1/timeline", params={
        "camera_ids": str(cam), "from": str(T0 + 4 * HOUR), "to": str(T0 + DAY)})
    assert (await resp.json())["cameras"][0]["holds"] == []

    csrf = await world.login("operator1")
    resp = await world.client.delete(f"/api/v1/cameras/{cam}/holds/{hold['id']}",
                                     headers={"X-CSRF-Token": csrf})
    assert resp.status == 204, await resp.text()
    resp = await world.client.delete(f"/api/v1/cameras/{cam}/holds/{hold['id']}",
                                     headers={"X-CSRF-Token": csrf})
    assert resp.status == 404
    resp = await world.client.get(f"/api/v1/cameras/{cam}/holds",
                                  params={"from": str(T0), "to": str(T0 + DAY)})
    assert [h["id"] for h in (await resp.json())["holds"]] == [second["id"]]

    created = await _audit(world, "hold_create")
    assert created == [("operator1", f"camera {cam} hold {hold['id']}", world.site_a),
                       ("admin1", f"camera {cam} hold {second['id']}", world.site_a)]
    assert await _audit(world, "hold_delete") == [
        ("operator1", f"camera {cam} hold {hold['id']}", world.site_a)]


async def test_bad_input_names_the_field(world: World) -> None:
    cam = world.camera_a
    cases = [
        ({"to": T0 + HOUR, "reason": "x"}, "'from'"),
        ({"from": "yesterday", "to": T0 + HOUR, "reason": "x"}, "'from'"),
        ({"from": "2026-05-28T00:00:00", "to": T0 + HOUR, "reason": "x"}, "'from'"),
        ({"from": T0, "to": True, "reason": "x"}, "'to'"),
        ({"from": T0, "to": T0, "reason": "x"}, "'to'"),
        ({"from": T0, "to": T0 + 32 * DAY, "reason": "x"}, "'to'"),
        ({"from": T0, "to": T0 + HOUR}, "'reason'"),
        ({"from": T0, "to": T0 + HOUR, "reason": "  "}, "'reason'"),
        ({"from": T0, "to": T0 + HOUR, "reason": "r" * 501}, "'reason'"),
        ({"from": T0, "to": T0 + HOUR, "reason": 5}, "'reason'"),
    ]
    for body, field in cases:
        resp = await _post(world, "operator1", cam, body)
        assert resp.status == 400, (body, resp.status)
        assert field in await resp.text(), body
    resp = await _post(world, "operator1", cam, {"from": T0, "to": T0 + 31 * DAY, "reason": "max"})
    assert resp.status == 201, await resp.text()
    await world.login("viewer1")
    resp = await world.client.get(f"/api/v1/cameras/{cam}/holds", params={"from": "soon"})
    assert resp.status == 400 and "'from'" in await resp.text()

    def count() -> int:
        return int(m.Hold.select().count())

    assert await world.app[GATEWAY].read(count) == 1


async def test_viewer_may_not_hold(world: World) -> None:
    resp = await _post(world, "viewer1", world.camera_a,
                       {"from": T0, "to": T0 + HOUR, "reason": "x"})
    assert resp.status == 403
    assert await _audit(world, "hold_create") == []


async def test_another_sites_camera_is_not_found(world: World) -> None:
    resp = await _post(world, "admin1", world.camera_b, {"from": T0, "to": T0 + HOUR,
                                                         "reason": "site B"})
    assert resp.status == 201
    b_hold = (await resp.json())["id"]
    # operator1 sees only Site A: camera B does not exist for them, even with a bad body
    for body in ({"from": T0, "to": T0 + HOUR, "reason": "x"}, {"from": "bad"}):
        resp = await _post(world, "operator1", world.camera_b, body)
        assert resp.status == 404, body
    csrf = world.csrf["operator1"]
    resp = await world.client.delete(f"/api/v1/cameras/{world.camera_b}/holds/{b_hold}",
                                     headers={"X-CSRF-Token": csrf})
    assert resp.status == 404
    # nor through a camera of their own site
    resp = await world.client.delete(f"/api/v1/cameras/{world.camera_a}/holds/{b_hold}",
                                     headers={"X-CSRF-Token": csrf})
    assert resp.status == 404
    resp = await world.client.get(f"/api/v1/cameras/{world.camera_b}/holds")
    assert resp.status == 404

    def count() -> int:
        return int(m.Hold.select().count())

    assert await world.app[GATEWAY].read(count) == 1


async def test_database_refuses_an_empty_hold(world: World) -> None:
    def empty() -> None:
        m.Hold.create(camera=world.camera_a, start_us=T0, end_us=T0, reason="x", created_us=T0)

    with pytest.raises(pw.IntegrityError):
        await world.app[GATEWAY].write(empty)
