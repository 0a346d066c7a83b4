"""The recording status route and page: runs, gaps with reasons, site scoping."""

from __future__ import annotations

from tests.web.conftest import World, world  # noqa: F401  (fixture)
from vms.db import models as m
from web.keys import GATEWAY


async def test_recording_status_runs_and_gaps(world: World) -> None:  # noqa: F811
    gw = world.app[GATEWAY]
    cam = world.camera_a

    def seed() -> None:
        m.Run.create(camera=cam, stream="main", start_us=1_000_000, end_us=5_000_000,
                     end_reason="camera_lost")
        m.Run.create(camera=cam, stream="main", start_us=7_500_000, end_us=9_000_000,
                     end_reason="shutdown")
        m.Run.create(camera=cam, stream="sub", start_us=1_000_000, end_us=None)

    await gw.write(seed)
    await world.login("viewer1")
    resp = await world.client.get(f"/api/v1/cameras/{cam}/recording")
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert data["status"]["recorder_running"] is False
    assert data["status"]["state"] == "new"
    assert [r["end_reason"] for r in data["runs"]] == ["shutdown", "camera_lost", ""]
    assert data["gaps"] == [{"stream": "main", "start_us": 5_000_000, "end_us": 7_500_000,
                             "duration_us": 2_500_000, "reason": "camera_lost"}]
    page = await world.client.get(f"/cameras/{cam}/recording")
    assert page.status == 200
    text = await page.text()
    assert "camera_lost" in text and 'id="recording-gaps"' in text
    # reasons are shown as translated labels (the code stays in data-reason)
    assert '<td data-reason="camera_lost">connection to the camera lost</td>' in text
    ru = await (await world.client.get(f"/cameras/{cam}/recording",
                                       headers={"Accept-Language": "ru"})).text()
    assert '<td data-reason="camera_lost">связь с камерой потеряна</td>' in ru
    assert '<td data-reason="shutdown">сервер остановлен</td>' in ru
    camera_page = await (await world.client.get(f"/cameras/{cam}")).text()
    assert f'data-src="/api/v1/cameras/{cam}/recording"' in camera_page
    # a user of another site: not found, not forbidden
    await world.login("viewer_b")
    assert (await world.client.get(f"/api/v1/cameras/{cam}/recording")).status == 404
    assert (await world.client.get(f"/cameras/{cam}/recording")).status == 404


def test_gap_reason_labels() -> None:
    import contextvars

    from web.i18n import GAP_REASONS, activate, gap_reason, load_catalogues

    def in_russian() -> dict[str, str]:
        activate(load_catalogues()["ru"])
        return {code: gap_reason(code) for code in (*GAP_REASONS, "something_new")}

    ru = contextvars.copy_context().run(in_russian)
    assert ru["stall"] == "камера перестала передавать видео"
    assert ru["something_new"] == "something_new"
    assert all(label != code for code, label in ru.items() if code in GAP_REASONS)
    assert gap_reason("stall") == "camera stopped sending"
