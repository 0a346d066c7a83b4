"""Recording settings through the web: the JSON API (validation naming the field, site scoping,
rights, audit), the camera page's form, and a change reaching a running supervisor."""

from __future__ import annotations

import json
from typing import Any

from camsim.rtsp import RtspServer
from recorder.settings import SettingsError, parse_change
from recorder.supervisor import RecorderSupervisor
from tests.recorder.conftest import FAST, SMALL, wait_until
from tests.web.conftest import World, world  # noqa: F401  (fixture)
from vms.db import models as m
from web.keys import CLOCK, GATEWAY, SECRETS, SERVICES, SETTINGS


def _url(world: World, camera_id: int | None = None) -> str:  # noqa: F811
    return f"/api/v1/cameras/{camera_id or world.camera_a}/recording-settings"


async def _put(world: World, user: str, body: Any, camera_id: int | None = None) -> Any:  # noqa: F811
    csrf = world.csrf[user]
    return await world.client.put(_url(world, camera_id), json=body,
                                  headers={"X-CSRF-Token": csrf})


def test_parse_change_names_the_field() -> None:
    cases = {
        "recording_mode": {"recording_mode": "sometimes"},
        "schedule": {"schedule": [{"days": "mon-fri", "start": "07:00", "end": "25:00"}]},
        "event_pre_s": {"event_pre_s": 3601},
        "event_post_s": {"event_post_s": -1},
        "streams.main.rtsp_transport": {"streams": {"main": {"rtsp_transport": "http"}}},
        "streams.main.record": {"streams": {"main": {"record": "maybe"}}},
        "streams.third": {"streams": {"third": {"record": True}}},
        "colour": {"colour": "red"},
    }
    for field, body in cases.items():
        try:
            parse_change(body)
        except SettingsError as exc:
            assert exc.field == field, (field, exc)
        else:
            raise AssertionError(f"{body} was accepted")
    change = parse_change({"schedule": "mon-fri 07:00-19:00\nsat 09:00-12:00", "event_pre_s": "7"})
    assert json.loads(change.schedule or "") == [
        {"days": "mon-fri", "start": "07:00", "end": "19:00"},
        {"days": "sat", "start": "09:00", "end": "12:00"}]
    assert change.event_pre_s == 7 and change.recording_mode is None


async def test_settings_api_validation_scoping_rights_and_audit(world: World) -> None:  # noqa: F811
    await world.login("viewer1")
    resp = await world.client.get(_url(world))
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert data["recording_mode"] == "continuous" and data["timezone"] == "Asia/Almaty"
    assert data["streams"] == {"main": {"record": True, "rtsp_transport": "default"}}
    # a viewer may look but not change
    resp = await _put(world, "viewer1", {"recording_mode": "off"})
    assert resp.status == 403
    # a user of another site: the camera does not exist (GET and PUT)
    await world.login("viewer_b")
    assert (await world.client.get(_url(world))).status == 404
    await world.login("installer1")
    resp = await _put(world, "installer1", {"recording_mode": "off"}, world.camera_b)
    assert resp.status == 404
    # bad input: 400 naming the field, nothing changed
    for body, field in (
            ({"recording_mode": "sometimes"}, "recording_mode"),
            ({"recording_mode": "scheduled", "schedule": [{"start": "07:00"}]}, "schedule"),
            ({"schedule": "mon-fri 07:00-31:00"}, "schedule"),
            ({"event_pre_s": 99999}, "event_pre_s"),
            ({"event_post_s": "soon"}, "event_post_s"),
            ({"streams": {"sub": {"record": True}}}, "streams.sub"),  # camera has no sub stream
            ({"streams": {"main": {"rtsp_transport": "http"}}}, "streams.main.rtsp_transport")):
        resp = await _put(world, "installer1", body)
        assert resp.status == 400, (body, resp.status)
        error = (await resp.json())["error"]
        assert error["field"] == field and field in error["message"], (body, error)
    cam = await world.app[GATEWAY].read(lambda: m.Camera.get_by_id(world.camera_a))
    assert cam.recording_mode == "continuous" and cam.schedule == ""
    # a good change: applied, answered, audited with what changed
    resp = await _put(world, "installer1", {
        "recording_mode": "scheduled",
        "schedule": [{"days": "mon-fri", "start": "07:00", "end": "19:00"}],
        "event_pre_s": 3, "streams": {"main": {"rtsp_transport": "udp"}}})
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert data["recording_mode"] == "scheduled" and data["event_pre_s"] == 3
    assert data["schedule_text"] == "mon-fri 07:00-19:00"
    assert data["streams"]["main"]["rtsp_transport"] == "udp"
    assert data["changed"] == ["event_pre_s", "recording_mode", "schedule",
                               "streams.main.rtsp_transport"]
    assert data["status"]["recorder_running"] is False

    def audit_rows() -> list[m.AuditLog]:
        return list(m.AuditLog.select().where(m.AuditLog.action == "camera_change"))

    rows = await world.app[GATEWAY].read(audit_rows)
    assert len(rows) == 1 and rows[0].username == "installer1" and rows[0].target == "Gate A"
    detail = json.loads(rows[0].detail)
    assert detail["camera_id"] == world.camera_a
    assert detail["recording"]["recording_mode"] == ["continuous", "scheduled"]
    # the same change again changes nothing and is not audited twice
    resp = await _put(world, "installer1", {"recording_mode": "scheduled"})
    assert (await resp.json())["changed"] == []
    assert len(await world.app[GATEWAY].read(audit_rows)) == 1


