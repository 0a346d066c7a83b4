"""``GET /api/v1/storage`` and its history: the figures match the index and the disk (real files,
both engines), are scoped by site, and the hourly sampling job stores samples."""

from __future__ import annotations

import asyncio
import shutil
import time

from tests.storage_seed import S, hold, record
from tests.web.conftest import World
from vms import audit
from vms.db import models as m
from vms.storage import DAY_US, HISTORY_KEEP_DAYS, store_samples
from web.keys import CLOCK, GATEWAY, SETTINGS

MiB = 1024 * 1024


def disk_bytes(world: World) -> int:
    volume = world.app[SETTINGS].volumes[0]
    return sum(p.stat().st_size for p in volume.path.rglob("*.mp4"))


async def seed(world: World) -> dict[str, object]:
    """Camera A: an old run 3 days ago (two segments, the second held) and one ending a minute
    ago; camera B: one segment, held. Retention purges audited 1 h and 2 days ago."""
    gw = world.app[GATEWAY]
    clock = world.app[CLOCK]
    volume = world.app[SETTINGS].volumes[0]
    now = clock.now_us()
    old = now - 3 * DAY_US
    a_old = await gw.write(record, volume, world.camera_a,
                           [(old, old + 60 * S, 1000), (old + 60 * S, old + 120 * S, 2000)])
    a_new = await gw.write(record, volume, world.camera_a, [(now - 120 * S, now - 60 * S, 6000)])
    b = await gw.write(record, volume, world.camera_b,
                       [(now - DAY_US, now - DAY_US + 60 * S, 4000)])
    hold_a = await gw.write(hold, world.camera_a, old + 70 * S, old + 80 * S, "burglary")
    hold_b = await gw.write(hold, world.camera_b, now - DAY_US, now - DAY_US + 10 * S, "fight")

    def purges() -> None:
        audit.record(clock, "retention.purge", username="retention", target="main",
                     detail={"reason": "age", "volume": "main", "segments": 3, "bytes": 5000})
        audit.record(clock, "retention.purge", username="retention", target="other",
                     detail={"reason": "space", "volume": "other", "segments": 1, "bytes": 7})
        m.AuditLog.create(at_us=now - 2 * DAY_US, username="retention", action="retention.purge",
                          detail='{"reason": "age", "volume": "main", "segments": 9, '
                                 '"bytes": 999999}')

    await gw.write(purges)
    return {"now": now, "a_old": a_old, "a_new": a_new, "b": b, "hold_a": hold_a,
            "hold_b": hold_b}


async def get_storage(world: World, username: str) -> dict:  # type: ignore[type-arg]
    await world.login(username)
    resp = await world.client.get("/api/v1/storage")
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def test_storage_matches_index_and_disk(world: World) -> None:
    seeded = await seed(world)
    from vms.app import SCHEDULER

    # a second hold over the same footage: listed, but its bytes are not counted twice
    start = seeded["a_old"][1].start_us  # type: ignore[index]
    hold_a2 = await world.app[GATEWAY].write(hold, world.camera_a, start + 1, start + 2, "again")
    data = await get_storage(world, "admin1")
    volume = world.app[SETTINGS].volumes[0]
    [vol] = data["volumes"]
    assert vol["name"] == "main" and vol["path"] == str(volume.path)
    assert vol["used_bytes"] == 1000 + 2000 + 6000 + 4000 == disk_bytes(world)
    usage = shutil.disk_usage(volume.path)
    assert vol["total_bytes"] == usage.total
    assert abs(vol["free_bytes"] - usage.free) < 64 * MiB  # others write to this disk meanwhile
    assert vol["max_bytes"] == 0 and vol["error"] == ""
    # only the segment that ended a minute ago falls within the last 10 minutes
    assert vol["write_bytes_per_s"] == 10.0
    assert vol["freed_bytes_24h"] == 5000 and vol["freed_segments_24h"] == 3
    assert vol["freed_by_reason_24h"] == {"age": 5000}
    assert vol["held_bytes"] == 2000 + 4000
    holds = {h["id"]: h for h in vol["holds"]}
    assert holds[seeded["hold_a"]]["bytes"] == 2000 and holds[seeded["hold_a"]]["segments"] == 1
    assert holds[seeded["hold_a"]]["camera_name"] == "Gate A"
    assert holds[seeded["hold_a"]]["reason"] == "burglary"
    assert holds[seeded["hold_b"]]["bytes"] == 4000
    assert holds[hold_a2]["bytes"] == 2000 and len(holds) == 3
    assert vol["next_purge_us"] is None  # no retention job scheduled

    cams = {c["id"]: c for c in data["cameras"]}
    a, b = cams[world.camera_a], cams[world.camera_b]
    a_old = seeded["a_old"]
    assert a["used_bytes"] == 9000 and b["used_bytes"] == 4000
    assert a["retained_from_us"] == a_old[0].start_us  # type: ignore[index]
    assert abs(a["retained_days"] - 3.0) < 0.01
    assert b["retained_from_us"] == seeded["b"][0].start_us  # type: ignore[index]

    # a missing file takes no space: the index says so after `vms check --repair`
    def mark_missing() -> None:
        m.Segment.update(state="missing").where(
            m.Segment.id == a_old[0].segment_id).execute()  # type: ignore[index]

    (volume.path / a_old[0].path).unlink()  # type: ignore[index]
    await world.app[GATEWAY].write(mark_missing)

    # the scheduled purge's next run, when a `retention` job exists
    scheduler = world.app[SCHEDULER]
    job = scheduler.add_job(time.time, "interval", hours=6, id="retention")
    try:
        data = await get_storage(world, "admin1")
    finally:
        scheduler.remove_job("retention")
    [vol] = data["volumes"]
    assert vol["used_bytes"] == 12000 == disk_bytes(world)
    assert vol["next_purge_us"] == int(job.next_run_time.timestamp() * S)
    a = {c["id"]: c for c in data["cameras"]}[world.camera_a]
    assert a["retained_from_us"] == a_old[1].start_us  # type: ignore[index]


