"""Timeline, playlist and media routes against a real recording with two dropped sessions."""

from __future__ import annotations

import re

from tests.playback.recording import Recording


def expected_spans(rec: Recording) -> list[tuple[int, int, int]]:
    spans: list[list[int]] = []
    for seg in rec.segments:
        if spans and spans[-1][2] == seg["run"] and seg["start_us"] == spans[-1][1]:
            spans[-1][1] = seg["end_us"]
        else:
            spans.append([seg["start_us"], seg["end_us"], seg["run"]])
    return [tuple(s) for s in spans]  # type: ignore[misc]


async def test_timeline_spans_and_gaps_equal_the_recording(recording: Recording, client_as) -> None:
    rec = recording
    client = await client_as("pb_viewer")
    first, last = rec.segments[0]["start_us"], rec.segments[-1]["end_us"]
    resp = await client.get(f"/api/v1/cameras/{rec.camera_id}/timeline",
                            params={"from": str(first - 2_000_000), "to": str(last + 1_000_000)})
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert data["timezone"] == "Europe/Berlin"
    spans = [(s["start_us"], s["end_us"], s["run"]) for s in data["spans"]]
    assert spans == expected_spans(rec)
    assert len(spans) == 3 and [r["end_reason"] for r in rec.runs] == ["camera_lost", "camera_lost",
                                                                      "shutdown"]
    gaps = [(g["start_us"], g["end_us"], g["reason"]) for g in data["gaps"]]
    assert gaps[0] == (first - 2_000_000, first, "not_recorded")
    assert gaps[1] == (spans[0][1], spans[1][0], "camera_lost")
    assert gaps[2] == (spans[1][1], spans[2][0], "camera_lost")
    # the tail gap ends at the request's end, or now if that is earlier (the future is no gap)
    assert gaps[3][0] == last and gaps[3][2] == "shutdown"
    assert gaps[3][1] == min(last + 1_000_000, data["now_us"])
    assert len(gaps) == 4
    assert [(e["type"], e["start_us"]) for e in data["events"]] == [("motion", rec.event_us)]


async def test_timeline_clips_to_a_range_inside_a_segment(recording: Recording, client_as) -> None:
    rec = recording
    client = await client_as("pb_admin")
    seg = rec.segments[1]
    start, end = seg["start_us"] + 100_000, seg["start_us"] + 200_000
    resp = await client.get(f"/api/v1/cameras/{rec.camera_id}/timeline",
                            params={"from": str(start), "to": str(end)})
    data = await resp.json()
    assert data["spans"] == [{"start_us": start, "end_us": end, "run": seg["run"]}]
    assert data["gaps"] == []


async def test_timeline_iso_params_and_multi_camera(recording: Recording, client_as) -> None:
    rec = recording
    client = await client_as("pb_admin")
    resp = await client.get("/api/v1/timeline", params={
        "camera_ids": f"{rec.camera_id},{rec.other_camera_id}",
        "from": "2020-01-01T00:00:00+01:00", "to": "2020-01-02T00:00:00+01:00"})
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert [c["camera"]["id"] for c in data["cameras"]] == [rec.camera_id, rec.other_camera_id]
    assert data["from_us"] == 1577833200 * 1_000_000
    assert all(c["spans"] == [] for c in data["cameras"])
    assert data["cameras"][0]["gaps"][0]["reason"] == "not_recorded"
    # a viewer of the other site cannot name this camera, even among others
    other = await client_as("pb_other")
    resp = await other.get("/api/v1/timeline", params={
        "camera_ids": f"{rec.other_camera_id},{rec.camera_id}"})
    assert resp.status == 404
    resp = await other.get(f"/api/v1/cameras/{rec.camera_id}/timeline")
    assert resp.status == 404
    resp = await client.get(f"/api/v1/cameras/{rec.camera_id}/timeline",
                            params={"from": "2026-10-25T02:30:00"})
    assert resp.status == 400 and "offset" in (await resp.json())["error"]["message"]


def parse_playlist(text: str) -> list[dict]:
    items: list[dict] = []
    pending: dict = {}
    for line in text.splitlines():
        if line == "#EXT-X-DISCONTINUITY":
            pending["disc"] = True
        elif line.startswith("#EXT-X-MAP:"):
            pending["map"] = re.search(r'URI="([^"]+)"', line)[1]  # type: ignore[index]
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pending["pdt"] = line.split(":", 1)[1]
        elif line.startswith("#EXTINF:"):
            pending["dur"] = float(line[8:].rstrip(","))
        elif line and not line.startswith("#"):
            pending["uri"] = line
            items.append(pending)
            pending = {}
    return items


def pdt_us(text: str) -> int:
    from datetime import datetime

    from vms.clock import datetime_to_us

    return datetime_to_us(datetime.fromisoformat(text.replace("Z", "+00:00")))


