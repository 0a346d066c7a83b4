"""camsim control HTTP API, Fleet identities and run_sim's JSON lines."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json

import aiohttp
from onvif import ONVIFCamera

from camsim.cli import run_sim
from camsim.fleet import stable_mac
from camsim.pytest_plugin import raw_soap

TDS = "http://www.onvif.org/ver10/device/wsdl"
INFO_KEYS = {"name", "onvif_url", "discovery", "username", "password", "rtsp", "mac",
             "control_url"}


async def test_fleet_info_is_the_contract(camsim_factory) -> None:
    fleet = await camsim_factory(count=3, rtsp=False)
    infos = [c.info() for c in fleet.cameras]
    assert all(set(i) == INFO_KEYS for i in infos)
    assert [i["name"] for i in infos] == ["camsim-01", "camsim-02", "camsim-03"]
    assert len({i["onvif_url"] for i in infos}) == 3
    assert len({i["password"] for i in infos}) == 3
    assert len({i["mac"] for i in infos}) == 3
    assert infos[0]["mac"] == stable_mac("camsim", 0)
    assert all(i["onvif_url"].startswith("http://127.0.0.1:") for i in infos)
    assert set(infos[0]["rtsp"]) == {"main", "sub"}


async def test_event_fault_and_state_over_http(camsim_factory) -> None:
    fleet = await camsim_factory(count=1, rtsp=False, password="s3cret")
    cam = fleet.cameras[0]
    control = cam.info()["control_url"]
    onvif = ONVIFCamera("127.0.0.1", cam.http_port, cam.username, "s3cret")
    try:
        await onvif.update_xaddrs()
        manager = await onvif.create_pullpoint_manager(dt.timedelta(seconds=60), lambda: None)
        pullpoint = manager.get_service()
        await pullpoint.PullMessages({"MessageLimit": 100, "Timeout": dt.timedelta(0)})
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{control}/event", json={"type": "doorbell", "state": True}) as r:
                assert r.status == 200
            pulled = await pullpoint.PullMessages({"MessageLimit": 10,
                                                   "Timeout": dt.timedelta(seconds=2)})
            assert [m.Topic._value_1 for m in pulled.NotificationMessage] == [
                "tns1:Device/Trigger/DigitalInput"]
            async with http.post(f"{control}/event", json={"type": "plate", "plate": "123ABC02"}) as r:
                assert r.status == 200
            async with http.post(f"{control}/event", json={"type": "fire"}) as r:
                assert r.status == 400 and "unknown event" in (await r.json())["error"]

            async with http.get(f"{control}/state") as r:
                state = await r.json()
            assert state["subscriptions"] == 1
            assert state["inputs"] == {"DigitalInputToken_1": True}
            assert state["ptz"]["pan"] == 0
            assert state["relays"] == {"RelayOutputToken_1": "inactive"}
            assert state["clock_offset_s"] == 0

            async with http.post(f"{control}/fault", json={"kind": "slow_soap", "seconds": 0.3}) as r:
                assert r.status == 200
            loop = asyncio.get_running_loop()
            started = loop.time()
            status, _ = await raw_soap(cam.onvif_url, f'<GetSystemDateAndTime xmlns="{TDS}"/>')
            assert status == 200 and loop.time() - started >= 0.3
            async with http.post(f"{control}/fault", json={"kind": "slow_soap", "seconds": 0}) as r:
                assert r.status == 200

            async with http.post(f"{control}/fault", json={"kind": "bad_xml", "seconds": 5}) as r:
                assert r.status == 200
            status, body = await raw_soap(cam.onvif_url, f'<GetSystemDateAndTime xmlns="{TDS}"/>')
            assert b"</tds:Model></env:Body" in body
            async with http.post(f"{control}/fault", json={"kind": "clear"}) as r:
                assert r.status == 200
            status, body = await raw_soap(cam.onvif_url, f'<GetSystemDateAndTime xmlns="{TDS}"/>')
            assert status == 200 and body.endswith(b"</env:Envelope>")

            async with http.post(f"{control}/fault", json={"kind": "meteor"}) as r:
                assert r.status == 400
            async with http.post(f"{control}/fault", data=b"nope") as r:
                assert r.status == 400

            async with http.post(f"{control}/fault", json={"kind": "reboot", "seconds": 0.3}) as r:
                assert r.status == 200
            await asyncio.sleep(0.15)
            async with http.get(f"{control}/state") as r:  # control stays up while rebooting
                state = await r.json()
            assert state["available"] is False and state["subscriptions"] == 0
            for _ in range(30):
                await asyncio.sleep(0.1)
                if cam.state()["available"]:
                    break
            status, _ = await raw_soap(cam.onvif_url, f'<GetSystemDateAndTime xmlns="{TDS}"/>')
            assert status == 200
        await manager.shutdown()
    finally:
        await onvif.close()


async def test_set_clock_offset_method(camsim_factory) -> None:
    fleet = await camsim_factory(count=1, rtsp=False)
    cam = fleet.cameras[0]
    cam.set_clock_offset(-3600)
    assert cam.state()["clock_offset_s"] == -3600
    status, body = await raw_soap(cam.onvif_url, f'<GetHostname xmlns="{TDS}"/>',
                                  username=cam.username, password=cam.password)
    assert status == 401


async def test_run_sim_prints_json_lines_until_cancelled() -> None:
    out = io.StringIO()
    ready = asyncio.Event()
    task = asyncio.create_task(run_sim(2, "127.0.0.1", json_out=True, out=out, ready=ready,
                                       rtsp=False))
    await asyncio.wait_for(ready.wait(), 10)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["name"] for line in lines] == ["camsim-01", "camsim-02"]
    assert all(set(line) == INFO_KEYS for line in lines)
    status, _ = await raw_soap(lines[1]["onvif_url"], f'<GetSystemDateAndTime xmlns="{TDS}"/>')
    assert status == 200
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    try:
        await raw_soap(lines[1]["onvif_url"], f'<GetSystemDateAndTime xmlns="{TDS}"/>')
        raise AssertionError("camera still answering after run_sim was cancelled")
    except aiohttp.ClientError:
        pass


async def test_per_camera_options_override_the_fleet_defaults() -> None:
    from camsim.fleet import Fleet

    fleet = Fleet(2, password="fleet-pass-1", per_camera=[{"password": "own-pass-22"}], rtsp=False)
    assert [c.info()["password"] for c in fleet.cameras] == ["own-pass-22", "fleet-pass-1"]
