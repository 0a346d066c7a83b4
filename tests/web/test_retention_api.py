"""Retention policies over the API, the camera page's form and the CLI: camera → site → default
resolution, validation, rights, site scope, audit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.web.conftest import World
from vms.db import models as m
from web.keys import GATEWAY, SETTINGS

ROOT = Path(__file__).resolve().parents[2]


async def _put(world: World, username: str, path: str, body: Any) -> Any:
    csrf = await world.login(username)
    return await world.client.put(path, json=body, headers={"X-CSRF-Token": csrf})


async def test_camera_and_site_policies_resolve_and_are_audited(world: World) -> None:
    cam, site = world.camera_a, world.site_a
    await world.login("viewer1")
    resp = await world.client.get(f"/api/v1/cameras/{cam}/retention")
    assert resp.status == 200, await resp.text()
    view = await resp.json()
    assert view["effective"] == {"continuous_days": 30, "event_days": 90, "max_bytes": None}
    assert view["sources"] == {"continuous_days": "default", "event_days": "default",
                               "max_bytes": "default"}

    # the site says 14 days; the camera keeps events 60 days and caps its bytes
    resp = await _put(world, "installer1", f"/api/v1/sites/{site}/retention",
                      {"continuous_days": 14})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["changed"] == ["continuous_days"]
    resp = await _put(world, "installer1", f"/api/v1/cameras/{cam}/retention",
                      {"event_days": 60, "max_bytes": 5_000_000})
    assert resp.status == 200, await resp.text()
    view = await resp.json()
    assert view["effective"] == {"continuous_days": 14, "event_days": 60, "max_bytes": 5_000_000}
    assert view["sources"] == {"continuous_days": "site", "event_days": "camera",
                               "max_bytes": "camera"}
    assert view["changed"] == ["event_days", "max_bytes"]
    # null inherits again
    resp = await _put(world, "admin1", f"/api/v1/cameras/{cam}/retention", {"event_days": None})
    assert (await resp.json())["effective"]["event_days"] == 90

    # bad values are refused, naming the member
    for body, field in (({"continuous_days": -1}, "continuous_days"),
                        ({"max_bytes": 0}, "max_bytes"), ({"days": 3}, None),
                        ({"continuous_days": "7"}, "continuous_days")):
        resp = await _put(world, "admin1", f"/api/v1/cameras/{cam}/retention", body)
        assert resp.status == 400, (body, await resp.text())
        if field:
            assert field in (await resp.json())["error"]["message"]
    resp = await _put(world, "admin1", f"/api/v1/sites/{site}/retention", {"max_bytes": 5})
    assert resp.status == 400

    # rights and scope: an operator may not change it; another site's camera is not found
    resp = await _put(world, "operator1", f"/api/v1/cameras/{cam}/retention",
                      {"continuous_days": 1})
    assert resp.status == 403
    resp = await _put(world, "installer1", f"/api/v1/cameras/{world.camera_b}/retention",
                      {"continuous_days": 1})
    assert resp.status == 404
    resp = await _put(world, "installer1", f"/api/v1/sites/{world.site_b}/retention",
                      {"continuous_days": 1})
    assert resp.status == 404

    def audit_rows() -> list[tuple[str, dict[str, Any]]]:
        return [(r.username, json.loads(r.detail)) for r in m.AuditLog.select().where(
            m.AuditLog.action == "retention_change").order_by(m.AuditLog.id)]

    rows = await world.app[GATEWAY].read(audit_rows)
    assert [(u, d.get("changes")) for u, d in rows] == [
        ("installer1", {"continuous_days": [None, 14]}),
        ("installer1", {"event_days": [None, 60], "max_bytes": [None, 5_000_000]}),
        ("admin1", {"event_days": [60, None]})]


async def test_the_recording_settings_form_sets_the_camera_policy(world: World) -> None:
    cam = world.camera_a
    csrf = await world.login("installer1")
    resp = await world.client.get(f"/cameras/{cam}")
    assert resp.status == 200
    page = await resp.text()
    assert 'name="retention.continuous_days"' in page and 'name="retention.max_bytes"' in page
    resp = await world.client.post(f"/cameras/{cam}/recording-settings", data={
        "csrf_token": csrf, "recording_mode": "continuous", "retention.continuous_days": "7",
        "retention.event_days": "", "retention.max_bytes": "123456"}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    stored = await world.app[GATEWAY].read(lambda: m.Camera.get_by_id(cam))
    assert (stored.retention_continuous_days, stored.retention_event_days,
            stored.retention_max_bytes) == (7, None, 123456)
    resp = await world.client.post(f"/cameras/{cam}/recording-settings", data={
        "csrf_token": csrf, "retention.continuous_days": "seven"}, allow_redirects=False)
    assert resp.status == 400
    assert "continuous_days" in await resp.text()
    stored = await world.app[GATEWAY].read(lambda: m.Camera.get_by_id(cam))
    assert stored.retention_continuous_days == 7


def _vms(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vms.cli", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


async def test_cli_set_and_show(world: World, tmp_path: Path) -> None:
    settings = world.app[SETTINGS]
    config = tmp_path / "cli.toml"
    config.write_text(f'data_dir = "{settings.data_dir}"\n'
                      f'[database]\nurl = "{settings.database_url}"\n'
                      "[retention]\ncontinuous_days = 21\n")
    cam = world.camera_a
    done = _vms(config, "retention", "set", "--camera", str(cam), "--event-days", "45",
                "--max-bytes", "1000000", "--json")
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    assert view["effective"] == {"continuous_days": 21, "event_days": 45, "max_bytes": 1_000_000}
    done = _vms(config, "retention", "set", "--site", str(world.site_a), "--continuous-days",
                "3", "--json")
    assert done.returncode == 0, done.stderr
    done = _vms(config, "retention", "show", "--camera", str(cam), "--json")
    view = json.loads(done.stdout)
    assert view["effective"]["continuous_days"] == 3 and view["sources"]["continuous_days"] == "site"
    done = _vms(config, "retention", "set", "--camera", str(cam), "--no-max-bytes",
                "--event-days", "inherit")
    assert done.returncode == 0 and "no byte cap" in done.stdout, done.stdout + done.stderr
    done = _vms(config, "retention", "show", "--json")
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert {v["camera_id"] for v in lines} == {world.camera_a, world.camera_b}
    # errors name the option
    done = _vms(config, "retention", "set", "--site", str(world.site_a), "--max-bytes", "5")
    assert done.returncode == 2 and "--max-bytes" in done.stderr
    done = _vms(config, "retention", "set", "--camera", "999999", "--event-days", "3")
    assert done.returncode == 2 and "no camera 999999" in done.stderr
    done = _vms(config, "retention", "set", "--camera", str(cam), "--event-days", "99999")
    assert done.returncode == 2 and "--event-days" in done.stderr