async def test_camera_page_form(world: World) -> None:  # noqa: F811
    await world.login("viewer1")
    page = await (await world.client.get(f"/cameras/{world.camera_a}")).text()
    assert 'id="camera-recording-settings"' not in page  # no manage_cameras: no form
    csrf = await world.login("admin1")
    page = await (await world.client.get(f"/cameras/{world.camera_a}")).text()
    assert 'id="camera-recording-settings"' in page
    assert f'action="/cameras/{world.camera_a}/recording-settings"' in page
    # without the page's script the schedule and roll fields are disabled (so not sent)
    assert 'name="schedule" rows="3" cols="40" data-field="schedule_text" translate="no" disabled' in page
    form = {"csrf_token": csrf, "recording_mode": "event", "event_pre_s": "4",
            "event_post_s": "12", "schedule": "sat,sun 10:00-16:00", "main.record": "no",
            "main.rtsp_transport": "tcp"}
    resp = await world.client.post(f"/cameras/{world.camera_a}/recording-settings", data=form,
                                   allow_redirects=False)
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"].startswith(f"/cameras/{world.camera_a}")

    def load() -> tuple[m.Camera, m.CameraStream]:
        return (m.Camera.get_by_id(world.camera_a),
                m.CameraStream.get(m.CameraStream.camera == world.camera_a))

    cam, stream = await world.app[GATEWAY].read(load)
    assert (cam.recording_mode, cam.event_pre_s, cam.event_post_s) == ("event", 4, 12)
    assert json.loads(cam.schedule) == [{"days": "sat,sun", "start": "10:00", "end": "16:00"}]
    assert stream.record is False and stream.rtsp_transport == "tcp"
    # a form sent without the script's fields leaves them as they are
    resp = await world.client.post(f"/cameras/{world.camera_a}/recording-settings",
                                   data={"csrf_token": csrf, "recording_mode": "continuous",
                                         "main.record": "yes"}, allow_redirects=False)
    assert resp.status == 303
    cam, stream = await world.app[GATEWAY].read(load)
    assert (cam.recording_mode, cam.event_pre_s, stream.record) == ("continuous", 4, True)
    assert json.loads(cam.schedule)[0]["days"] == "sat,sun"
    # a refused form: the page again, with the error naming the field and the values sent
    resp = await world.client.post(f"/cameras/{world.camera_a}/recording-settings",
                                   data={"csrf_token": csrf, "event_pre_s": "9000"},
                                   allow_redirects=False)
    assert resp.status == 400
    text = await resp.text()
    assert "event_pre_s" in text and "between 0 and 3600" in text and 'value="9000"' in text
    # without the CSRF token: refused
    resp = await world.client.post(f"/cameras/{world.camera_a}/recording-settings",
                                   data={"recording_mode": "off"}, allow_redirects=False)
    assert resp.status == 403


async def test_change_reaches_a_running_supervisor(world: World,  # noqa: F811
                                                   camsim_cache_dir) -> None:  # type: ignore[no-untyped-def]
    app = world.app
    server = RtspServer("127.0.0.1", 0, cache_dir=camsim_cache_dir)
    server.add_stream("/main", SMALL)
    await server.start()
    url = server.url("/main")
    await app[GATEWAY].write(lambda: m.CameraStream.update(rtsp_url=url).where(
        m.CameraStream.camera == world.camera_a).execute())
    await app[GATEWAY].write(lambda: m.Camera.update(enabled=False).where(
        m.Camera.id == world.camera_b).execute())
    sup = RecorderSupervisor(app[GATEWAY], app[SETTINGS], app[CLOCK], app[SECRETS], FAST)
    await sup.start()
    app[SERVICES]["recorder"] = sup
    cam = world.camera_a
    try:
        await wait_until(lambda: sup.status(cam)["state"] == "recording", 15)
        await world.login("installer1")
        resp = await _put(world, "installer1", {"recording_mode": "off"})
        assert resp.status == 200, await resp.text()
        data = await resp.json()
        # applied before the answer: the supervisor stopped the stream already
        assert data["status"]["recorder_running"] is True
        assert data["status"]["mode"] == "off" and data["status"]["state"] == "stopped"
        assert "off" in data["status"]["reason"]
        resp = await _put(world, "installer1", {"recording_mode": "continuous",
                                                "streams": {"main": {"rtsp_transport": "tcp"}}})
        assert (await resp.json())["status"]["mode"] == "continuous"
        await wait_until(lambda: sup.status(cam)["state"] == "recording", 15)
        status = await (await world.client.get(f"/api/v1/cameras/{cam}/recording")).json()
        assert status["status"]["mode"] == "continuous"
        assert status["status"]["streams"]["main"]["state"] == "recording"
    finally:
        app[SERVICES].pop("recorder", None)
        await sup.stop()
        await server.stop()
    runs = await app[GATEWAY].read(lambda: list(m.Run.select().where(m.Run.camera == cam)
                                               .order_by(m.Run.id)))
    assert [r.end_reason for r in runs] == ["config_change", "shutdown"]
