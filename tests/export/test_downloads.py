"""Downloads of recorded footage (issue 11, items 11 and 12): every request for an export's file
is audited with the range it asked for — a suffix range (``bytes=-N``) or any other start too —
and nothing recorded (media, playlists, snapshots, exports, manifests) may stay in a browser's
cache after logout: ``Cache-Control: no-store`` on each such route."""

from __future__ import annotations

import json
from typing import Any

from tests.export.conftest import BASE_US, ExportWorld
from vms.db import models as m
from web.keys import GATEWAY


async def finished_export(world: ExportWorld, headers: dict[str, str]) -> int:
    resp = await world.client.post("/api/v1/exports", headers=headers, json={
        "camera_ids": [world.cam_a], "from": BASE_US + 1_000_000, "to": BASE_US + 5_000_000})
    assert resp.status == 201, await resp.text()
    export_id = int((await resp.json())["id"])
    state = await world.service.wait(export_id, 30)
    assert state["state"] == "done", state
    return export_id


async def download_records(world: ExportWorld) -> list[dict[str, Any]]:
    def rows() -> list[dict[str, Any]]:
        return [{"username": r.username, **json.loads(r.detail)} for r in m.AuditLog.select()
                .where(m.AuditLog.action == "export_download").order_by(m.AuditLog.id)]

    return await world.app[GATEWAY].read(rows)


async def test_every_download_request_is_audited_with_its_range(xworld: ExportWorld) -> None:
    headers = await xworld.login("operator1")
    export_id = await finished_export(xworld, headers)
    url = f"/api/v1/exports/{export_id}/file"
    whole = await (await xworld.client.get(url)).read()

    tail = await xworld.client.get(url, headers={"Range": "bytes=-1000"})
    assert tail.status == 206 and await tail.read() == whole[-1000:]
    rest = await xworld.client.get(url, headers={"Range": "bytes=1-"})
    assert rest.status == 206 and await rest.read() == whole[1:]

    records = await download_records(xworld)
    assert [r["range"] for r in records] == [None, "bytes=-1000", "bytes=1-"], records
    assert all(r["username"] == "operator1" and r["export_id"] == export_id for r in records)


async def test_recorded_media_snapshots_and_exports_are_never_cached(xworld: ExportWorld) -> None:
    headers = await xworld.login("operator1")
    export_id = await finished_export(xworld, headers)

    def first_segment() -> int:
        return int(m.Segment.select().where(m.Segment.camera == xworld.cam_a)
                   .order_by(m.Segment.start_us).first().id)

    segment_id = await xworld.app[GATEWAY].read(first_segment)
    cam = f"/api/v1/cameras/{xworld.cam_a}"
    requests = [
        (f"{cam}/media/{segment_id}", {}),
        (f"{cam}/media/{segment_id}?part=init", {}),
        (f"{cam}/media/{segment_id}?part=fragments", {"Range": "bytes=0-99"}),
        (f"{cam}/snapshot.jpg?at={BASE_US + 3_000_000}", {}),
        (f"{cam}/playlist.m3u8?from={BASE_US}&to={BASE_US + 10_000_000}", {}),
        (f"/api/v1/exports/{export_id}/file", {}),
        (f"/api/v1/exports/{export_id}/file", {"Range": "bytes=-100"}),
        (f"/api/v1/exports/{export_id}/manifest", {}),
    ]
    for url, extra in requests:
        resp = await xworld.client.get(url, headers=extra)
        assert resp.status in (200, 206), (url, resp.status, await resp.text())
        assert resp.headers.get("Cache-Control") == "no-store", (url, resp.headers)
