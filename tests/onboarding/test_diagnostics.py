"""``vms diagnostics``: the bug-report bundle, in real processes, against an adopted camsim camera.

The bundle must carry the facts a maintainer needs (versions, configuration, the camera's stored
interrogation, runs with end reasons, audit entries) and none of the secrets: no camera password
(not even where an ffmpeg error quoted a credentialed URL), no key file, no API token, no metrics
token, no database or MQTT password — checked against the run-wide secret registry too.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import pytest

from tests.leakcheck import SENSITIVE, register_sensitive
from tests.onboarding.conftest import CAM_PASSWORD
from tests.onboarding.test_cli_onboarding import vms
from vms.db import models as m
from vms.db.gateway import Gateway

METRICS_TOKEN = "metrics-Secret-9911"
MQTT_PASSWORD = "mq-Secret-5150"
PG_PASSWORD = "pg-Secret-7733"
ADMIN_PASSWORD = "admin-Secret-2468"
for _secret in (METRICS_TOKEN, MQTT_PASSWORD, PG_PASSWORD, ADMIN_PASSWORD):
    register_sensitive(_secret)


def _with_password(url: str) -> str:
    """A PostgreSQL URL with a password in it (trust auth ignores it; diagnostics must hide it)."""
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{PG_PASSWORD}@", 1)


def _runs_and_errors(camera_id: int, rtsp_main: str) -> None:
    """What a recorder leaves behind: a run that ended, one still open, and an ffmpeg error that
    quoted the credentialed URL in the camera's status (ffmpeg prints URLs as given)."""
    credentialed = rtsp_main.replace("rtsp://", f"rtsp://admin:{CAM_PASSWORD}@", 1)
    m.Run.create(camera=camera_id, stream="main", start_us=1_800_000_000_000_000,
                 end_us=1_800_000_060_000_000, end_reason="rtsp_timeout")
    m.Run.create(camera=camera_id, stream="main", start_us=1_800_000_070_000_000)
    m.Camera.update(status="error", status_reason=f"ffmpeg: {credentialed}: 401 Unauthorized "
                    f"(password {CAM_PASSWORD})").where(m.Camera.id == camera_id).execute()
    m.Export.create(camera_ids=json.dumps([camera_id]), from_us=1_800_000_000_000_000,
                    to_us=1_800_000_010_000_000, state="failed", created_us=1_800_000_100_000_000,
                    error=f"could not open {credentialed}")


