"""Discovery, interrogation, adoption, re-bind, configure and scoping through the HTTP API,
against camsim cameras on 127.0.0.1 (nothing is multicast)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from tests.onboarding.conftest import CAM_PASSWORD, api, run_scan
from tests.web.conftest import World
from vms.db import models as m
from web.keys import GATEWAY


def targets_of(fleet: Any) -> list[str]:
    return [camera.info()["discovery"] for camera in fleet.cameras]


async def audit_rows(world: World, action: str) -> list[Any]:
    return await world.app[GATEWAY].read(
        lambda: list(m.AuditLog.select().where(m.AuditLog.action == action)))


async def test_scan_reports_each_device_and_bulk_adopts(world: World, camsim_factory: Any) -> None:
    # (camsim's Fleet takes no per-camera password: a second fleet has another one)
    fleet = await camsim_factory(count=2, password=CAM_PASSWORD)
    other = await camsim_factory(count=1, password="another-pass-99", seed="other",
                                 name_prefix="other")
    fleet.cameras.append(other.cameras[0])
    job = await run_scan(world, "installer1", targets_of(fleet))
    assert job["state"] == "done" and job["progress"] == 1.0
    assert job["found"] == 3 and job["examined"] == 3
    by_mac = {d["mac"]: d for d in job["devices"] if d["mac"]}
    rows = {camera.info()["name"]: d for camera in fleet.cameras
            for d in job["devices"] if camera.info()["onvif_url"] == d["xaddr"]}
    assert rows["camsim-01"]["status"] == "ok" and rows["camsim-02"]["status"] == "ok"
    wrong = rows["other-01"]
    assert wrong["status"] == "auth_failed" and "wrong password" in wrong["message"]
    # address is the plain host:port (issue 11 item 16); the name is a field of its own
    assert wrong["address"] == other.cameras[0].info()["onvif_url"].split("/")[2]
    assert wrong["name"] == "other-01" and "'other-01'" in wrong["message"]
    ok = rows["camsim-01"]
    assert ok["mac"] == fleet.cameras[0].info()["mac"] and ok["mac"] in by_mac
    assert ok["manufacturer"] == "CamSim" and ok["model"] and ok["serial"] and ok["firmware"]
    assert abs(ok["clock_offset_us"]) < 2_000_000
    assert {p["width"] for p in ok["profiles"]} == {1920, 640}
    assert all("@" not in (p["stream_uri"] or "") for p in ok["profiles"])
    assert ok["known_camera_id"] is None
    assert CAM_PASSWORD not in json.dumps(job)

    # a thumbnail of a found device, with the scan's credentials
    resp = await api(world, "GET", f"/api/v1/discovery/{job['id']}/snapshot?device={ok['index']}",
                     "installer1")
    assert resp.status == 200 and (await resp.read())[:2] == b"\xff\xd8"
    assert resp.headers["Cache-Control"] == "no-store"  # a camera's image: never cached

    xaddrs = [d["xaddr"] for d in job["devices"]]
    resp = await api(world, "POST", "/api/v1/cameras/bulk", "installer1",
                     {"site_id": world.site_a, "username": "admin", "password": CAM_PASSWORD,
                      "xaddrs": xaddrs})
    assert resp.status == 200, await resp.text()
    bulk = await resp.json()
    assert bulk["adopted"] == 2 and bulk["failed"] == 1
    failed = next(r for r in bulk["results"] if not r["ok"])
    assert failed["status"] == "auth_failed"
    assert CAM_PASSWORD not in json.dumps(bulk)

    resp = await api(world, "GET", "/api/v1/cameras", "installer1")
    cameras = {c["name"]: c for c in (await resp.json())["cameras"]}
    assert {"camsim-01", "camsim-02"} <= set(cameras)
    cam = cameras["camsim-01"]
    assert cam["site"]["id"] == world.site_a and cam["mac"] == fleet.cameras[0].info()["mac"]
    resp = await api(world, "GET", f"/api/v1/cameras/{cam['id']}", "installer1")
    detail = await resp.json()
    streams = {s["kind"]: s for s in detail["streams"]}
    assert streams["main"]["width"] == 1920 and streams["sub"]["width"] == 640
    assert streams["main"]["codec"] == "H264" and streams["main"]["record"]
    assert "@" not in streams["main"]["rtsp_url"] and streams["main"]["rtsp_url"].startswith("rtsp://")
    stored = await world.app[GATEWAY].read(lambda: m.Camera.get_by_id(cam["id"]).password_enc)
    assert stored and CAM_PASSWORD not in stored
    adopts = await audit_rows(world, "camera_adopt")
    assert len(adopts) == 2 and all(r.username == "installer1" for r in adopts)

    # a second scan knows them
    job = await run_scan(world, "installer1", targets_of(fleet)[:1], timeout_s=0.5)
    assert job["devices"][0]["known_camera_id"] == cam["id"]

    # a fresh snapshot of an adopted camera (live right; viewer of the same site)
    resp = await api(world, "GET", f"/api/v1/cameras/{cam['id']}/snapshot", "viewer1")
    assert resp.status == 200 and resp.content_type == "image/jpeg"
    assert (await resp.read())[:2] == b"\xff\xd8"
    assert resp.headers["Cache-Control"] == "no-store"


async def test_clock_two_hours_off_detected_and_fixed(world: World, camsim_factory: Any) -> None:
    fleet = await camsim_factory(count=2, password=CAM_PASSWORD,
                                 per_camera=[{"clock_offset_s": 7200}, {}])
    skewed, normal = fleet.cameras
    url = skewed.info()["onvif_url"]
    body = {"onvif_url": url, "username": "admin", "password": CAM_PASSWORD,
            "site_id": world.site_a}
    resp = await api(world, "POST", "/api/v1/cameras", "installer1", body)
    assert resp.status == 424, await resp.text()
    error = (await resp.json())["error"]
    assert error["report"]["status"] == "clock_skew"
    assert abs(error["report"]["clock_offset_us"] - 7_200_000_000) < 3_000_000
    assert "clock" in error["message"]

    resp = await api(world, "POST", "/api/v1/cameras", "installer1", {**body, "set_clock": True})
    assert resp.status == 201, await resp.text()
    adopted = await resp.json()
    assert abs(adopted["clock_offset_us"]) < 3_000_000
    assert abs(skewed.state()["clock_offset_s"]) < 3

    # an adopted camera drifts: POST .../clock sets it again
    resp = await api(world, "POST", "/api/v1/cameras", "installer1",
                     {**body, "onvif_url": normal.info()["onvif_url"]})
    assert resp.status == 201, await resp.text()
    camera_id = (await resp.json())["id"]
    normal.set_clock_offset(-7200)
    resp = await api(world, "POST", f"/api/v1/cameras/{camera_id}/clock", "installer1", {})
    assert resp.status == 200, await resp.text()
    fixed = await resp.json()
    assert abs(fixed["offset_before_us"] + 7_200_000_000) < 3_000_000
    assert abs(fixed["clock_offset_us"]) < 3_000_000
    assert abs(normal.state()["clock_offset_s"]) < 3


async def test_camera_that_moves_is_rebound_by_mac(world: World, camsim_factory: Any) -> None:
    fleet = await camsim_factory(count=1, password=CAM_PASSWORD)
    camera = fleet.cameras[0]
    old_url = camera.info()["onvif_url"]
    body = {"onvif_url": old_url, "username": "admin", "password": CAM_PASSWORD,
            "site_id": world.site_a, "name": "Gate north"}
    resp = await api(world, "POST", "/api/v1/cameras", "admin1", body)
    assert resp.status == 201, await resp.text()
    camera_id = (await resp.json())["id"]

    await camera.move_to("127.0.0.1", 0)  # DHCP gave it a new address (port, on loopback)
    new_url = camera.info()["onvif_url"]
    assert new_url != old_url
    job = await run_scan(world, "admin1", [camera.info()["discovery"]], timeout_s=0.5)
    device = job["devices"][0]
    assert device["xaddr"] == new_url and device["known_camera_id"] == camera_id

    resp = await api(world, "POST", "/api/v1/cameras", "admin1",
                     {"onvif_url": new_url, "username": "admin", "password": CAM_PASSWORD})
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert data["id"] == camera_id and data["adoption"]["rebound"] is True
    assert data["onvif_url"] == new_url and data["name"] == "Gate north"
    count = await world.app[GATEWAY].read(
        lambda: m.Camera.select().where(m.Camera.mac == camera.info()["mac"]).count())
    assert count == 1
    rows = await audit_rows(world, "camera_adopt")
    assert json.loads(rows[-1].detail)["rebound"] is True


class _Garbage(asyncio.DatagramProtocol):
    """A "device" on loopback that answers every Probe with a truncated ProbeMatch."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.transport.sendto(b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'>"
                              b"<s:Body><d:ProbeMatches", addr)


