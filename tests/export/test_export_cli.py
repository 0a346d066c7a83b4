"""``vms export``: through a running test server with an API token, and locally on the database."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from pathlib import Path

import pytest

from tests.export.conftest import BASE_US, ExportWorld
from web.keys import ACCOUNTS, GATEWAY, SETTINGS


async def run_cli(*argv: str, stdin: bytes = b"") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vms", "export", *argv, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def check_outputs(output: Path, result: dict[str, object]) -> dict[str, object]:
    manifest_path = output.with_name(output.name + ".manifest.json")
    manifest = json.loads(manifest_path.read_text())
    digest = hashlib.sha256(output.read_bytes()).hexdigest()
    assert digest == manifest["file"]["sha256"] == result["sha256"]
    assert result["file"] == str(output) and result["manifest"] == str(manifest_path)
    assert result["signing_key_id"] == manifest["signature"]["key_id"] != ""
    return manifest


@pytest.mark.engines("sqlite")  # the CLI's HTTP side; the export API runs on both in test_export_api
async def test_cli_export_through_the_server(xworld: ExportWorld, tmp_path: Path) -> None:
    app = xworld.app
    token = await app[GATEWAY].write(app[ACCOUNTS].create_api_token, "operator1", "cli")
    url = str(xworld.client.make_url("/")).rstrip("/")
    output = tmp_path / "clip.mp4"
    rc, out, err = await run_cli(
        "--server", url, "--token", token, "--camera", str(xworld.cam_a2),
        "--from", str(BASE_US + 2_000_000), "--to", "2026-10-25T02:00:10+01:00",
        "-o", str(output), "--json")
    assert rc == 0, err
    result = json.loads(out)
    manifest = check_outputs(output, result)
    assert manifest["exported_by"]["username"] == "operator1"
    assert [g["reason"] for g in result["gaps"]] == ["recording stopped: camera_lost"]
    assert "100.0%" in err and "done" in err  # the progress bar on stderr

    # a camera of another site is refused with the server's reason
    rc, out, err = await run_cli(
        "--server", url, "--token", token, "--camera", str(xworld.cam_b),
        "--from", str(BASE_US), "--to", str(BASE_US + 1_000_000), "-o", str(tmp_path / "x.mp4"))
    assert rc == 1 and "404" in err, err
    assert not (tmp_path / "x.mp4").exists()

    # user name and password on stdin work too
    output2 = tmp_path / "clip2.mp4"
    rc, out, err = await run_cli(
        "--server", url, "--user", "operator1", "--password-stdin", "--camera",
        str(xworld.cam_a), "--from", str(BASE_US), "--to", str(BASE_US + 3_000_000),
        "-o", str(output2), "--json", "--quiet", stdin=b"correct-horse-9\n")
    assert rc == 0, err
    check_outputs(output2, json.loads(out))


async def test_cli_export_locally(xworld: ExportWorld, tmp_path: Path) -> None:
    settings = xworld.app[SETTINGS]
    config = tmp_path / "vms.toml"
    config.write_text(f'data_dir = "{settings.data_dir}"\n[database]\nurl = '
                      f'"{settings.database_url}"\n')
    output = tmp_path / "local.mp4"
    rc, out, err = await run_cli(
        "--config", str(config), "--camera", str(xworld.cam_a), "--camera", str(xworld.cam_a2),
        "--from", str(BASE_US + 1_000_000), "--to", str(BASE_US + 5_000_000), "-o", str(output),
        "--json")
    assert rc == 0, err
    manifest = check_outputs(output, json.loads(out))
    assert manifest["file"]["container"] == "zip"
    assert manifest["exported_by"]["username"].startswith("cli:")