@pytest.mark.slow
async def test_diagnostics_bundle(camsim_factory: Any, db_url: str, engine: str,
                                  tmp_path: Path) -> None:
    fleet = await camsim_factory(count=2, password=CAM_PASSWORD)
    url = _with_password(db_url) if engine == "postgresql" else db_url
    env = {"VMS_DATABASE_URL": url, "VMS_SERVER_METRICS_TOKEN": METRICS_TOKEN,
           "VMS_MQTT_URL": f"mqtt://broker-user:{MQTT_PASSWORD}@127.0.0.1:1883"}

    async def cli(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        return await vms(*argv, cwd=tmp_path, stdin=stdin, env=env)

    code, _, err = await cli("site", "add", "Gatehouse")
    assert code == 0, err
    added = []
    for camera in fleet.cameras:
        code, out, err = await cli("camera", "add", "--onvif", camera.info()["onvif_url"], "--user",
                                   "admin", "--password-stdin", "--site", "Gatehouse", "--json",
                                   stdin=CAM_PASSWORD + "\n")
        assert code == 0, err
        added.append(json.loads(out)["camera_id"])
    cam_id = added[0]
    code, _, err = await cli("recording", "set", str(cam_id), "--mode", "event", "--pre", "7")
    assert code == 0, err
    code, _, err = await cli("user", "add", "admin", "--admin", "--password-stdin",
                             stdin=ADMIN_PASSWORD + "\n")
    assert code == 0, err
    code, out, err = await cli("user", "token", "add", "admin", "diagnostics test", "--json")
    assert code == 0, err
    api_token = json.loads(out)["token"]
    register_sensitive(api_token)

    gateway = Gateway(db_url)
    try:
        gateway.write_sync(_runs_and_errors, cam_id, fleet.cameras[0].info()["rtsp"]["main"])
        stored = gateway.read_sync(lambda: m.Camera.get_by_id(cam_id))
        streams = gateway.read_sync(lambda: {s.kind: s.profile_token for s in
                                             m.CameraStream.select().where(
                                                 m.CameraStream.camera == cam_id)})
    finally:
        gateway.close()
    fernet_key = (tmp_path / "data" / "secret.key").read_text().strip()
    register_sensitive(fernet_key)
    assert stored.password_enc and stored.manufacturer and stored.model and stored.firmware

    bundle_file = tmp_path / "bundle.json"
    code, out, err = await cli("diagnostics", "--camera", str(cam_id), "--output",
                               str(bundle_file), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["cameras"] == 1 and summary["output"] == str(bundle_file)
    text = bundle_file.read_text()
    bundle = json.loads(text)

    # the facts
    versions = bundle["versions"]
    assert versions["python"] == platform.python_version()
    assert versions["ffmpeg"].startswith("ffmpeg version"), versions["ffmpeg"]
    assert versions["vms"] and versions["libraries"]["aiohttp"]
    assert bundle["database"]["engine"] == engine and bundle["database"]["migrations_applied"]
    assert bundle["config"]["server"]["metrics_token"] == "**REDACTED**"
    assert bundle["config"]["mqtt"]["url"] == "mqtt://***@127.0.0.1:1883"
    assert bundle["config"]["recording"]["segment_seconds"] == 60
    assert bundle["raw_soap"]["available"] is False
    assert bundle["server_running"] is False
    [camera] = bundle["cameras"]
    info = camera["interrogation"]
    assert (info["manufacturer"], info["model"], info["firmware"], info["mac"]) == (
        stored.manufacturer, stored.model, stored.firmware, fleet.cameras[0].info()["mac"])
    assert info["clock_offset_us"] == stored.clock_offset_us
    assert info["password"] == "**REDACTED**" and info["username"] == "**REDACTED**"
    by_kind = {s["kind"]: s for s in camera["streams"]}
    assert {k: s["profile_token"] for k, s in by_kind.items()} == streams
    assert by_kind["main"]["rtsp_url"].startswith("rtsp://127.0.0.1:")
    assert camera["recording"]["mode"] == "event" and camera["recording"]["event_pre_s"] == 7
    assert camera["recording"]["status"] == "error"
    assert "401 Unauthorized" in camera["recording"]["status_reason"]
    assert "rtsp://***@127.0.0.1:" in camera["recording"]["status_reason"]
    reasons = [r["end_reason"] for r in camera["recent_runs"]]
    assert reasons == ["recording", "rtsp_timeout"]
    assert camera["recent_end_reasons"] == {"rtsp_timeout": 1}
    assert camera["failed_exports"][0]["error"].startswith("could not open rtsp://***@")
    actions = {a["action"] for a in camera["recent_audit"]}
    assert {"camera_adopt", "camera_change"} <= actions, actions

    # no secret, by name and by the run-wide registry
    for secret in (CAM_PASSWORD, fernet_key, api_token, METRICS_TOKEN, MQTT_PASSWORD, PG_PASSWORD,
                   ADMIN_PASSWORD, stored.password_enc):
        assert secret not in text, f"{secret[:4]}… is in the bundle"
    leaks = sorted(s[:4] + "…" for s in SENSITIVE if s in text)
    assert not leaks, f"registered secrets in the bundle: {leaks}"

    # all cameras on standard output; an unknown camera is a clear error
    code, out, err = await cli("diagnostics")
    assert code == 0, err
    everything = json.loads(out)
    assert sorted(c["id"] for c in everything["cameras"]) == sorted(added)
    assert not [s for s in SENSITIVE | {api_token, fernet_key} if s in out]
    code, out, err = await cli("diagnostics", "--camera", "999999")
    assert code == 2 and "no camera 999999" in err, err
