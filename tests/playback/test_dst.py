"""The autumn DST change in the site's zone (Europe/Berlin, 2026-10-25 03:00 CEST → 02:00 CET):
"02:30 local" happens twice; each reading (with its offset) maps to its own UTC hour, in the timeline
and in the playlist. Index rows are built directly (no hour of recording needed), on both engines."""

from __future__ import annotations

from datetime import datetime

from tests.playback.test_timeline_api import parse_playlist, pdt_us
from tests.web.conftest import World
from vms.clock import datetime_to_us, to_local
from vms.db import models as m

MIN_US = 60_000_000


def utc(text: str) -> int:
    return datetime_to_us(datetime.fromisoformat(text))


async def seed(world: World) -> tuple[int, int]:
    """One-minute segments 00:00–02:00 UTC with a camera_lost gap 00:45–01:15 UTC."""
    gap_start, gap_end = utc("2026-10-25T00:45:00+00:00"), utc("2026-10-25T01:15:00+00:00")

    def write() -> tuple[int, int]:
        cam = world.camera_b
        runs = [m.Run.create(camera=cam, start_us=utc("2026-10-25T00:00:00+00:00"), end_us=gap_start,
                             end_reason="camera_lost"),
                m.Run.create(camera=cam, start_us=gap_end, end_us=utc("2026-10-25T02:00:00+00:00"),
                             end_reason="shutdown")]
        rows = []
        t = utc("2026-10-25T00:00:00+00:00")
        while t < utc("2026-10-25T02:00:00+00:00"):
            if not gap_start <= t < gap_end:
                run = runs[0] if t < gap_start else runs[1]
                rows.append({"camera": cam, "stream": "main", "run": run, "volume": "main",
                             "path": f"{cam}/dst/{t}.mp4", "start_us": t, "end_us": t + MIN_US,
                             "duration_us": MIN_US, "size_bytes": 1000})
            t += MIN_US
        m.Segment.insert_many(rows).execute()
        return runs[0].id, runs[1].id

    from web.keys import GATEWAY

    return await world.app[GATEWAY].write(write)


async def test_half_past_two_twice(world: World) -> None:
    run1, run2 = await seed(world)
    await world.login("admin1")
    first = "2026-10-25T02:30:00+02:00"   # CEST: 00:30 UTC
    second = "2026-10-25T02:30:00+01:00"  # CET:  01:30 UTC
    assert utc(second) - utc(first) == 3_600_000_000
    assert to_local(utc(first), "Europe/Berlin").strftime("%H:%M") == "02:30"
    assert to_local(utc(second), "Europe/Berlin").strftime("%H:%M") == "02:30"
    base = f"/api/v1/cameras/{world.camera_b}"
    for local, expected_utc, run in ((first, "2026-10-25T00:30:00+00:00", run1),
                                     (second, "2026-10-25T01:30:00+00:00", run2)):
        start = utc(local)
        resp = await world.client.get(f"{base}/timeline",
                                      params={"from": local, "to": str(start + 5 * MIN_US)})
        assert resp.status == 200, await resp.text()
        data = await resp.json()
        assert data["timezone"] == "Europe/Berlin"
        assert data["spans"] == [{"start_us": utc(expected_utc), "end_us": utc(expected_utc) + 5 * MIN_US,
                                  "run": run}]
        resp = await world.client.get(f"{base}/playlist.m3u8",
                                      params={"from": local, "to": str(start + 5 * MIN_US)})
        assert resp.status == 200, await resp.text()
        items = parse_playlist(await resp.text())
        assert len(items) == 5
        assert pdt_us(items[0]["pdt"]) == utc(expected_utc)
        assert items[0]["pdt"] == expected_utc.replace("+00:00", ".000Z")


async def test_the_local_hour_from_2_to_3_exists_twice(world: World) -> None:
    await seed(world)
    await world.login("admin1")
    base = f"/api/v1/cameras/{world.camera_b}"
    # 02:00–03:00 CEST (00:00–01:00 UTC): recorded until the gap at 00:45 UTC (02:45 CEST)
    resp = await world.client.get(f"{base}/timeline", params={
        "from": "2026-10-25T02:00:00+02:00", "to": "2026-10-25T03:00:00+02:00"})
    data = await resp.json()
    assert [(s["start_us"], s["end_us"]) for s in data["spans"]] == [
        (utc("2026-10-25T00:00:00+00:00"), utc("2026-10-25T00:45:00+00:00"))]
    assert [(g["start_us"], g["end_us"], g["reason"]) for g in data["gaps"]] == [
        (utc("2026-10-25T00:45:00+00:00"), utc("2026-10-25T01:00:00+00:00"), "camera_lost")]
    # 02:00–03:00 CET (01:00–02:00 UTC): the gap ends at 02:15 CET
    resp = await world.client.get(f"{base}/timeline", params={
        "from": "2026-10-25T02:00:00+01:00", "to": "2026-10-25T03:00:00+01:00"})
    data = await resp.json()
    assert [(g["start_us"], g["end_us"], g["reason"]) for g in data["gaps"]] == [
        (utc("2026-10-25T01:00:00+00:00"), utc("2026-10-25T01:15:00+00:00"), "camera_lost")]
    assert [(s["start_us"], s["end_us"]) for s in data["spans"]] == [
        (utc("2026-10-25T01:15:00+00:00"), utc("2026-10-25T02:00:00+00:00"))]
    # the whole local day is 25 hours; the playlist over it lists every recorded minute once
    day_from, day_to = "2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"
    assert utc(day_to) - utc(day_from) == 25 * 3_600_000_000
    resp = await world.client.get(f"{base}/playlist.m3u8", params={"from": day_from, "to": day_to})
    items = parse_playlist(await resp.text())
    assert len(items) == 90
    pdts = [pdt_us(i["pdt"]) for i in items]
    assert pdts == sorted(set(pdts))
    jumps = [b - a for a, b in zip(pdts, pdts[1:], strict=False) if b - a != MIN_US]
    assert jumps == [31 * MIN_US]  # the gap, once
