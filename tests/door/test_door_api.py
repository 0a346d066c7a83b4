"""Door release against virtual cameras: relays listed at adoption, a pulse activates then
deactivates the relay (Monostable where the relay supports it, else active then inactive by the
server), who may open which door (viewer of the site yes, another site 404, no right 403), the rate
limit (429), an audit record for every attempt, and the release guaranteed when the pulse is
cancelled or the server stops mid-pulse."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tests.web.conftest import World, seed_world
from vms.db import models as m

PASSWORD = "door-s3cret-pw"  # noqa: S105 - a test camera's login
TOKEN = "RelayOutputToken_1"


async def _history(camera: Any) -> list[dict[str, Any]]:
    return list(camera.state()["relay_history"])


async def _wait(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def door_world(settings_factory, aiohttp_client, camsim_factory):  # type: ignore[no-untyped-def]
    """A world (tests/web/conftest.py) plus two camsim intercoms adopted into Site A: one whose
    relay takes Monostable, one that only knows Bistable."""
    from vms.app import create_app
    from web.keys import GATEWAY, SERVICES

    fleet = await camsim_factory(count=2, rtsp=False, password=PASSWORD,
                                 per_camera=[{"relay_monostable": True},
                                             {"relay_monostable": False}])
    app = create_app(settings_factory(**{"intercom.pulses_per_minute": 2}),
                     start_recorder=False)
    client = await aiohttp_client(app)
    site_a, site_b, cam_a, cam_b = await app[GATEWAY].write(seed_world, app)
    world = World(client=client, app=app, site_a=site_a, site_b=site_b, camera_a=cam_a,
                  camera_b=cam_b)
    onboarding = app[SERVICES]["onboarding"]
    ids = []
    for camera in fleet.cameras:
        result = await onboarding.adopt(None, camera.onvif_url, camera.username, PASSWORD,
                                        site_id=site_a)
        ids.append(result.camera_id)
    return world, fleet.cameras, ids


async def test_pulse_monostable_and_fallback_rights_limit_and_audit(door_world) -> None:  # type: ignore[no-untyped-def]
    world, (mono_cam, bi_cam), (mono_id, bi_id) = door_world
    client = world.client

    # relays were listed at adoption, with what each supports
    token = await world.login("viewer1")
    resp = await client.get(f"/api/v1/cameras/{mono_id}/relays")
    body = await resp.json()
    assert resp.status == 200 and body["pulse_s"] == 1
    assert [(r["token"], r["monostable"]) for r in body["relays"]] == [(TOKEN, True)]
    resp = await client.get(f"/api/v1/cameras/{bi_id}/relays")
    assert [(r["token"], r["monostable"]) for r in (await resp.json())["relays"]] == \
        [(TOKEN, False)]

    # monostable: one SetRelayOutputSettings, then active; the camera itself goes back
    started = time.monotonic()
    resp = await client.post(f"/api/v1/cameras/{mono_id}/relays/{TOKEN}/pulse",
                             headers={"X-CSRF-Token": token})
    result = await resp.json()
    answered_s = time.monotonic() - started
    assert resp.status == 200, result
    assert result["method"] == "monostable" and result["pulse_s"] == 1
    assert mono_cam.state()["relay_settings"][TOKEN] == {"mode": "Monostable", "delay_s": 1.0,
                                                          "idle_state": "closed"}
    await _wait(lambda: len(mono_cam.relay_history) >= 2, 3, "the monostable relay to drop")
    hist = await _history(mono_cam)
    assert [(h["state"], h["by"]) for h in hist] == [("active", "soap"), ("inactive", "timer")]
    assert 0.9 <= (hist[1]["at_us"] - hist[0]["at_us"]) / 1e6 <= 1.5
    assert answered_s < 0.9, "a monostable pulse answers at once"

    # fallback: the server sets it active, then inactive after the pulse
    resp = await client.post(f"/api/v1/cameras/{bi_id}/relays/{TOKEN}/pulse",
                             headers={"X-CSRF-Token": token})
    result = await resp.json()
    assert resp.status == 200, result
    assert result["method"] == "active_inactive" and result["released"] is True
    hist = await _history(bi_cam)
    assert [(h["state"], h["by"]) for h in hist] == [("active", "soap"), ("inactive", "soap")]
    assert 0.9 <= (hist[1]["at_us"] - hist[0]["at_us"]) / 1e6 <= 1.6
    assert bi_cam.state()["relays"][TOKEN] == "inactive"
    assert bi_cam.state()["relay_settings"][TOKEN]["mode"] == "Bistable"

    # another site's camera does not exist for a viewer of Site A; an unknown relay is a 404
    resp = await client.post(f"/api/v1/cameras/{world.camera_b}/relays/{TOKEN}/pulse",
                             headers={"X-CSRF-Token": token})
    assert resp.status == 404
    resp = await client.post(f"/api/v1/cameras/{bi_id}/relays/Nope_9/pulse",
                             headers={"X-CSRF-Token": token})
    assert resp.status == 404
    token_b = await world.login("viewer_b")
    resp = await client.post(f"/api/v1/cameras/{mono_id}/relays/{TOKEN}/pulse",
                             headers={"X-CSRF-Token": token_b})
    assert resp.status == 404
    # operators watch and move cameras but open no doors
    token_op = await world.login("operator1")
    resp = await client.post(f"/api/v1/cameras/{mono_id}/relays/{TOKEN}/pulse",
                             headers={"X-CSRF-Token": token_op})
    assert resp.status == 403

    # the relay was reset to Bistable behind our back (its web page): still a pulse, not an
    # open door — the mode is sent with every pulse
    mono_cam.state_model.relays[0].mode = "Bistable"
    token = await world.login("viewer1")
    resp = await client.post(f"/api/v1/cameras/{mono_id}/relays/{TOKEN}/pulse",
                             headers={"X-CSRF-Token": token})
    assert resp.status == 200
    await _wait(lambda: len(mono_cam.relay_history) >= 4, 3, "the reset relay to drop")
    assert [h["by"] for h in await _history(mono_cam)][2:] == ["soap", "timer"]

    # the rate limit: two a minute per user and camera (this test's setting); the third is 429
    resp = await client.post(f"/api/v1/cameras/{mono_id}/relays/{TOKEN}/pulse",
                             headers={"X-CSRF-Token": token})
    assert resp.status == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert "at most 2 a minute" in (await resp.json())["error"]["message"]
    assert len(mono_cam.relay_history) == 4, "the refused pulse never reached the camera"
    await world.login("admin1")  # another user has a count of their own
    resp = await client.post(f"/api/v1/cameras/{mono_id}/relays/{TOKEN}/pulse",
                             headers={"X-CSRF-Token": world.csrf["admin1"]})
    assert resp.status == 200

    # every attempt is audited, failures included
    from web.keys import GATEWAY

    def audit_rows() -> list[tuple[str, str, dict[str, Any]]]:
        return [(r.username, r.outcome, json.loads(r.detail)) for r in
                m.AuditLog.select().where(m.AuditLog.action == "door_release")
                .order_by(m.AuditLog.id)]

    rows = await world.app[GATEWAY].read(audit_rows)
    assert [(u, o) for u, o, _ in rows] == [
        ("viewer1", "ok"), ("viewer1", "ok"), ("viewer1", "not_found"), ("viewer1", "not_found"),
        ("viewer_b", "not_found"), ("viewer1", "ok"), ("viewer1", "rate_limited"),
        ("admin1", "ok")]
    assert rows[0][2]["method"] == "monostable" and rows[1][2]["method"] == "active_inactive"
    assert rows[6][2]["retry_after_s"] >= 1


async def test_the_release_is_guaranteed_on_cancel_and_shutdown(door_world) -> None:  # type: ignore[no-untyped-def]
    from onvif_bridge.doors import DoorService
    from web.keys import CLOCK, GATEWAY, SERVICES

    world, (_, bi_cam), (_, bi_id) = door_world
    onboarding = world.app[SERVICES]["onboarding"]
    doors = DoorService(onboarding, world.app[CLOCK], pulse_s=2, ring_s=30,
                        pulses_per_minute=10)

    def active() -> bool:
        return bool(bi_cam.state()["relays"][TOKEN] == "active")

    async def pulse_until_active() -> asyncio.Future[Any]:
        task = asyncio.ensure_future(doors.pulse(None, bi_id, TOKEN, actor="test"))
        await _wait(active, 5, "the relay to be active")
        return task

    # the caller gives up (a closed request): the pulse goes on, released on time and audited
    task = await pulse_until_active()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert active()
    await _wait(lambda: not active(), 3, "the relay released after the pulse")
    hist = await _history(bi_cam)
    assert 1.9 <= (hist[1]["at_us"] - hist[0]["at_us"]) / 1e6 <= 2.6

    # the pulse's own task is cancelled (an event loop going away): released at once
    task = await pulse_until_active()
    inner = [t for t in doors._tasks if t is not task]
    assert inner
    for t in inner:
        t.cancel()
    await _wait(lambda: not active(), 1.5, "the relay released after the cancel")
    with pytest.raises(asyncio.CancelledError):
        await task

    # the server stops mid-pulse: the pulse is cut short, released before stop() returns
    task = await pulse_until_active()
    started = time.monotonic()
    await doors.stop()
    assert not active() and time.monotonic() - started < 1.5
    result = await task
    assert result["released"] is True and result["method"] == "active_inactive"
    assert [(h["state"], h["by"]) for h in await _history(bi_cam)] == \
        [("active", "soap"), ("inactive", "soap")] * 3

    def outcomes() -> list[str]:
        return [r.outcome for r in m.AuditLog.select().where(m.AuditLog.action == "door_release")
                .order_by(m.AuditLog.id)]

    await _wait(lambda: True, 0, "")
    assert await world.app[GATEWAY].read(outcomes) == ["ok", "cancelled", "ok"]