async def test_storage_is_scoped_by_site(world: World) -> None:
    seeded = await seed(world)
    data = await get_storage(world, "viewer_b")
    assert [c["name"] for c in data["cameras"]] == ["Gate B"]
    assert data["volumes"] == []  # volume figures need manage_cameras
    resp = await world.client.get("/storage", headers={"Accept-Language": "en"})
    text = await resp.text()
    assert resp.status == 200 and "Gate B" in text and "Gate A" not in text
    assert "storage-chart" not in text
    resp = await world.client.get("/api/v1/storage/history")
    assert resp.status == 403

    # an installer of site A: the volume's held bytes count every hold, the list only site A's
    data = await get_storage(world, "installer1")
    assert [c["name"] for c in data["cameras"]] == ["Gate A"]
    [vol] = data["volumes"]
    assert vol["held_bytes"] == 6000
    assert [h["id"] for h in vol["holds"]] == [seeded["hold_a"]]
    resp = await world.client.get("/storage", headers={"Accept-Language": "en"})
    text = await resp.text()
    assert "Gate A" in text and "Gate B" not in text and "fight" not in text


async def test_sampling_job_stores_samples_and_history_answers(world: World) -> None:
    gw = world.app[GATEWAY]
    volume = world.app[SETTINGS].volumes[0]
    deadline = time.monotonic() + 20
    while not await gw.read(lambda: m.StorageSample.select().count()):
        assert time.monotonic() < deadline, "the storage_history job stored no sample at start"
        await asyncio.sleep(0.05)
    [sample] = await gw.read(lambda: list(m.StorageSample.select()))
    usage = shutil.disk_usage(volume.path)
    assert sample.volume == "main" and sample.total_bytes == usage.total
    assert abs(sample.free_bytes - usage.free) < 64 * MiB
    assert sample.used_bytes == 0  # nothing recorded yet

    await world.login("admin1")
    resp = await world.client.get("/api/v1/storage/history", params={"volume": "main",
                                                                     "days": "7"})
    assert resp.status == 200
    body = await resp.json()
    assert body["volume"] == "main" and body["days"] == 7
    assert body["samples"] == [{"at_us": sample.at_us, "used_bytes": 0,
                                "free_bytes": sample.free_bytes,
                                "total_bytes": sample.total_bytes}]
    resp = await world.client.get("/api/v1/storage/history", params={"volume": "nas"})
    assert resp.status == 404 and "'nas'" in (await resp.json())["error"]["message"]
    resp = await world.client.get("/api/v1/storage/history", params={"days": "31"})
    assert resp.status == 400

    # an hour later the next sample sees the recordings; samples older than 30 days are dropped
    await seed(world)
    later = sample.at_us + 3600 * S
    await gw.write(lambda: m.StorageSample.create(volume="main", at_us=later - 40 * DAY_US,
                                                  used_bytes=1, free_bytes=1, total_bytes=2))
    written = await gw.write(store_samples, later, {"main": (13000, 5, 10)})
    assert written == 1
    # a second sample within the hour is not taken
    assert await gw.write(store_samples, later + 60 * S, {"main": (13000, 5, 10)}) == 0
    rows = await gw.read(lambda: [(s.at_us, s.used_bytes) for s in m.StorageSample.select()
                                  .order_by(m.StorageSample.at_us)])
    assert rows == [(sample.at_us, 0), (later, 13000)]
    assert HISTORY_KEEP_DAYS == 30


async def test_storage_metrics(world: World) -> None:
    seeded = await seed(world)
    text = await (await world.client.get("/metrics")).text()
    assert 'vms_storage_used_bytes{volume="main"} 13000.0' in text
    assert 'vms_storage_free_bytes{volume="main"}' in text
    line = next(li for li in text.splitlines()
                if li.startswith(f'vms_recording_oldest_age_seconds{{camera_id="{world.camera_a}"}}'))
    age_s = float(line.split()[-1])
    expected = (world.app[CLOCK].now_us() - seeded["a_old"][0].start_us) / S  # type: ignore[index]
    assert abs(age_s - expected) < 30
