"""``vms discover`` and ``vms camera add|set|list`` in real processes against camsim cameras."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.onboarding.conftest import CAM_PASSWORD

REPO = Path(__file__).resolve().parents[2]


async def vms(*argv: str, cwd: Path, stdin: str = "",
              env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``vms ARGV`` in a child process, data in ``cwd/data``, ``env`` added to its environment."""
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("VMS_")}
    env["VMS_DATA_DIR"] = str(cwd / "data")
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(REPO), env.get("PYTHONPATH"))))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vms.cli", *argv, cwd=cwd, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.slow
async def test_discover_add_set(camsim_factory: Any, tmp_path: Path) -> None:
    fleet = await camsim_factory(count=2, password=CAM_PASSWORD)
    targets = [arg for camera in fleet.cameras for arg in ("--target", camera.info()["discovery"])]
    code, out, err = await vms("discover", *targets, "--timeout", "1", "--user", "admin",
                               "--password-stdin", "--json", cwd=tmp_path,
                               stdin=CAM_PASSWORD + "\n")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert sorted(r["mac"] for r in rows) == sorted(c.info()["mac"] for c in fleet.cameras)
    assert all(r["status"] == "ok" and r["model"] and r["profiles"] for r in rows)
    assert CAM_PASSWORD not in out + err

    code, out, err = await vms("discover", *targets[:2], "--timeout", "0.5", cwd=tmp_path)
    assert code == 0 and "found" in out, err

    code, out, err = await vms("discover", "--target", "10.0.0.0/8", cwd=tmp_path)
    assert code == 2 and "limit" in err

    code, out, err = await vms("site", "add", "Gatehouse", cwd=tmp_path)
    assert code == 0, err
    url = fleet.cameras[0].info()["onvif_url"]
    code, out, err = await vms("camera", "add", "--onvif", url, "--user", "admin",
                               "--password-stdin", "--site", "Gatehouse", "--json",
                               cwd=tmp_path, stdin=CAM_PASSWORD + "\n")
    assert code == 0, err
    added = json.loads(out)
    assert added["created"] and added["mac"] == fleet.cameras[0].info()["mac"]

    code, out, err = await vms("camera", "add", "--onvif", url, "--user", "admin",
                               "--password", "wrong-password", cwd=tmp_path)
    assert code == 2 and "wrong password" in err

    code, out, err = await vms("camera", "set", str(added["camera_id"]), "--resolution",
                               "1280x720", "--fps", "25", "--gop", "2", "--json", cwd=tmp_path)
    assert code == 0, err
    result = json.loads(out)
    assert result["accepted"]["width"] == 1280 and result["accepted"]["gov_length"] <= 50

    code, out, err = await vms("camera", "set", str(added["camera_id"]), "--gop", "5",
                               cwd=tmp_path)
    assert code == 2 and "gop_s" in err

    code, out, err = await vms("camera", "list", "--json", cwd=tmp_path)
    assert code == 0 and json.loads(out.splitlines()[0])["site"]["name"] == "Gatehouse"

    # a camera added by RTSP URL is renamed here; --site moves a camera (recordings with it)
    code, out, err = await vms("site", "add", "Courtyard 7", cwd=tmp_path)
    assert code == 0, err
    code, out, err = await vms("camera", "add", "--rtsp", fleet.cameras[1].info()["rtsp"]["sub"],
                               "--user", "admin", "--password-stdin", "--site", "Gatehouse",
                               "--json", cwd=tmp_path, stdin=CAM_PASSWORD + "\n")
    assert code == 0, err
    rtsp_id = json.loads(out)["camera_id"]
    code, out, err = await vms("camera", "set", str(rtsp_id), "--name", "Side gate", "--site",
                               "Courtyard 7", "--json", cwd=tmp_path)
    assert code == 0, err
    changed = json.loads(out)
    assert changed["renamed"]["name"] == "Side gate"
    assert changed["site"]["site_name"] == "Courtyard 7"
    assert changed["site"]["previous_site_id"] != changed["site"]["site_id"]