async def test_playlist_matches_the_index(recording: Recording, client_as) -> None:
    rec = recording
    client = await client_as("pb_viewer")
    first, last = rec.segments[0]["start_us"], rec.segments[-1]["end_us"]
    at = first + 400_000
    resp = await client.get(f"/api/v1/cameras/{rec.camera_id}/playlist.m3u8",
                            params={"from": str(at), "to": str(last + 5_000_000)})
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/vnd.apple.mpegurl")
    text = await resp.text()
    assert text.startswith("#EXTM3U\n") and "#EXT-X-ENDLIST" in text
    assert "#EXT-X-START:TIME-OFFSET=0.400,PRECISE=YES" in text
    items = parse_playlist(text)
    assert len(items) == len(rec.segments)
    base = f"/api/v1/cameras/{rec.camera_id}/media"
    for item, seg in zip(items, rec.segments, strict=True):
        assert item["uri"] == f"{base}/{seg['id']}?part=fragments"
        assert item["map"] == f"{base}/{seg['id']}?part=init"
        assert abs(item["dur"] - seg["duration_us"] / 1e6) < 1e-6
        assert abs(pdt_us(item["pdt"]) - seg["start_us"]) < 1000  # millisecond precision
    # a discontinuity before every file after the first (timestamps restart in each file), and the
    # program-date-time jumps exactly over each gap
    assert [bool(i.get("disc")) for i in items] == [False] + [True] * (len(items) - 1)
    jumps = [pdt_us(b["pdt"]) - pdt_us(a["pdt"]) - round(a["dur"] * 1e6)
             for a, b in zip(items, items[1:], strict=False)]
    gap_sizes = [b["start_us"] - a["end_us"] for a, b in zip(rec.segments, rec.segments[1:],
                                                                strict=False)]
    assert [abs(j - g) < 2000 for j, g in zip(jumps, gap_sizes, strict=True)] == [True] * len(jumps)
    assert sum(1 for g in gap_sizes if g > 0) == 2
    target = int(re.search(r"#EXT-X-TARGETDURATION:(\d+)", text)[1])  # type: ignore[index]
    assert target >= max(i["dur"] for i in items)
    # nothing recorded in a range: 404
    resp = await client.get(f"/api/v1/cameras/{rec.camera_id}/playlist.m3u8",
                            params={"from": "1000", "to": "2000"})
    assert resp.status == 404


async def test_media_range_and_parts(recording: Recording, client_as) -> None:
    rec = recording
    client = await client_as("pb_viewer")
    seg = rec.segments[2]
    data = rec.file_of(seg).read_bytes()
    url = f"/api/v1/cameras/{rec.camera_id}/media/{seg['id']}"
    resp = await client.get(url)
    assert resp.status == 200 and await resp.read() == data
    assert resp.headers["Accept-Ranges"] == "bytes" and resp.headers["Content-Type"] == "video/mp4"
    resp = await client.get(url, headers={"Range": "bytes=100-199"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert await resp.read() == data[100:200]
    resp = await client.get(url, headers={"Range": "bytes=-50"})
    assert resp.status == 206 and await resp.read() == data[-50:]
    assert resp.headers["Content-Range"] == f"bytes {len(data) - 50}-{len(data) - 1}/{len(data)}"
    resp = await client.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert resp.status == 416 and resp.headers["Content-Range"] == f"bytes */{len(data)}"
    init = await (await client.get(url, params={"part": "init"})).read()
    frags = await (await client.get(url, params={"part": "fragments"})).read()
    assert init[4:8] == b"ftyp" and b"moov" in init and b"moof" not in init
    assert frags[4:8] == b"moof" and data.startswith(init) and frags in data
    assert data.index(frags) == len(init) and not frags.endswith(b"mfra")
    resp = await client.get(url, params={"part": "fragments"}, headers={"Range": "bytes=0-7"})
    assert resp.status == 206 and (await resp.read())[4:8] == b"moof"


async def test_media_refuses_other_cameras_and_traversal(recording: Recording, client_as) -> None:
    rec = recording
    admin = await client_as("pb_admin")
    # another camera's segment through this camera's URL: not found (even for an admin)
    resp = await admin.get(f"/api/v1/cameras/{rec.camera_id}/media/{rec.other_segment_id}")
    assert resp.status == 404
    resp = await admin.get(f"/api/v1/cameras/{rec.other_camera_id}/media/{rec.other_segment_id}")
    assert resp.status == 200 and await resp.read() == b"0123456789"
    # a viewer of the other site cannot fetch this camera's media
    other = await client_as("pb_other")
    resp = await other.get(f"/api/v1/cameras/{rec.camera_id}/media/{rec.segments[0]['id']}")
    assert resp.status == 404
    for bad in ("..%2F..%2Fvms.sqlite3", "../../secret.key", "1;2", "%2e%2e", "-1", "1e3"):
        resp = await admin.get(f"/api/v1/cameras/{rec.camera_id}/media/{bad}")
        assert resp.status == 404, bad
    resp = await admin.get(f"/api/v1/cameras/{rec.camera_id}/media/{rec.segments[0]['id']}",
                           params={"part": "../../secret.key"})
    assert resp.status == 400


def test_an_indexed_path_never_leaves_its_volume(tmp_path) -> None:
    import pytest

    from recorder.playback import UnsafePath, resolve_segment_file

    volumes = {"main": tmp_path / "rec"}
    (tmp_path / "rec").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "rec" / "link").symlink_to(tmp_path / "outside")
    assert resolve_segment_file(volumes, "main", "1/a.mp4") == (tmp_path / "rec" / "1" / "a.mp4")
    for bad in ("../x", "/etc/passwd", "1/../../x", "link/x"):
        with pytest.raises(UnsafePath):
            resolve_segment_file(volumes, "main", bad)
    with pytest.raises(UnsafePath):
        resolve_segment_file(volumes, "other", "1/a.mp4")