async def test_malformed_answers_are_reported_with_a_logged_reason(
        world: World, camsim_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    fleet = await camsim_factory(count=2, password=CAM_PASSWORD)
    bad = fleet.cameras[1]
    await bad.fault("bad_xml", 30)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_Garbage, local_addr=("127.0.0.1", 0))
    garbage = f"127.0.0.1:{transport.get_extra_info('sockname')[1]}"
    caplog.set_level(logging.INFO)
    try:
        job = await run_scan(world, "installer1", [*targets_of(fleet), garbage])
    finally:
        transport.close()
    # the garbage sender is shown too (never dropped silently), with why
    assert job["state"] == "done" and job["found"] == 3
    statuses = {d["xaddr"]: d["status"] for d in job["devices"]}
    assert statuses[fleet.cameras[0].info()["onvif_url"]] == "ok"
    assert statuses[bad.info()["onvif_url"]] == "bad_response"
    (unread,) = [d for d in job["devices"] if d["address"] == garbage]
    assert unread["status"] == "bad_response" and "could not be read" in unread["message"]
    text = caplog.text
    assert f"discovery reply from {garbage} ignored" in text
    assert "unreadable answer" in text and bad.info()["onvif_url"].split("/")[2] in text


async def test_other_sites_cannot_be_adopted_into_configured_or_seen(
        world: World, camsim_factory: Any) -> None:
    fleet = await camsim_factory(count=2, password=CAM_PASSWORD)
    url_a, url_b = (c.info()["onvif_url"] for c in fleet.cameras)
    creds = {"username": "admin", "password": CAM_PASSWORD}
    # admin puts camera 2 into Site B
    resp = await api(world, "POST", "/api/v1/cameras", "admin1",
                     {"onvif_url": url_b, "site_id": world.site_b, **creds})
    assert resp.status == 201
    cam_b = (await resp.json())["id"]

    # installer1 sees only Site A
    resp = await api(world, "POST", "/api/v1/cameras", "installer1",
                     {"onvif_url": url_a, "site_id": world.site_b, **creds})
    assert resp.status == 404
    resp = await api(world, "POST", "/api/v1/cameras/bulk", "installer1",
                     {"xaddrs": [url_a], "site_id": world.site_b, **creds})
    assert resp.status == 404
    # the same physical camera (same MAC) cannot be pulled into Site A either
    resp = await api(world, "POST", "/api/v1/cameras", "installer1",
                     {"onvif_url": url_b, "site_id": world.site_a, **creds})
    assert resp.status == 409
    site = await world.app[GATEWAY].read(lambda: m.Camera.get_by_id(cam_b).site_id)
    assert site == world.site_b
    for method, path, body in (
            ("POST", f"/api/v1/cameras/{cam_b}/configure", {"name": "mine now"}),
            ("POST", f"/api/v1/cameras/{cam_b}/clock", {}),
            ("DELETE", f"/api/v1/cameras/{cam_b}", None),
            ("GET", f"/api/v1/cameras/{cam_b}/snapshot", None)):
        resp = await api(world, method, path, "installer1", body)
        assert resp.status == 404, (method, path, resp.status)
    resp = await api(world, "GET", f"/api/v1/cameras/{cam_b}/snapshot", "viewer1")
    assert resp.status == 404
    resp = await api(world, "GET", f"/api/v1/cameras/{cam_b}/snapshot", "viewer_b")
    assert resp.status == 200
    # a scan shows known_camera_id only for cameras the user may see
    job = await run_scan(world, "installer1", [fleet.cameras[1].info()["discovery"]],
                         timeout_s=0.5)
    assert job["devices"][0]["known_camera_id"] is None
    # and another user's scan is not found
    resp = await api(world, "GET", f"/api/v1/discovery/{job['id']}", "admin1")
    assert resp.status == 200  # admins see every scan
    still = await world.app[GATEWAY].read(lambda: m.Camera.get_by_id(cam_b).name)
    assert still != "mine now"


