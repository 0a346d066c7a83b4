"""Encoder drift after a recording profile was applied, and snapshots of cameras added by bare RTSP
URL — against camsim cameras on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from onvif_bridge.errors import OnvifUnreachableError
from onvif_bridge.rtsp_frame import grab_jpeg
from tests.leakcheck import register_sensitive
from tests.onboarding.conftest import CAM_PASSWORD, api
from tests.web.conftest import World
from vms.app import SCHEDULER
from vms.config import Settings
from web.keys import SERVICES, SETTINGS

PROFILE = {"width": 1280, "height": 720, "fps": 20, "bitrate_kbps": 2048, "gop_s": 2}


async def adopt(world: World, camera: Any) -> int:
    resp = await api(world, "POST", "/api/v1/cameras", "installer1",
                     {"onvif_url": camera.info()["onvif_url"], "username": "admin",
                      "password": CAM_PASSWORD, "site_id": world.site_a})
    assert resp.status == 201, await resp.text()
    return int((await resp.json())["id"])


async def main_stream(world: World, camera_id: int) -> dict[str, Any]:
    resp = await api(world, "GET", f"/api/v1/cameras/{camera_id}", "installer1")
    assert resp.status == 200, await resp.text()
    return next(s for s in (await resp.json())["streams"] if s["kind"] == "main")


def change_behind_our_back(camera: Any, **changes: Any) -> None:
    """What the camera's own web page (or a firmware reset) would do to its main encoder."""
    encoder = camera.state_model.encoder("VideoEncoderToken_1")
    settings = {"width": encoder.width, "height": encoder.height, "quality": encoder.quality,
                "frame_rate_limit": encoder.frame_rate_limit,
                "encoding_interval": encoder.encoding_interval,
                "bitrate_limit_kbps": encoder.bitrate_limit_kbps,
                "gov_length": encoder.gov_length, "h264_profile": None, "name": None}
    encoder.apply(**{**settings, **changes})


async def test_encoder_drift_is_flagged_and_cleared_by_reapplying(
        world: World, camsim_factory: Any) -> None:
    fleet = await camsim_factory(count=1, password=CAM_PASSWORD, rtsp=False)
    camera = fleet.cameras[0]
    camera_id = await adopt(world, camera)
    main = await main_stream(world, camera_id)
    assert main["applied"] is None and main["drift"] == "" and main["checked_us"] is None
    resp = await api(world, "POST", f"/api/v1/cameras/{camera_id}/check-config", "installer1")
    assert resp.status == 200 and (await resp.json())["streams"] == []

    resp = await api(world, "POST", f"/api/v1/cameras/{camera_id}/configure", "installer1",
                     {"profile": PROFILE})
    assert resp.status == 200, await resp.text()
    accepted = (await resp.json())["accepted"]
    main = await main_stream(world, camera_id)
    assert main["applied"]["width"] == 1280 and main["applied"]["height"] == 720
    assert main["applied"]["bitrate_kbps"] == 2048
    assert main["applied"]["gov_length"] == accepted["gov_length"] == 40
    assert main["drift"] == "" and main["checked_us"] == main["applied"]["applied_us"]

    # nothing changed yet: a check finds no drift
    resp = await api(world, "POST", f"/api/v1/cameras/{camera_id}/check-config", "installer1")
    assert resp.status == 200, await resp.text()
    checked = (await resp.json())["streams"]
    assert [(s["kind"], s["drift"]) for s in checked] == [("main", "")]

    change_behind_our_back(camera, width=1920, height=1080, bitrate_limit_kbps=4096,
                           gov_length=100)
    resp = await api(world, "POST", f"/api/v1/cameras/{camera_id}/check-config", "installer1")
    assert resp.status == 200, await resp.text()
    result = (await resp.json())["streams"][0]
    diffs = {d["field"]: (d["applied"], d["current"]) for d in result["differences"]}
    assert diffs == {"width": (1280, 1920), "height": (720, 1080),
                     "bitrate_kbps": (2048, 4096), "gov_length": (40, 100)}
    assert "bitrate_kbps 2048 → 4096" in result["drift"] and "gov_length 40 → 100" in result["drift"]
    main = await main_stream(world, camera_id)
    assert main["drift"] == result["drift"] and main["checked_us"] > main["applied"]["applied_us"]
    # shown on the camera page
    resp = await api(world, "GET", f"/cameras/{camera_id}", "installer1")
    page = await resp.text()
    assert 'id="camera-encoder-drift"' in page and "gov_length 40 → 100" in page
    assert "Changed on the camera" in page
    # an operator may look but not check
    resp = await api(world, "POST", f"/api/v1/cameras/{camera_id}/check-config", "operator1")
    assert resp.status == 403

    # re-applying the profile clears the flag, and a later check agrees
    resp = await api(world, "POST", f"/api/v1/cameras/{camera_id}/configure", "installer1",
                     {"profile": PROFILE})
    assert resp.status == 200, await resp.text()
    assert (await main_stream(world, camera_id))["drift"] == ""
    resp = await api(world, "POST", f"/api/v1/cameras/{camera_id}/check-config", "installer1")
    assert (await resp.json())["streams"][0]["drift"] == ""
    resp = await api(world, "GET", f"/cameras/{camera_id}", "installer1")
    page = await resp.text()
    assert "Matches the applied recording profile" in page and "gov_length 40" not in page

    # the scheduled pass finds drift on every applied camera (here: a frame rate change)
    job = world.app[SCHEDULER].get_job("encoder_drift")
    assert job is not None and job.trigger.interval.total_seconds() == 15 * 60
    change_behind_our_back(camera, frame_rate_limit=10)
    counts = await world.app[SERVICES]["drift"].check_all()
    assert counts == {"checked": 1, "drifted": 1, "failed": 0}
    assert (await main_stream(world, camera_id))["drift"] == "fps 20 → 10"

    # a camera that does not answer is reported (424) and its last finding is kept
    await camera.stop()
    resp = await api(world, "POST", f"/api/v1/cameras/{camera_id}/check-config", "installer1")
    assert resp.status == 424, await resp.text()
    assert (await main_stream(world, camera_id))["drift"] == "fps 20 → 10"
    counts = await world.app[SERVICES]["drift"].check_all()
    assert counts == {"checked": 0, "drifted": 0, "failed": 1}


