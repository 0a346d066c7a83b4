"""``vms door list`` and ``vms door open`` (the CLI's ``main``, in a thread) against a camsim
intercom adopted into a SQLite database: the relay listed at adoption, a pulse that activates and
deactivates it, the audit record as ``cli:<user>``, and errors naming the camera."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

PASSWORD = "door-cli-pw-7"  # noqa: S105 - a test camera's login


async def _vms(capsys: Any, *args: str) -> tuple[int, str, str]:
    from vms.cli import main

    capsys.readouterr()
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def test_door_list_and_open(tmp_path: Path, settings_factory: Any, camsim_factory: Any,
                                  capsys: Any, monkeypatch: Any) -> None:
    from onvif_bridge.adopt import Onboarding
    from vms.db import models as m
    from vms.db.gateway import Gateway
    from vms.secrets import SecretBox

    fleet = await camsim_factory(count=1, rtsp=False, password=PASSWORD, relay_monostable=False)
    camera = fleet.cameras[0]
    settings = settings_factory()
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # settings_factory made it (the database)
    gateway = Gateway(settings.database_url)
    gateway.migrate()
    try:
        result = await Onboarding(gateway, SecretBox.from_key_file(settings.key_file)).adopt(
            None, camera.onvif_url, camera.username, PASSWORD)
    finally:
        gateway.close()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VMS_DATA_DIR", str(settings.data_dir))
    monkeypatch.delenv("VMS_CONFIG", raising=False)

    code, out, err = await _vms(capsys, "door", "list", "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["camera_id"], r["token"], r["monostable"]) for r in rows] == \
        [(result.camera_id, "RelayOutputToken_1", False)]

    code, out, err = await _vms(capsys, "door", "open", "--camera",
                                str(result.camera_id), "--json")
    assert code == 0, err
    done = json.loads(out)
    assert done["method"] == "active_inactive" and done["released"] is True
    assert [h["state"] for h in camera.relay_history] == ["active", "inactive"]

    code, out, err = await _vms(capsys, "door", "open", "--camera",
                                str(result.camera_id), "--relay", "Nope_1")
    assert code == 2 and "no relay output 'Nope_1'" in err
    code, out, err = await _vms(capsys, "door", "open", "--camera", "999")
    assert code == 2 and "no camera 999" in err

    gateway = Gateway(settings.database_url)
    try:
        audit = gateway.read_sync(lambda: [(r.username, r.outcome) for r in m.AuditLog.select()
                                           .where(m.AuditLog.action == "door_release")
                                           .order_by(m.AuditLog.id)])
    finally:
        gateway.close()
    assert [o for _, o in audit] == ["ok", "not_found"]
    assert all(u.startswith("cli:") for u, _ in audit)