async def test_configure_applies_a_recording_profile(world: World, camsim_factory: Any) -> None:
    fleet = await camsim_factory(count=1, password=CAM_PASSWORD)
    camera = fleet.cameras[0]
    resp = await api(world, "POST", "/api/v1/cameras", "installer1",
                     {"onvif_url": camera.info()["onvif_url"], "username": "admin",
                      "password": CAM_PASSWORD, "site_id": world.site_a})
    camera_id = (await resp.json())["id"]
    resp = await api(world, "POST", f"/api/v1/cameras/{camera_id}/configure", "installer1",
                     {"profile": {"width": 1280, "height": 720, "fps": 20,
                                  "bitrate_kbps": 2048, "gop_s": 2}, "name": "Gate west"})
    assert resp.status == 200, await resp.text()
    result = await resp.json()
    accepted = result["accepted"]
    assert (accepted["width"], accepted["height"]) == (1280, 720)
    assert accepted["gov_length"] <= 2 * accepted["fps"] and accepted["gop_s"] <= 2
    assert result["requested"]["gov_length"] == 40
    encoder = camera.state()["encoders"]["VideoEncoderToken_1"]
    assert (encoder["width"], encoder["gov_length"]) == (1280, accepted["gov_length"])
    assert result["hostname"] == "Gate-west"
    resp = await api(world, "GET", f"/api/v1/cameras/{camera_id}", "installer1")
    detail = await resp.json()
    assert detail["name"] == "Gate west"
    main = next(s for s in detail["streams"] if s["kind"] == "main")
    assert (main["width"], main["height"]) == (1280, 720)
    changes = await audit_rows(world, "camera_change")
    assert json.loads(changes[-1].detail)["accepted"]["width"] == 1280

    resp = await api(world, "POST", f"/api/v1/cameras/{camera_id}/configure", "installer1",
                     {"profile": {"gop_s": 4}})
    assert resp.status == 400 and "gop_s" in await resp.text()
    resp = await api(world, "POST", f"/api/v1/cameras/{camera_id}/configure", "operator1",
                     {"name": "x"})
    assert resp.status == 403

    # removal archives: still found (its recordings are evidence), out of the live lists, and
    # it takes no more commands
    resp = await api(world, "DELETE", f"/api/v1/cameras/{camera_id}", "installer1")
    assert resp.status == 200 and (await resp.json())["archived"] is True
    resp = await api(world, "GET", f"/api/v1/cameras/{camera_id}", "installer1")
    assert resp.status == 200 and (await resp.json())["status"] == "archived"
    resp = await api(world, "GET", "/api/v1/cameras", "installer1")
    assert camera_id not in [c["id"] for c in (await resp.json())["cameras"]]
    resp = await api(world, "GET", "/api/v1/cameras?archived=true", "installer1")
    assert [c["id"] for c in (await resp.json())["cameras"]] == [camera_id]
    page = await (await api(world, "GET", f"/cameras/{camera_id}", "installer1")).text()
    assert 'id="camera-archived"' in page and 'id="camera-live"' not in page
    page = await (await api(world, "GET", "/cameras", "installer1")).text()
    assert 'id="archived-table"' in page and f'/cameras/{camera_id}/playback' in page
    resp = await api(world, "POST", f"/api/v1/cameras/{camera_id}/configure", "installer1",
                     {"name": "again"})
    assert resp.status == 409 and "removed" in await resp.text()
    resp = await api(world, "PUT", f"/api/v1/cameras/{camera_id}/recording-settings",
                     "installer1", {"recording_mode": "off"})
    assert resp.status == 409
    assert len(await audit_rows(world, "camera_remove")) == 1

    # deleting its recordings: refused while a hold protects them, and for another site's user
    resp = await api(world, "POST", f"/api/v1/cameras/{camera_id}/holds", "admin1",
                     {"from": 10**15, "to": 10**15 + 10**9, "reason": "case 12"})
    assert resp.status in (200, 201), await resp.text()
    hold_id = (await resp.json())["id"]
    resp = await api(world, "DELETE", f"/api/v1/cameras/{camera_id}?delete_recordings=true",
                     "installer1")
    assert resp.status == 409 and "hold" in await resp.text()
    resp = await api(world, "DELETE", f"/api/v1/cameras/{camera_id}/holds/{hold_id}", "admin1")
    assert resp.status in (200, 204)
    resp = await api(world, "DELETE", f"/api/v1/cameras/{world.camera_b}?delete_recordings=true",
                     "installer1")
    assert resp.status == 404
    resp = await api(world, "DELETE", f"/api/v1/cameras/{camera_id}?delete_recordings=maybe",
                     "installer1")
    assert resp.status == 400
    resp = await api(world, "DELETE", f"/api/v1/cameras/{camera_id}?delete_recordings=true",
                     "installer1")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["recordings_deleted"] is True
    resp = await api(world, "GET", f"/api/v1/cameras/{camera_id}", "installer1")
    assert resp.status == 404
    assert len(await audit_rows(world, "camera_recordings_delete")) == 1


async def test_manual_add_by_rtsp_url(world: World) -> None:
    resp = await api(world, "POST", "/api/v1/cameras", "installer1",
                     {"rtsp_url": "rtsp://user:s3cret-pw@127.0.0.1:8554/stream1",
                      "site_id": world.site_a, "name": "Old analogue encoder"})
    assert resp.status == 201, await resp.text()
    data = await resp.json()
    assert data["username"] == "user" and "s3cret-pw" not in json.dumps(data)
    assert data["streams"][0]["rtsp_url"] == "rtsp://127.0.0.1:8554/stream1"
    resp = await api(world, "POST", "/api/v1/cameras", "installer1",
                     {"rtsp_url": "http://127.0.0.1/x", "site_id": world.site_a})
    assert resp.status == 400
    resp = await api(world, "POST", "/api/v1/cameras", "installer1",
                     {"onvif_url": "http://127.0.0.1:9/onvif/device_service", "username": "a",
                      "password": "b", "site_id": world.site_a})
    assert resp.status == 424
    assert (await resp.json())["error"]["report"]["status"] == "unreachable"
