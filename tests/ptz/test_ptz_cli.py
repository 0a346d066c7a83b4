"""``vms ptz`` in real processes against a camsim PTZ camera (adopted in-process into the same
SQLite database the commands open)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.onboarding.test_cli_onboarding import vms
from tests.ptz.conftest import CAM_PASSWORD


async def test_vms_ptz_move(camsim_factory: Any, tmp_path: Path) -> None:
    from onvif_bridge.adopt import Onboarding
    from vms.config import load_settings
    from vms.db import models as m
    from vms.db.gateway import Gateway
    from vms.secrets import SecretBox

    camera = (await camsim_factory(count=1, password=CAM_PASSWORD, rtsp=False)).cameras[0]
    settings = load_settings(None, env={}, overrides={"data_dir": tmp_path / "data"})
    settings.data_dir.mkdir(parents=True)
    gateway = Gateway(settings.database_url)
    try:
        gateway.migrate()
        onboarding = Onboarding(gateway, SecretBox.from_key_file(settings.key_file))
        camera_id = (await onboarding.adopt(None, camera.info()["onvif_url"], "admin",
                                            CAM_PASSWORD)).camera_id
    finally:
        gateway.close()

    code, out, err = await vms("ptz", "move", str(camera_id), "--pan", "0.5", "--zoom", "1",
                               "--seconds", "0.8", "--json", cwd=tmp_path)
    assert code == 0, err
    moved = json.loads(out)
    assert moved["before"]["pan"] == 0  # read with GetStatus before moving
    after = camera.state()["ptz"]
    assert not after["moving"] and 0.2 < after["pan"] < 0.9 and after["zoom"] > 0.4
    assert moved["after"]["pan"] == after["pan"]  # held 0.8 s: past the dead-man time

    gateway = Gateway(settings.database_url)
    try:
        rows = gateway.read_sync(lambda: [json.loads(r.detail) | {"user": r.username} for r in
                                          m.AuditLog.select().where(m.AuditLog.action == "ptz")])
    finally:
        gateway.close()
    assert [r["op"] for r in rows] == ["move", "move_end"]
    assert all(r["user"].startswith("cli:") for r in rows)
