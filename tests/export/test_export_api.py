"""The export API on indexed segment files: files, manifests, gaps, Range, audit, access, DST."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tests.export.conftest import BASE_US, ExportWorld
from tests.export.export_helpers import media_duration_us
from vms.db import models as m
from web.keys import GATEWAY

GOP_US = 1_000_000


async def create(world: ExportWorld, headers: dict[str, str], **body: Any) -> Any:
    return await world.client.post("/api/v1/exports", json=body, headers=headers)


async def wait_done(world: ExportWorld, export_id: int) -> dict[str, Any]:
    state = await world.service.wait(export_id, timeout_s=30)
    assert state["state"] == "done", state
    return state


async def test_export_one_camera_file_manifest_range_audit(xworld: ExportWorld, tmp_path) -> None:
    headers = await xworld.login("operator1")
    from_us, to_us = BASE_US + 3_500_000, BASE_US + 12_300_000
    resp = await create(xworld, headers, camera_ids=[xworld.cam_a], **{"from": from_us,
                                                                       "to": to_us})
    assert resp.status == 201, await resp.text()
    export_id = (await resp.json())["id"]
    await wait_done(xworld, export_id)
    resp = await xworld.client.get(f"/api/v1/exports/{export_id}")
    status = await resp.json()
    assert status["state"] == "done" and status["progress"] == 1.0 and status["error"] == ""

    resp = await xworld.client.get(f"/api/v1/exports/{export_id}/manifest")
    assert resp.status == 200
    manifest = json.loads(await resp.text())
    cam = manifest["cameras"][0]
    assert cam["id"] == xworld.cam_a and cam["name"] == "Gate A"
    assert cam["site"] == {"id": cam["site"]["id"], "name": "Site A", "timezone": "Europe/Berlin"}
    assert manifest["requested"]["from_us"] == from_us and manifest["requested"]["to_us"] == to_us
    assert manifest["requested"]["from_iso"].endswith("+02:00")  # Berlin summer time
    actual = cam["actual"]
    assert from_us - GOP_US < actual["from_us"] <= from_us  # keyframe at or before the start
    assert actual["to_us"] == to_us
    assert cam["gaps"] == []
    assert cam["codecs"]["video"] == "h264" and cam["codecs"]["audio"] == "aac"
    assert manifest["exported_by"]["username"] == "operator1"
    assert manifest["server"]["version"]

    resp = await xworld.client.get(f"/api/v1/exports/{export_id}/file")
    assert resp.status == 200
    body = await resp.read()
    assert hashlib.sha256(body).hexdigest() == manifest["file"]["sha256"] == cam["sha256"]
    assert len(body) == manifest["file"]["size_bytes"]
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(body)
    duration = media_duration_us(clip)
    assert abs(duration - (actual["to_us"] - actual["from_us"])) <= 80_000, duration
    assert abs(duration - (to_us - from_us)) <= GOP_US
    # faststart: the moov box comes before mdat
    assert body.find(b"moov") < body.find(b"mdat")

    resp = await xworld.client.get(f"/api/v1/exports/{export_id}/file",
                                   headers={"Range": "bytes=100-1099"})
    assert resp.status == 206
    assert await resp.read() == body[100:1100]
    assert resp.headers["Content-Range"] == f"bytes 100-1099/{len(body)}"

    def audit_rows() -> list[tuple[str, str, Any]]:
        return [(r.action, r.username, json.loads(r.detail).get("range")) for r in
                m.AuditLog.select().where(m.AuditLog.action.startswith("export_"))
                .order_by(m.AuditLog.id)]

    rows = await xworld.app[GATEWAY].read(audit_rows)
    assert rows == [("export_create", "operator1", None), ("export_download", "operator1", None),
                    ("export_download", "operator1", "bytes=100-1099")]


async def test_gap_is_listed_and_wall_time_kept(xworld: ExportWorld, tmp_path) -> None:
    headers = await xworld.login("operator1")
    from_us, to_us = BASE_US + 5_000_000, BASE_US + 20_000_000
    resp = await create(xworld, headers, camera_ids=[xworld.cam_a2], **{"from": from_us,
                                                                        "to": to_us})
    export_id = (await resp.json())["id"]
    await wait_done(xworld, export_id)
    manifest = await (await xworld.client.get(f"/api/v1/exports/{export_id}/manifest")).json()
    gaps = manifest["cameras"][0]["gaps"]
    assert len(gaps) == 1, gaps
    gap = gaps[0]
    assert gap["start_us"] == xworld.gap_start_us
    assert gap["end_us"] == BASE_US + 15_000_000
    assert gap["reason"] == "recording stopped: camera_lost"
    body = await (await xworld.client.get(f"/api/v1/exports/{export_id}/file")).read()
    clip = tmp_path / "gap.mp4"
    clip.write_bytes(body)
    # the gap keeps its length in media time: media t = media_time_zero_us + t
    actual = manifest["cameras"][0]["actual"]
    assert actual["to_us"] == to_us and from_us - GOP_US < actual["from_us"] <= from_us
    assert abs(media_duration_us(clip) - (actual["to_us"] - actual["from_us"])) <= 80_000


async def test_several_cameras_make_a_zip(xworld: ExportWorld, tmp_path) -> None:
    import io
    import zipfile

    headers = await xworld.login("admin1")
    resp = await create(xworld, headers, camera_ids=[xworld.cam_a, xworld.cam_b],
                        **{"from": BASE_US + 2_000_000, "to": BASE_US + 6_000_000})
    export_id = (await resp.json())["id"]
    await wait_done(xworld, export_id)
    manifest = await (await xworld.client.get(f"/api/v1/exports/{export_id}/manifest")).json()
    body = await (await xworld.client.get(f"/api/v1/exports/{export_id}/file")).read()
    assert hashlib.sha256(body).hexdigest() == manifest["file"]["sha256"]
    assert manifest["file"]["container"] == "zip"
    assert manifest["file"]["size_bytes"] == len(body)
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert zf.testzip() is None  # every member's CRC (streamed: data descriptors)
        names = zf.namelist()
        assert names == [c["file"] for c in manifest["cameras"]]
        for cam in manifest["cameras"]:
            assert hashlib.sha256(zf.read(cam["file"])).hexdigest() == cam["sha256"]
    zones = [c["site"]["timezone"] for c in manifest["cameras"]]
    assert zones == ["Europe/Berlin", "Asia/Almaty"]
    assert manifest["cameras"][1]["actual"]["from_iso"].endswith("+05:00")


async def test_local_times_across_autumn_dst(xworld: ExportWorld, tmp_path) -> None:
    """Berlin falls back at 01:00Z on 2026-10-25: 02:59:55 (first, +02:00) to 02:00:05+01:00
    is 10 seconds, not an hour and ten seconds, and not negative."""
    headers = await xworld.login("operator1")
    resp = await create(xworld, headers, camera_ids=[xworld.cam_a],
                        from_local="2026-10-25T02:59:55", to_local="2026-10-25T02:00:05+01:00")
    assert resp.status == 201, await resp.text()
    export_id = (await resp.json())["id"]
    await wait_done(xworld, export_id)
    manifest = await (await xworld.client.get(f"/api/v1/exports/{export_id}/manifest")).json()
    req = manifest["cameras"][0]["requested"]
    assert req["from_us"] == BASE_US + 5_000_000 and req["to_us"] == BASE_US + 15_000_000
    assert req["from_iso"] == "2026-10-25T02:59:55+02:00"
    assert req["to_iso"] == "2026-10-25T02:00:05+01:00"
    # the skipped spring hour does not exist
    resp = await create(xworld, headers, camera_ids=[xworld.cam_a],
                        from_local="2026-03-29T02:30", to_local="2026-03-29T03:30")
    assert resp.status == 400
    assert "does not exist" in (await resp.json())["error"]["message"]


async def test_bad_requests(xworld: ExportWorld) -> None:
    headers = await xworld.login("operator1")
    for body in ({}, {"camera_ids": []}, {"camera_ids": ["x"]},
                 {"camera_ids": [xworld.cam_a], "from": BASE_US},
                 {"camera_ids": [xworld.cam_a], "from": BASE_US, "to": BASE_US},
                 {"camera_ids": [xworld.cam_a], "from": "yesterday", "to": BASE_US}):
        resp = await create(xworld, headers, **body)
        assert resp.status == 400, (body, resp.status)
    # nothing recorded there: the job fails with a reason a person can read
    resp = await create(xworld, headers, camera_ids=[xworld.cam_a],
                        **{"from": BASE_US - 100_000_000, "to": BASE_US - 50_000_000})
    state = await xworld.service.wait((await resp.json())["id"], timeout_s=10)
    assert state["state"] == "failed" and "nothing recorded" in state["error"]


async def test_access_only_own_exports_of_visible_cameras(xworld: ExportWorld) -> None:
    headers = await xworld.login("operator1")
    resp = await create(xworld, headers, camera_ids=[xworld.cam_a],
                        **{"from": BASE_US, "to": BASE_US + 4_000_000})
    export_id = (await resp.json())["id"]
    await wait_done(xworld, export_id)
    paths = [f"/api/v1/exports/{export_id}", f"/api/v1/exports/{export_id}/file",
             f"/api/v1/exports/{export_id}/manifest"]

    # a user of another site: cannot export Site A's camera nor see the export
    headers_b = await xworld.login("operator_b")
    resp = await create(xworld, headers_b, camera_ids=[xworld.cam_a],
                        **{"from": BASE_US, "to": BASE_US + 4_000_000})
    assert resp.status == 404
    resp = await create(xworld, headers_b, camera_ids=[xworld.cam_b, xworld.cam_a],
                        **{"from": BASE_US, "to": BASE_US + 4_000_000})
    assert resp.status == 404
    for path in paths:
        assert (await xworld.client.get(path)).status == 404, path
    resp = await xworld.client.post(f"/api/v1/exports/{export_id}/cancel", headers=headers_b)
    assert resp.status == 404
    assert (await (await xworld.client.get("/api/v1/exports")).json())["exports"] == []

    # a colleague on the same site does not see someone else's export either
    await xworld.login("operator2")
    for path in paths:
        assert (await xworld.client.get(path)).status == 404, path

    # a viewer has no export right
    await xworld.login("viewer1")
    assert (await xworld.client.get(paths[0])).status == 403
    assert (await xworld.client.get("/exports")).status == 403

    # an administrator sees everything
    await xworld.login("admin1")
    for path in paths:
        assert (await xworld.client.get(path)).status == 200, path
    listed = (await (await xworld.client.get("/api/v1/exports")).json())["exports"]
    assert [e["id"] for e in listed] == [export_id]

    # the owner, once the site is revoked, no longer sees it
    from web.keys import ACCOUNTS

    await xworld.app[GATEWAY].write(xworld.app[ACCOUNTS].revoke, "operator1", "Site A")
    await xworld.login("operator1")
    for path in paths:
        assert (await xworld.client.get(path)).status == 404, path


async def test_exports_page_lists_and_offers_cameras(xworld: ExportWorld) -> None:
    headers = await xworld.login("operator1")
    resp = await create(xworld, headers, camera_ids=[xworld.cam_a],
                        **{"from": BASE_US, "to": BASE_US + 2_000_000})
    export_id = (await resp.json())["id"]
    await wait_done(xworld, export_id)
    resp = await xworld.client.get("/exports", headers={"Accept-Language": "en"})
    text = await resp.text()
    assert resp.status == 200
    assert "Gate A" in text and "Yard A" in text and "Gate B" not in text
    assert f'href="/api/v1/exports/{export_id}/file"' in text
