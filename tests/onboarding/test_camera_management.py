"""Managing cameras from the web: rename and move (PATCH), adopting what a scan found with the
scan's own credentials, distinct default names for cameras that all say "localhost", and the
snapshot taken from the RTSP stream when the camera's snapshot URL answers 404."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.onboarding.conftest import CAM_PASSWORD, api, run_scan
from tests.web.conftest import World
from vms.db import models as m
from web.keys import GATEWAY


def targets_of(fleet: Any) -> list[str]:
    return [camera.info()["discovery"] for camera in fleet.cameras]


async def audit(world: World, action: str) -> list[dict[str, Any]]:
    rows = await world.app[GATEWAY].read(
        lambda: list(m.AuditLog.select().where(m.AuditLog.action == action)
                     .order_by(m.AuditLog.id)))
    return [{"site": r.site_id, "user": r.username, **json.loads(r.detail)} for r in rows]


async def test_rename_and_move_are_site_checked_and_audited(world: World) -> None:
    # adding by RTSP URL stores the camera without contacting it (nothing records here)
    resp = await api(world, "POST", "/api/v1/cameras", "installer1",
                     {"rtsp_url": "rtsp://127.0.0.1:9/sub", "username": "admin",
                      "password": CAM_PASSWORD, "site_id": world.site_a})
    assert resp.status == 201, await resp.text()
    camera_id = (await resp.json())["id"]

    # a camera added by RTSP URL (no ONVIF) is renamed here
    resp = await api(world, "PATCH", f"/api/v1/cameras/{camera_id}", "installer1",
                     {"name": "Gate 3 — east"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["name"] == "Gate 3 — east"
    assert (await audit(world, "camera_change"))[-1]["previous_name"].startswith("127.0.0.1")
    for body in ({}, {"name": ""}, {"name": "x" * 201}, {"site_id": 0}, {"colour": "red"}):
        resp = await api(world, "PATCH", f"/api/v1/cameras/{camera_id}", "installer1", body)
        assert resp.status == 400, (body, resp.status)

    # the installer sees only Site A: moving there from elsewhere, or into Site B, is a 404
    resp = await api(world, "PATCH", f"/api/v1/cameras/{camera_id}", "installer1",
                     {"site_id": world.site_b})
    assert resp.status == 404
    resp = await api(world, "PATCH", f"/api/v1/cameras/{world.camera_b}", "installer1",
                     {"name": "mine"})
    assert resp.status == 404
    page = await (await api(world, "GET", f"/cameras/{camera_id}", "installer1")).text()
    assert 'id="camera-manage"' in page and "recordings are kept" in page

    # an administrator moves it to Site B: audited in both sites; Site A no longer sees it
    resp = await api(world, "PATCH", f"/api/v1/cameras/{camera_id}", "admin1",
                     {"site_id": world.site_b})
    assert resp.status == 200
    assert (await resp.json())["site"]["id"] == world.site_b
    moves = await audit(world, "camera_move")
    assert {r["site"] for r in moves} == {world.site_a, world.site_b}
    assert all(r["from_site_id"] == world.site_a and r["to_site_id"] == world.site_b
               for r in moves)
    resp = await api(world, "GET", f"/api/v1/cameras/{camera_id}", "installer1")
    assert resp.status == 404
    resp = await api(world, "GET", f"/cameras/{camera_id}", "viewer_b")
    assert resp.status == 200
    assert 'id="camera-manage"' not in await resp.text()  # viewers get no management card


@pytest.fixture
def sqlite_only(engine: str) -> None:
    """Onboarding logic with no engine-specific SQL: once, on SQLite, saves a camsim fleet and a
    scan per run (the rename/move test covers both engines)."""
    if engine != "sqlite":
        pytest.skip("engine-independent: run on SQLite")


@pytest.mark.usefixtures("sqlite_only")
async def test_scan_adopts_with_its_own_credentials_and_names_cameras_apart(
        world: World, camsim_factory: Any) -> None:
    # five real cameras all answered hostname "localhost": two camsims do the same here
    fleet = await camsim_factory(count=2, password=CAM_PASSWORD, hostname="localhost")
    job = await run_scan(world, "installer1", targets_of(fleet))
    assert [d["status"] for d in job["devices"]] == ["ok", "ok"]
    resp = await api(world, "POST", f"/api/v1/discovery/{job['id']}/adopt", "installer1",
                     {"site_id": world.site_a})
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert data["adopted"] == 2, data
    names = sorted(r["name"] for r in data["results"])
    macs = sorted(c.info()["mac"] for c in fleet.cameras)
    assert names == sorted(f"CS-2100 {mac[-8:]}" for mac in macs), names
    assert len(set(names)) == 2 and "localhost" not in names
    # only devices of the scan that were ready can be named
    resp = await api(world, "POST", f"/api/v1/discovery/{job['id']}/adopt", "installer1",
                     {"site_id": world.site_a, "devices": [99]})
    assert resp.status == 400
    assert "nothing to adopt" in (await resp.json())["error"]["message"]


@pytest.mark.usefixtures("sqlite_only")
async def test_snapshot_falls_back_to_the_rtsp_stream_when_the_url_is_404(
        world: World, camsim_factory: Any) -> None:
    fleet = await camsim_factory(count=1, password=CAM_PASSWORD)
    camera = fleet.cameras[0]
    resp = await api(world, "POST", "/api/v1/cameras", "installer1",
                     {"onvif_url": camera.info()["onvif_url"], "username": "admin",
                      "password": CAM_PASSWORD, "site_id": world.site_a})
    assert resp.status == 201, await resp.text()
    camera_id = (await resp.json())["id"]
    await camera.fault("snapshot_404", 60)
    resp = await api(world, "GET", f"/api/v1/cameras/{camera_id}/snapshot?stream=sub",
                     "operator1")
    assert resp.status == 200, await resp.text()
    jpeg = await resp.read()
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
    # the picture came from the RTSP stream: ffmpeg's JPEG, not the camera's snapshot endpoint
    await camera.fault("clear")
    direct = await api(world, "GET", f"/api/v1/cameras/{camera_id}/snapshot?stream=main",
                       "operator1")
    assert direct.status == 200
