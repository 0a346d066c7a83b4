"""The fast paths of the timeline and the playlist: covered by the segment index, the same text as
the straightforward formatting, and one gateway read that still says "not found" first."""

from __future__ import annotations

import random
from datetime import UTC

import pytest

from recorder import playback, timeline
from tests.playback.recording import Recording
from vms.clock import us_to_datetime
from vms.db.gateway import Gateway


def test_program_date_time_is_isoformat_in_milliseconds() -> None:
    rnd = random.Random(5)
    instants = [0, -1, 999, 1_000, 86_399_999_999, 86_400_000_000, -86_400_000_001,
                1_767_225_599_999_999, 4_102_444_800_000_000]
    instants += [rnd.randint(-10**16, 10**17) for _ in range(20_000)]
    for instant_us in instants:
        expected = us_to_datetime(instant_us).astimezone(UTC).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")
        assert playback._pdt(instant_us) == expected, instant_us


def test_extinf_is_the_index_duration_with_six_decimals() -> None:
    segments = [(1, 0, 1), (2, 10, 60_000_010), (3, 70_000_000, 70_999_999)]
    text = playback.build_playlist(segments, 0, media_base="/m").text
    assert [line for line in text.splitlines() if line.startswith("#EXTINF")] == [
        "#EXTINF:0.000001,", "#EXTINF:60.000000,", "#EXTINF:0.999999,"]


@pytest.mark.parametrize("columns", [timeline.SPAN_COLUMNS, playback.PLAYLIST_COLUMNS],
                         ids=["timeline", "playlist"])
def test_range_query_reads_only_the_covering_index(recording: Recording, columns) -> None:  # type: ignore[no-untyped-def]
    """SQLite says so in its plan; a column added to the select but not to the index (or an index
    change) makes every camera-day read ~1,440 table pages again."""
    gw = Gateway(recording.settings.database_url)
    try:
        def plan() -> list[str]:
            first = recording.segments[0]["start_us"]
            sql, params = timeline.range_query(columns, recording.camera_id, first,
                                               first + 86_400_000_000, limit=10).sql()
            return [row[-1] for row in gw.db.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params)]

        steps = gw.read_sync(plan)
    finally:
        gw.close()
    searches = [s for s in steps if "segment" in s.lower() or "SEARCH" in s]
    assert searches and all("COVERING INDEX segment_camera_id_stream_start_us" in s
                            for s in searches if s.startswith(("SEARCH", "SCAN"))), steps
    assert not any(s.startswith("USE TEMP B-TREE") for s in steps), steps


async def test_malformed_range_on_another_sites_camera_is_not_found(recording: Recording,
                                                                    client_as) -> None:  # type: ignore[no-untyped-def]
    rec = recording
    other = await client_as("pb_other")
    for route in ("timeline", "playlist.m3u8"):
        resp = await other.get(f"/api/v1/cameras/{rec.camera_id}/{route}",
                               params={"from": "2026-10-25T02:30:00"})
        assert resp.status == 404, route
        resp = await other.get(f"/api/v1/cameras/{rec.camera_id}/{route}",
                               params={"from": "5", "to": "1"})
        assert resp.status == 404, route
    resp = await other.get("/api/v1/timeline", params={
        "camera_ids": f"{rec.other_camera_id},{rec.camera_id}", "from": "x"})
    assert resp.status == 404
    viewer = await client_as("pb_viewer")
    for route in ("timeline", "playlist.m3u8"):
        resp = await viewer.get(f"/api/v1/cameras/{rec.camera_id}/{route}",
                                params={"from": "5", "to": "1"})
        assert resp.status == 400, route
    resp = await viewer.get(f"/api/v1/cameras/{rec.camera_id}/playlist.m3u8",
                            params={"from": "0", "to": str(8 * 86_400_000_000)})
    assert resp.status == 400 and "7 days" in await resp.text()