async def test_snapshot_of_a_camera_added_by_rtsp_url(world: World, camsim_factory: Any) -> None:
    fleet = await camsim_factory(count=1, password=CAM_PASSWORD)
    camera = fleet.cameras[0]
    resp = await api(world, "POST", "/api/v1/cameras", "installer1",
                     {"rtsp_url": camera.info()["rtsp"]["sub"], "username": "admin",
                      "password": CAM_PASSWORD, "site_id": world.site_a, "name": "Encoder box"})
    assert resp.status == 201, await resp.text()
    camera_id = (await resp.json())["id"]
    started = time.monotonic()
    resp = await api(world, "GET", f"/api/v1/cameras/{camera_id}/snapshot", "operator1")
    assert resp.status == 200, await resp.text()
    jpeg = await resp.read()
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9" and len(jpeg) > 1000
    assert time.monotonic() - started < 10
    page = await (await api(world, "GET", f"/cameras/{camera_id}", "installer1")).text()
    assert f"/api/v1/cameras/{camera_id}/snapshot" in page
    resp = await api(world, "POST", f"/api/v1/cameras/{camera_id}/check-config", "installer1")
    assert resp.status == 200 and (await resp.json())["streams"] == []

    # wrong credentials: told apart, and the password appears nowhere
    wrong = "not-the-pass-77"
    register_sensitive(wrong)
    resp = await api(world, "POST", "/api/v1/cameras", "installer1",
                     {"rtsp_url": camera.info()["rtsp"]["sub"], "username": "admin",
                      "password": wrong, "site_id": world.site_a, "name": "Wrong login"})
    wrong_id = (await resp.json())["id"]
    resp = await api(world, "GET", f"/api/v1/cameras/{wrong_id}/snapshot", "operator1")
    assert resp.status == 424
    body = await resp.text()
    assert "wrong user name or password" in body and wrong not in body
    assert CAM_PASSWORD not in body


async def test_grab_jpeg_is_bounded_when_the_stream_never_answers(world: World) -> None:
    """A socket that accepts and stays silent: the grab gives up in time, no ffmpeg left."""
    accepted: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings: Settings = world.app[SETTINGS]
    started = time.monotonic()
    try:
        with pytest.raises(OnvifUnreachableError) as info:
            await grab_jpeg(settings.ffmpeg_exe(), f"rtsp://127.0.0.1:{port}/main", "admin",
                            "silent-pass-1", label="mute", timeout_s=1.0)
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    assert time.monotonic() - started < 5
    assert "silent-pass-1" not in str(info.value) and "mute" in str(info.value)
