"""A running server's ``GET /api/v1/storage`` and storage page say which volume cannot be recorded
to and why (the recorder's volume health: marker files), not only what the file system says."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from recorder.volumes import database_uuid, mark_volume
from tests.core.test_serve import free_port
from tests.serve_process import ServeProcess
from vms.auth import Accounts
from vms.clock import SystemClock
from vms.config import load_settings
from vms.db.gateway import Gateway

PASSWORD = "storage-state-pw-1"


@pytest.mark.slow
async def test_unmarked_volume_is_named_in_storage_api_and_page(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "disk1").mkdir()
    (tmp_path / "disk2").mkdir()  # an empty mount point: the disk is not mounted
    config = tmp_path / "vms.toml"
    config.write_text(f'data_dir = "data"\n[server]\nport = {port}\n'
                      '[[storage.volumes]]\nname = "disk1"\npath = "disk1"\n'
                      '[[storage.volumes]]\nname = "disk2"\npath = "disk2"\n')
    settings = load_settings(config, env={})
    settings.data_dir.mkdir(parents=True)
    gw = Gateway(settings.database_url)
    gw.migrate()
    db_uuid = gw.write_sync(database_uuid)
    assert mark_volume(settings.volumes[0], db_uuid, int(time.time() * 1e6))
    gw.write_sync(lambda: Accounts(SystemClock()).create_user("admin1", PASSWORD, "admin"))
    gw.close()

    server = ServeProcess(config, port)
    try:
        await server.start()
        http, _csrf = await server.session("admin1", PASSWORD)
        try:
            async with http.get("/api/v1/storage") as resp:
                assert resp.status == 200, await resp.text()
                data = await resp.json()
            by_name = {v["name"]: v for v in data["volumes"]}
            assert by_name["disk1"]["state"] == "ok" and by_name["disk1"]["error"] == ""
            assert by_name["disk2"]["state"] == "unmarked"
            assert "disk2" in by_name["disk2"]["error"]
            assert ".vms-volume.json" in by_name["disk2"]["error"]
            async with http.get("/storage", headers={"Accept-Language": "en"}) as resp:
                page = await resp.text()
            assert resp.status == 200
            assert by_name["disk2"]["error"] in page.replace("&#39;", "'")
        finally:
            await http.close()
    finally:
        await server.stop()
    assert not (tmp_path / "disk2" / ".vms-volume.json").exists()
    assert list((tmp_path / "disk2").iterdir()) == []  # nothing written to the bare mount point
