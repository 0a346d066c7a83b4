"""``vms storage --json`` reports what the index and the disk hold; ``vms check`` reports the drift
between the index's bytes and the segment files' bytes per volume (real files, both engines)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.storage_seed import S, hold, record
from vms.clock import SystemClock
from vms.config import load_settings
from vms.db import models as m
from vms.db.gateway import Gateway
from vms.storage import DAY_US


def _vms(config: Path, *args: str) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "vms.cli", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def _world(db_url: str, tmp_path: Path) -> tuple[Path, Any, int, int]:
    config = tmp_path / "vms.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[database]\nurl = "{db_url}"\n'
                      f'[[storage.volumes]]\nname = "main"\npath = "{tmp_path / "disk1"}"\n'
                      f'max_bytes = 1000000\n'
                      f'[[storage.volumes]]\nname = "spare"\npath = "{tmp_path / "disk2"}"\n'
                      f'[[storage.volumes]]\nname = "usb"\npath = "{tmp_path / "unmounted"}"\n')
    settings = load_settings(config, env={})
    for volume in settings.volumes[:2]:
        volume.path.mkdir()
    gw = Gateway(settings.database_url)
    gw.migrate()
    now = SystemClock().now_us()

    def cameras() -> tuple[int, int]:
        site = m.Site.create(name="School", created_us=now)
        ids = [m.Camera.create(site=site, name=name, status_since_us=now, created_us=now,
                               updated_us=now).id for name in ("hall", "yard")]
        return ids[0], ids[1]

    hall, yard = gw.write_sync(cameras)
    return config, gw, hall, yard


def test_storage_json_reports_index_and_disk(db_url: str, tmp_path: Path) -> None:
    config, gw, hall, yard = _world(db_url, tmp_path)
    settings = load_settings(config, env={})
    main, spare, _usb = settings.volumes
    now = SystemClock().now_us()
    try:
        old = now - 2 * DAY_US
        gw.write_sync(record, main, hall, [(old, old + 60 * S, 3000), (old + 60 * S,
                                                                      old + 120 * S, 5000)])
        gw.write_sync(record, main, hall, [(now - 100 * S, now - 40 * S, 6000)])
        gw.write_sync(record, spare, yard, [(now - 100 * S, now - 40 * S, 7000)])
        gw.write_sync(hold, hall, old, old + 10 * S, "evidence 42")
    finally:
        gw.close()
    code, out, err = _vms(config, "storage", "--json")
    assert code == 0, err
    data = json.loads(out)
    vols = {v["name"]: v for v in data["volumes"]}
    assert vols["main"]["used_bytes"] == 14000 and vols["spare"]["used_bytes"] == 7000
    assert vols["main"]["max_bytes"] == 1_000_000 and vols["spare"]["max_bytes"] == 0
    assert vols["main"]["total_bytes"] == shutil.disk_usage(main.path).total
    assert vols["main"]["held_bytes"] == 3000
    assert [h["reason"] for h in vols["main"]["holds"]] == ["evidence 42"]
    assert vols["spare"]["write_bytes_per_s"] == round(7000 / 600, 1)
    # at 10 B/s, the cap (1,000,000 bytes, 14,000 used) is reached first
    assert vols["main"]["write_bytes_per_s"] == 10.0
    assert vols["main"]["seconds_to_full"] == (1_000_000 - 14_000) // 10
    # a volume whose disk is not mounted: said so, nothing created, the others still answered
    usb = vols["usb"]
    assert usb["free_bytes"] is None and usb["total_bytes"] is None
    assert str(tmp_path / "unmounted") in usb["error"] and "not mounted" in usb["error"]
    assert not (tmp_path / "unmounted").exists()
    assert usb["state"] != "ok" and vols["main"]["state"] == "unmarked"  # no `storage init` yet
    assert vols["main"]["next_purge_us"] is None
    cams = {c["name"]: c for c in data["cameras"]}
    assert cams["hall"]["used_bytes"] == 14000 and cams["hall"]["retained_from_us"] == old
    assert cams["hall"]["newest_us"] == now - 40 * S
    assert cams["yard"]["used_bytes"] == 7000
    # `status` is the same action; the text form names the figures
    code, text, err = _vms(config, "storage", "status")
    assert code == 0, err
    assert "volume main" in text and "cap 976.6 KiB" in text and "camera" in text
    assert "evidence" in text and "1 hold(s)" in text


def test_check_reports_drift_per_volume(db_url: str, tmp_path: Path) -> None:
    config, gw, hall, yard = _world(db_url, tmp_path)
    settings = load_settings(config, env={})
    main, spare, _usb = settings.volumes
    now = SystemClock().now_us()
    try:
        segs = gw.write_sync(record, main, hall, [(now - 120 * S, now - 60 * S, 3000),
                                                  (now - 60 * S, now, 5000)])
        gw.write_sync(record, spare, yard, [(now - 60 * S, now, 7000)])
    finally:
        gw.close()

    def check() -> dict[str, Any]:
        code, out, err = _vms(config, "check", "--json")
        assert out.strip(), err
        return {v["name"]: v for v in json.loads(out)["volumes"]}

    _vms(config, "storage", "init")  # volumes are walked only once marked for this database
    vols = check()
    assert vols["main"] == {"name": "main", "index_bytes": 8000, "disk_bytes": 8000,
                            "drift_bytes": 0}
    assert vols["spare"]["drift_bytes"] == 0 and vols["spare"]["disk_bytes"] == 7000

    # a file grew behind the index's back, another vanished
    with (main.path / segs[1].path).open("ab") as fh:
        fh.write(b"\0" * 1234)
    (main.path / segs[0].path).unlink()
    vols = check()
    assert vols["main"] == {"name": "main", "index_bytes": 8000, "disk_bytes": 5000 + 1234,
                            "drift_bytes": 1234 - 3000}
    assert vols["spare"]["drift_bytes"] == 0
    code, text, _ = _vms(config, "check")
    assert "volume main: segment files on disk 6234 bytes, index 8000 bytes (drift -1766)" in text
    # repaired: the vanished file's row is marked missing, so only the grown file differs
    _vms(config, "check", "--repair")
    vols = check()
    assert vols["main"]["index_bytes"] == 5000 and vols["main"]["drift_bytes"] == 1234
