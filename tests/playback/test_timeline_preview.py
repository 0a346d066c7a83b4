"""Gap kinds on the timeline ("not recorded" vs a recording gap vs deleted by retention), their
labels in the user's language, and the timeline preview route (the keyframe at or before an instant,
small, cached, with playback's access rules)."""

from __future__ import annotations

import html
import io
import json
import re

import av
import numpy as np

from recorder.thumbnail import THUMB_WIDTH
from recorder.timeline import build_timeline, gap_kind
from tests.playback.recording import Recording
from vms.db.gateway import Gateway
from vms.db.models import Camera, PurgedRange, Run, Segment, Site

S = 1_000_000


def test_every_gap_has_a_kind_from_its_reason(db_url: str) -> None:
    """Before the first footage and outside a schedule: not recorded; a lost camera, a full disk,
    a stall inside a run, a stopped server: recording gaps; deleted by retention: purged."""
    gw = Gateway(db_url)
    gw.migrate()

    def seed() -> int:
        site = Site.create(name="s", created_us=0)
        cam = Camera.create(site=site, name="c", status_since_us=0, created_us=0, updated_us=0)
        layout = ((10, 20, "camera_lost", ((10, 14), (16, 20))), (22, 30, "schedule", ((22, 30),)),
                  (40, 50, "disk_full", ((40, 50),)), (60, 70, "shutdown", ((60, 70),)))
        for start, end, reason, segs in layout:
            run = Run.create(camera=cam, start_us=start * S, end_us=end * S, end_reason=reason)
            for s, e in segs:
                Segment.create(camera=cam, run=run, volume="main", path=f"{s}.mp4",
                               start_us=s * S, end_us=e * S, duration_us=(e - s) * S,
                               size_bytes=1)
        PurgedRange.create(camera=cam, start_us=0, end_us=5 * S)
        return int(cam.id)

    try:
        cam = gw.write_sync(seed)
        timeline = gw.read_sync(lambda: build_timeline(cam, 0, 80 * S, now_us=75 * S))
    finally:
        gw.close()
    gaps = [(g["start_us"] // S, g["end_us"] // S, g["reason"], g["kind"])
            for g in timeline.to_dict()["gaps"]]
    assert gaps == [
        (0, 5, "retention", "purged"), (5, 10, "not_recorded", "not_recorded"),
        (14, 16, "stall", "gap"), (20, 22, "camera_lost", "gap"),
        (30, 40, "schedule", "not_recorded"), (50, 60, "disk_full", "gap"),
        (70, 75, "shutdown", "gap")]  # the future (after now) is no gap at all
    assert [gap_kind(r) for r in ("crash_recovered", "missing", "recording", "handover")] == [
        "gap", "gap", "recording", "gap"]


async def test_recording_gaps_and_not_recorded_in_the_api_and_in_russian(
        recording: Recording, client_as) -> None:
    rec = recording
    client = await client_as("pb_viewer")
    first, last = rec.segments[0]["start_us"], rec.segments[-1]["end_us"]
    resp = await client.get(f"/api/v1/cameras/{rec.camera_id}/timeline",
                            params={"from": str(first - 5 * S), "to": str(last)})
    data = await resp.json()
    assert [(g["reason"], g["kind"]) for g in data["gaps"]] == [
        ("not_recorded", "not_recorded"), ("camera_lost", "gap"), ("camera_lost", "gap")]
    # the page gives the timeline every reason and kind in the user's language
    page = await client.get(f"/cameras/{rec.camera_id}/playback",
                            cookies={"vms_lang": "ru"}, headers={"Accept-Language": "ru"})
    text = await page.text()
    labels = json.loads(html.unescape(re.search(r"data-gap-labels='([^']*)'", text)[1]))  # type: ignore[index]
    assert labels["camera_lost"] == "связь с камерой потеряна"
    assert labels["kind:not_recorded"] == "Не записывалось"
    assert labels["kind:gap"] == "Пропуск записи"
    assert all(re.search("[а-я]", v) for v in labels.values()), labels


def keyframes(path) -> list[float]:  # type: ignore[no-untyped-def]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        base = stream.start_time or 0
        return sorted(float((p.pts - base) * stream.time_base) for p in container.demux(stream)
                      if p.is_keyframe and p.pts is not None)


def decoded_small(path, width: int, height: int) -> dict[float, np.ndarray]:  # type: ignore[no-untyped-def]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        base = stream.start_time or 0
        return {round(float((f.pts - base) * stream.time_base), 3):
                f.reformat(width=width, height=height).to_ndarray(format="gray").astype(float)
                for f in container.decode(stream)}


async def test_preview_is_the_keyframe_at_or_before_the_instant(recording: Recording,
                                                               client_as) -> None:
    rec = recording
    client = await client_as("pb_viewer")
    seg = rec.segments[4]
    path = rec.file_of(seg)
    keys = keyframes(path)
    assert len(keys) >= 1
    frames = None
    seen: dict[int, str] = {}
    for offset_us in (40_000, 480_000, 960_000, 990_000):
        at = seg["start_us"] + offset_us
        resp = await client.get(f"/api/v1/cameras/{rec.camera_id}/thumbnail.jpg",
                                params={"at": str(at)})
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"] == "image/jpeg"
        assert resp.headers["Cache-Control"] == "no-store"
        body = await resp.read()
        assert body[:2] == b"\xff\xd8" and len(body) < 30_000
        expected = max(k for k in keys if k <= offset_us / 1e6 + 1e-9)
        assert abs(float(resp.headers["X-Frame-Pts"]) - expected) < 1e-6
        frame_us = int(resp.headers["X-Frame-Time-Us"])
        assert frame_us <= at and abs(frame_us - (seg["start_us"] + round(expected * 1e6))) < 2
        seen[frame_us] = resp.headers["X-Cache"]
        with av.open(io.BytesIO(body)) as container:
            image = next(container.decode(video=0))
        assert image.width == THUMB_WIDTH
        gray = image.to_ndarray(format="gray").astype(float)
        if frames is None:
            frames = decoded_small(path, image.width, image.height)
        errors = {p: float(np.mean((f - gray) ** 2)) for p, f in frames.items()}
        assert min(errors, key=errors.__getitem__) == round(expected, 3)
    # one keyframe per GOP is decoded once: the later instants of that GOP are cache hits
    again = await client.get(f"/api/v1/cameras/{rec.camera_id}/thumbnail.jpg",
                             params={"at": str(seg["start_us"] + 500_000)})
    assert again.headers["X-Cache"] == "hit"
    assert set(seen.values()) <= {"hit", "miss"}


async def test_preview_follows_the_playback_rules(recording: Recording, client_as,
                                                  aiohttp_client) -> None:
    rec = recording
    url = f"/api/v1/cameras/{rec.camera_id}/thumbnail.jpg"
    inside = str(rec.segments[0]["start_us"] + 100_000)
    other = await client_as("pb_other")
    assert (await other.get(url, params={"at": inside})).status == 404  # another site's camera
    assert (await other.get(url)).status == 404                         # even when malformed
    admin = await client_as("pb_admin")
    assert (await admin.get(url)).status == 400
    gap_at = (rec.runs[0]["end_us"] + rec.runs[1]["start_us"]) // 2
    for at in (rec.segments[0]["start_us"] - 1, gap_at):
        assert (await admin.get(url, params={"at": str(at)})).status == 404
    resp = await admin.get(f"/api/v1/cameras/{rec.other_camera_id}/thumbnail.jpg",
                           params={"at": str(rec.segments[0]["start_us"])})
    assert resp.status == 404  # the other camera has nothing at that instant
    from vms.app import create_app

    anonymous = await aiohttp_client(create_app(rec.settings, start_recorder=False))
    assert (await anonymous.get(url, params={"at": inside})).status == 401
    # the multi-camera page refuses a camera of another site too
    resp = await other.get("/playback", params={"camera_ids": f"{rec.camera_id}"})
    assert resp.status == 404


def test_the_preview_cache_is_bounded_and_least_recently_used_goes_first() -> None:
    from recorder.thumbnail import Thumbnail, ThumbnailCache

    cache = ThumbnailCache(max_bytes=10_000, max_entries=5)
    pic = Thumbnail(b"\xff\xd8" + b"x" * 2_998, 0, 0.0, 240, 136)
    for i in range(3):
        cache.put((1, i), pic)
    assert len(cache) == 3 and cache.size_bytes == 9_000
    assert cache.get((1, 0)) is pic          # now the most recently used
    cache.put((1, 3), pic)                    # 12,000 bytes > 10,000: the oldest, (1, 1), goes
    assert cache.get((1, 1)) is None and cache.get((1, 0)) is pic
    assert cache.size_bytes <= 10_000
    small = Thumbnail(b"\xff\xd8", 0, 0.0, 240, 136)
    for i in range(10, 20):
        cache.put((2, i), small)
    assert len(cache) == 5                    # the entry bound
    cache.put((3, 0), Thumbnail(b"x" * 20_000, 0, 0.0, 1, 1))
    assert cache.get((3, 0)) is None          # larger than the whole cache: not kept
