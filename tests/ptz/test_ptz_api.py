"""PTZ through the HTTP API and the control WebSocket, against a camsim PTZ camera on loopback.

Checks on camsim's own state (its position integrates the velocity it was sent): a continuous
move turns the camera and a stop stops it; a move whose keep-alives stop is stopped by the server
within a second (HTTP and WebSocket), as is one whose WebSocket closes; the last operator to move
wins and the others are told; presets round-trip; relative moves; rights, site scope and audit.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from tests.ptz.conftest import PtzWorld, adopt, close_ws, next_state, ws_connect
from vms.db import models as m
from web.keys import GATEWAY


async def audit_ptz(ptz_world: PtzWorld) -> list[dict[str, Any]]:
    def read() -> list[dict[str, Any]]:
        rows = m.AuditLog.select().where(m.AuditLog.action == "ptz").order_by(m.AuditLog.id)
        return [{"username": r.username, "site_id": r.site_id, "target": r.target,
                 **json.loads(r.detail)} for r in rows]

    await asyncio.sleep(0.1)  # audit rows are written off the request's path
    return list(await ptz_world.world.app[GATEWAY].read(read))


async def test_move_stop_deadman_and_audit(ptz_world: PtzWorld) -> None:
    w = ptz_world
    resp = await w.api("GET", f"/api/v1/cameras/{w.camera_id}/ptz", "operator1")
    assert resp.status == 200, await resp.text()
    state = await resp.json()
    caps = state["capabilities"]  # read at adoption, from GetConfigurationOptions and GetNodes
    assert caps["continuous"] and caps["relative"] and caps["absolute"] and caps["presets"]
    assert caps["home"] and caps["max_presets"] == 100 and caps["profile_token"] == "Profile_1"
    assert caps["timeout_max_s"] == 600 and not state["moving"] and state["deadman_ms"] == 500

    # continuous move, kept alive by repeating it, then stop
    move = f"/api/v1/cameras/{w.camera_id}/ptz/move"
    held = time.monotonic()
    resp = await w.api("POST", move, "operator1", {"pan": 0.5, "tilt": -0.25})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["user"] == "operator1"
    assert w.ptz()["moving"]
    for _ in range(6):  # 0.1 s apart: well inside the 0.5 s dead-man time
        await asyncio.sleep(0.1)
        assert (await w.api("POST", move, "operator1", {"pan": 0.5, "tilt": -0.25})).status == 200
    resp = await w.api("POST", f"/api/v1/cameras/{w.camera_id}/ptz/stop", "operator1")
    assert resp.status == 200 and not (await resp.json())["moving"]
    held_s = time.monotonic() - held
    stopped = w.ptz()
    # moved for as long as it was held (0.5 a second), not beyond: well past the dead-man time
    assert not stopped["moving"] and 0.3 < stopped["pan"] <= 0.5 * held_s + 0.01, (stopped, held_s)
    assert stopped["tilt"] < -0.15
    await asyncio.sleep(0.3)
    assert w.ptz()["pan"] == stopped["pan"]  # it stays stopped

    # one move and no keep-alive: the server stops the camera within a second
    resp = await w.api("POST", move, "operator1", {"pan": -1})
    assert resp.status == 200
    started = time.monotonic()
    elapsed = await w.wait_for(lambda s: not s["moving"], 1.5, "dead-man stop")
    assert 0.4 <= time.monotonic() - started and elapsed < 1.0, elapsed
    assert [c["op"] for c in w.ptz()["calls"]][-2:] == ["ContinuousMove", "Stop"]

    rows = await audit_ptz(w)
    ends = [r for r in rows if r["op"] == "move_end"]
    assert [r["op"] for r in rows if r["op"] == "move"] == ["move", "move"]
    assert [r["reason"] for r in ends] == ["stopped", "keepalive_lost"]
    assert all(r["username"] == "operator1" and r["camera_id"] == w.camera_id
               and r["site_id"] == w.world.site_a for r in rows)
    assert ends[0]["duration_ms"] >= 500 and ends[0]["started_us"] > 0

    # clear errors: out of range, not a number, nothing to move
    for body, needle in (({"pan": 2}, "pan"), ({"zoom": "fast"}, "zoom"), ({}, "at least one")):
        resp = await w.api("POST", move, "operator1", body)
        assert resp.status == 400, body
        assert needle in (await resp.json())["error"]["message"], await resp.text()


async def test_websocket_hold_release_close_and_takeover(ptz_world_sqlite: PtzWorld) -> None:
    w = ptz_world_sqlite
    ws = await ws_connect(w, "operator1")
    other = await ws_connect(w, "installer1")
    try:
        assert not (await next_state(ws))["moving"]
        assert not (await next_state(other))["moving"]
        # hold with keep-alives for longer than the dead-man time: it keeps moving
        await ws.send_json({"type": "move", "pan": 1, "tilt": 0, "zoom": 0})
        assert (await next_state(ws))["mine"] is True
        seen = await next_state(other)  # the other operator sees who moves it
        assert seen["moving"] and seen["user"] == "operator1" and seen["mine"] is False
        for _ in range(6):
            await asyncio.sleep(0.15)
            await ws.send_json({"type": "keepalive"})
        assert w.ptz()["moving"]
        await ws.send_json({"type": "stop"})
        assert not (await next_state(ws))["moving"]
        assert not w.ptz()["moving"] and w.ptz()["pan"] > 0.8

        # keep-alives stop (the socket stays open: a phone that lost signal)
        await ws.send_json({"type": "move", "pan": -1})
        await next_state(ws)
        elapsed = await w.wait_for(lambda s: not s["moving"], 1.5, "dead-man stop over WS")
        assert elapsed < 1.0
        ended = await next_state(ws)
        assert ended["moving"] is False and ended["user"] == "operator1"

        # the last operator to move wins; the first one's release does not stop the other
        await ws.send_json({"type": "move", "tilt": 0.5})
        await next_state(ws)
        await other.send_json({"type": "move", "tilt": -0.5})
        taken = await next_state(ws)
        while taken["user"] != "installer1":
            taken = await next_state(ws)
        assert taken["moving"] and taken["mine"] is False
        await ws.send_json({"type": "stop"})
        await other.send_json({"type": "keepalive"})
        await asyncio.sleep(0.2)
        assert w.ptz()["moving"]
        # closing the holder's socket stops the camera at once
        await close_ws(other)
        await w.wait_for(lambda s: not s["moving"], 1.0, "stop on close")

        # the hard maximum: kept alive, but stopped after max_move_s all the same
        from onvif_bridge.ptz_control import PtzOptions
        from web.keys import SERVICES

        w.world.app[SERVICES]["ptz"].options = PtzOptions(max_move_s=0.6)
        await ws.send_json({"type": "move", "zoom": 0.5})
        started = time.monotonic()
        while w.ptz()["moving"] or time.monotonic() - started < 0.1:
            assert time.monotonic() - started < 1.5, "not stopped at the hard maximum"
            await ws.send_json({"type": "keepalive"})
            await asyncio.sleep(0.1)
        assert 0.5 < time.monotonic() - started < 1.0

        await ws.send_json({"type": "move", "pan": 3})
        error = await ws.receive_json(timeout=3)
        while error["type"] == "state":  # the state changes queued before it
            error = await ws.receive_json(timeout=3)
        assert error["type"] == "error" and "pan" in error["message"]
    finally:
        await close_ws(ws)
        await close_ws(other)
    reasons = [r["reason"] for r in await audit_ptz(w) if r["op"] == "move_end"]
    assert reasons == ["released", "keepalive_lost", "taken over by installer1",
                       "connection_closed", "max_duration"], reasons


async def test_presets_home_relative_rights_and_sites(ptz_world_sqlite: PtzWorld,
                                                      camsim_factory: Any) -> None:
    w = ptz_world_sqlite
    base = f"/api/v1/cameras/{w.camera_id}/ptz"
    resp = await w.api("POST", f"{base}/absolute", "installer1", {"pan": 0.5, "tilt": 0.2})
    assert resp.status == 200, await resp.text()
    resp = await w.api("POST", f"{base}/presets", "installer1", {"name": "Gate"})
    assert resp.status == 201, await resp.text()
    token = (await resp.json())["token"]
    assert w.ptz()["presets"] == {token: "Gate"}
    resp = await w.api("GET", f"{base}/presets", "installer1")
    assert (await resp.json())["presets"] == [{"token": token, "name": "Gate"}]
    # relative move (click-to-centre), then back to the preset
    resp = await w.api("POST", f"{base}/relative", "installer1", {"pan": -0.25, "tilt": 0.1})
    assert resp.status == 200
    assert abs(w.ptz()["pan"] - 0.25) < 1e-6 and abs(w.ptz()["tilt"] - 0.3) < 1e-6
    resp = await w.api("POST", f"{base}/presets/{token}/goto", "installer1")
    assert resp.status == 200 and abs(w.ptz()["pan"] - 0.5) < 1e-6
    # rename keeps the preset's position; remove
    await w.api("POST", f"{base}/absolute", "installer1", {"pan": -0.9, "tilt": 0})
    resp = await w.api("PUT", f"{base}/presets/{token}", "installer1", {"name": "Main gate"})
    assert resp.status == 200, await resp.text()
    assert w.ptz()["presets"] == {token: "Main gate"}
    await w.api("POST", f"{base}/home", "installer1")
    assert w.ptz()["pan"] == 0
    resp = await w.api("POST", f"{base}/presets/{token}/goto", "installer1")
    assert abs(w.ptz()["pan"] - 0.5) < 1e-6  # the renamed preset still points where it did
    resp = await w.api("PUT", f"{base}/home", "installer1")
    assert resp.status == 200
    await w.api("POST", f"{base}/absolute", "installer1", {"pan": 0, "tilt": 0})
    await w.api("POST", f"{base}/home", "installer1")
    assert abs(w.ptz()["pan"] - 0.5) < 1e-6
    resp = await w.api("DELETE", f"{base}/presets/{token}", "installer1")
    assert resp.status == 200 and w.ptz()["presets"] == {}
    resp = await w.api("POST", f"{base}/presets/nope/goto", "installer1")
    assert resp.status == 424  # the camera refused (ter:NoToken)
    resp = await w.api("GET", f"{base}/status", "installer1")
    assert abs((await resp.json())["pan"] - 0.5) < 1e-6
    # capabilities read again on demand, and stored
    await w.world.app[GATEWAY].write(lambda: m.Camera.update(ptz_caps="").where(
        m.Camera.id == w.camera_id).execute())
    resp = await w.api("POST", f"{base}/capabilities", "installer1")
    assert resp.status == 200 and (await resp.json())["capabilities"]["relative"]
    stored = await w.world.app[GATEWAY].read(lambda: m.Camera.get_by_id(w.camera_id).ptz_caps)
    assert json.loads(stored)["profile_token"] == "Profile_1"

    # a camera without PTZ: capabilities say so, moves are refused with a reason
    fixed = (await camsim_factory(count=1, password="ptz-Cam-pass-77", rtsp=False, ptz=False,
                                  seed="fixed", name_prefix="fixed")).cameras[0]
    fixed_id = await adopt(w.world, fixed)
    resp = await w.api("GET", f"/api/v1/cameras/{fixed_id}/ptz", "installer1")
    assert (await resp.json())["capabilities"] is None
    resp = await w.api("POST", f"/api/v1/cameras/{fixed_id}/ptz/move", "installer1", {"pan": 1})
    assert resp.status == 409 and "no PTZ" in (await resp.json())["error"]["message"]

    other = f"/api/v1/cameras/{w.world.camera_b}/ptz"
    for method, path, body in (("POST", f"{other}/move", {"pan": 1}), ("GET", other, None),
                               ("POST", f"{other}/presets/1/goto", None)):
        resp = await w.api(method, path, "installer1", body)
        assert resp.status == 404, (path, await resp.text())
    ops = [r["op"] for r in await audit_ptz(w)]
    for op in ("absolute_move", "preset_set", "relative_move", "preset_goto", "preset_rename",
               "home_goto", "home_set", "preset_remove"):
        assert op in ops, (op, ops)
    # rights: a viewer may watch but not steer; another site's camera does not exist
    for method, path, body in (("POST", f"{base}/move", {"pan": 1}), ("GET", base, None),
                               ("GET", f"{base}/presets", None), ("POST", f"{base}/stop", None)):
        assert (await w.api(method, path, "viewer1", body)).status == 403, path
    assert (await w.api("GET", f"{other}", "admin1")).status == 200  # it exists for the admin
