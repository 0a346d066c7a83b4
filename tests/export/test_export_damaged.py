"""A damaged segment under an export (issue 11, item 7): the signed manifest describes what the MP4
holds — covered ranges read from the frames written, the damaged part an ``unreadable`` gap — with
either muxer, for one camera (MP4) and several (ZIP); and ``vms verify`` reads the frames back and
refuses a manifest that claims more video than the file holds, even when that manifest is signed
by the server's own key (as the old code signed one). A hole inside a whole file (a camera that
stalled) is a gap too, named for what it is."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from recorder.export import ExportService
from recorder.mp4 import iter_boxes
from tests.export.conftest import BASE_US, ExportWorld
from tests.export.export_helpers import SEGMENT_FLAGS, index_files
from vms.cli.export import ExportCliError, check_and_write_manifest
from vms.cli.verify import verify
from vms.config import ExportSettings
from vms.db import models as m
from web.keys import CLOCK, GATEWAY, SETTINGS

FRAME_US = 40_000
"""The test recordings are 25 fps."""
DAMAGED = 3
"""Index of the damaged segment: the fourth 2 s segment, BASE+6 s .. BASE+8 s."""
FROM_US, TO_US = BASE_US + 1_000_000, BASE_US + 15_000_000


def cut_short(data: bytes) -> bytes:
    """The file ends in the middle (a disk that lost its tail; a kill -9 leaves the same)."""
    return data[: len(data) // 2]


def head_zeroed(data: bytes) -> bytes:
    """The first 512 bytes (ftyp and moov) overwritten: no player can open the file."""
    return bytes(512) + data[512:]


def fragment_header_zeroed(data: bytes) -> bytes:
    """The header of the second fragment (moof) overwritten in the middle of the file."""
    second_moof = [b for b in iter_boxes(data) if b.kind == b"moof"][1]
    return data[:second_moof.start] + bytes(8) + data[second_moof.start + 8:]


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "cut short": cut_short, "head zeroed": head_zeroed,
    "fragment header zeroed": fragment_header_zeroed}


def video_walls(path: Path, zero_us: int) -> list[int]:
    """Wall time of every video frame in the MP4 (read here with PyAV, independently of
    vms/coverage.py): media_time_zero_us + presentation time."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sorted(zero_us + round(p.pts * p.time_base * 1_000_000)
                      for p in container.demux(stream) if p.pts is not None and p.size)


async def damaged_export(world: ExportWorld, tmp_path: Path, damage: str, muxer: str,
                         cameras: list[int]) -> tuple[dict[str, Any], Path, m.Segment]:
    """Damage camera A's fourth segment file, export over it; (manifest, clip, the segment)."""
    app = world.app

    def segments() -> list[m.Segment]:
        return list(m.Segment.select().where(m.Segment.camera == world.cam_a)
                    .order_by(m.Segment.start_us))

    segs = await app[GATEWAY].read(segments)
    volume = app[SETTINGS].volumes[0].path
    path = volume / segs[DAMAGED].path
    path.write_bytes(DAMAGE[damage](path.read_bytes()))
    settings = dataclasses.replace(app[SETTINGS], export=ExportSettings(muxer=muxer))
    service = ExportService(app[GATEWAY], settings, app[CLOCK])
    await service.start()
    try:
        export_id = await service.create(None, cameras, FROM_US, TO_US, username="t")
        state = await service.wait(export_id, 60)
        assert state["state"] == "done", state
        manifest = await service.manifest(None, export_id)
    finally:
        await service.stop()
    clip = settings.data_dir / "exports" / manifest["file"]["name"]
    return manifest, clip, segs[DAMAGED]


def member(clip: Path, manifest: dict[str, Any], tmp_path: Path) -> Path:
    """Camera A's MP4: the clip itself, or its member of the ZIP."""
    if manifest["file"]["container"] == "mp4":
        return clip
    out = tmp_path / "member.mp4"
    with zipfile.ZipFile(clip) as zf:
        out.write_bytes(zf.read(manifest["cameras"][0]["file"]))
    return out


def check_manifest_matches_frames(cam: dict[str, Any], walls: list[int],
                                  seg: m.Segment) -> None:
    """The manifest's covered ranges and gaps are the MP4's frames, within a frame."""
    gaps = [g for g in cam["gaps"] if g["end_us"] > cam["actual"]["from_us"]]
    assert [g["reason"] for g in gaps] == ["unreadable"], gaps
    gap = gaps[0]
    # the gap is inside the damaged segment and reaches to its end
    assert seg.start_us - FRAME_US <= gap["start_us"] < seg.end_us
    assert abs(gap["end_us"] - seg.end_us) <= FRAME_US
    # the MP4 has no frame in the gap; the frame before it is one frame before it starts, the
    # frame after it is where it ends
    assert not [w for w in walls if gap["start_us"] + 1_000 < w < gap["end_us"] - 1_000]
    before = max(w for w in walls if w < gap["end_us"])
    after = min(w for w in walls if w >= gap["end_us"] - 1_000)
    assert abs(before + FRAME_US - gap["start_us"]) <= 1_000, (before, gap)
    assert abs(after - gap["end_us"]) <= 1_000, (after, gap)
    # covered ranges and gaps split the clip's span between them, with no hole left over
    actual = cam["actual"]
    pieces = sorted([(c["start_us"], c["end_us"]) for c in cam["covered"]]
                    + [(g["start_us"], g["end_us"]) for g in gaps])
    assert pieces[0][0] == actual["from_us"] == walls[0] and pieces[-1][1] == actual["to_us"]
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:], strict=False)), pieces
    assert cam["covered_us"] == sum(c["end_us"] - c["start_us"] for c in cam["covered"])
    # inside every covered range the frames follow each other at about the frame rate (these
    # test files start each segment with one 104 ms frame)
    for c in cam["covered"]:
        inside = [w for w in walls if c["start_us"] <= w < c["end_us"]]
        assert inside[0] - c["start_us"] <= 1_000 and c["end_us"] - inside[-1] <= FRAME_US + 1_000
        assert max(b - a for a, b in zip(inside, inside[1:], strict=False)) <= 3 * FRAME_US
    assert actual["to_us"] == TO_US and walls[-1] >= TO_US - FRAME_US


def overstated(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest the old code wrote: from the index alone, no gap for the damaged segment,
    the clip to the requested end."""
    old = json.loads(json.dumps(manifest))
    cam = old["cameras"][0]
    cam["gaps"] = [g for g in cam["gaps"] if g["reason"] != "unreadable"]
    cam["actual"]["to_us"] = TO_US
    del cam["covered"], cam["covered_us"]
    return old


@pytest.mark.parametrize(("damage", "muxer", "zipped"), [
    ("cut short", "auto", False),
    ("cut short", "ffmpeg", True),
    ("head zeroed", "auto", True),
    ("head zeroed", "ffmpeg", False),
    ("fragment header zeroed", "auto", False),
    ("fragment header zeroed", "ffmpeg", False),
])
async def test_manifest_describes_what_was_written(xworld: ExportWorld, tmp_path: Path,
                                                   damage: str, muxer: str,
                                                   zipped: bool) -> None:
    cameras = [xworld.cam_a, xworld.cam_a2] if zipped else [xworld.cam_a]
    manifest, clip, seg = await damaged_export(xworld, tmp_path, damage, muxer, cameras)
    cam = manifest["cameras"][0]
    mp4 = member(clip, manifest, tmp_path)
    walls = video_walls(mp4, cam["media_time_zero_us"])
    check_manifest_matches_frames(cam, walls, seg)
    if zipped:  # the undamaged camera: its recording stops at ~8 s, nothing else is missing
        assert [g["reason"] for g in manifest["cameras"][1]["gaps"]] == ["not recorded"]

    # signed by the server's key, but claiming the damaged segment's video: refused by `vms
    # verify`, and by `vms export` on what it downloads
    forged = tmp_path / "overstated.manifest.json"
    signed = xworld.service.signer.sign(overstated(manifest))
    forged.write_text(json.dumps(signed))
    report = verify(clip, forged)
    assert not report["ok"] and report["signature"]["valid"], report
    assert any("but the manifest lists no gap there" in p for p in report["problems"]), report
    assert any("the manifest says it covers" in p for p in report["problems"]), report
    with pytest.raises(ExportCliError, match="not what its manifest says"):
        check_and_write_manifest(clip, signed)

    manifest_path = clip.with_name(clip.name.split(".")[0] + ".manifest.json")
    report = verify(clip, manifest_path)
    assert report["ok"], report["problems"]
    assert abs(report["videos"][0]["video_covered_us"] - cam["covered_us"]) <= FRAME_US


def stalled_file(folder: Path) -> Path:
    """One 4 s fragmented-MP4 segment whose frames stop for ~1.5 s after 2 s (a camera that
    stalled while ffmpeg kept the file open): timestamps passed through, nothing duplicated."""
    from vms.config import load_settings

    ffmpeg = load_settings(None, env={}, overrides={}).ffmpeg_exe()
    out = folder / "stalled.mp4"
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=4",
                    "-vf", "setpts='if(gte(N,50),PTS+1.5/TB,PTS)'", "-fps_mode", "passthrough",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-bf", "0",
                    "-pix_fmt", "yuv420p", "-f", "mp4", "-movflags", SEGMENT_FLAGS.split("=")[1],
                    str(out)], check=True)
    return out


@pytest.mark.parametrize("muxer", ["auto", "ffmpeg"])
async def test_a_stall_inside_a_segment_is_a_gap_of_no_frames(xworld: ExportWorld, tmp_path: Path,
                                                              muxer: str) -> None:
    """A hole inside a whole segment file is listed too, as 'no frames recorded' (the file is
    fine: the camera sent nothing), and the clip verifies."""
    app = xworld.app
    start_us = BASE_US + 100_000_000
    stalled = stalled_file(tmp_path)

    def seed() -> int:
        site = m.Camera.get_by_id(xworld.cam_a).site_id
        cam = m.Camera.create(site=site, name="Stall", status_since_us=0, created_us=0,
                              updated_us=0)
        index_files(app[SETTINGS], cam.id, [stalled], start_us)
        return int(cam.id)

    cam_id = await app[GATEWAY].write(seed)
    settings = dataclasses.replace(app[SETTINGS], export=ExportSettings(muxer=muxer))
    service = ExportService(app[GATEWAY], settings, app[CLOCK])
    await service.start()
    try:
        export_id = await service.create(None, [cam_id], start_us, start_us + 5_000_000,
                                         username="t")
        state = await service.wait(export_id, 60)
        assert state["state"] == "done", state
        manifest = await service.manifest(None, export_id)
    finally:
        await service.stop()
    cam = manifest["cameras"][0]
    walls = video_walls(settings.data_dir / "exports" / manifest["file"]["name"],
                        cam["media_time_zero_us"])
    last_before = max(w for w in walls if w < start_us + 2_500_000)
    first_after = min(w for w in walls if w > start_us + 2_500_000)
    assert first_after - last_before > 1_000_000  # the stall is in the clip
    assert [(g["start_us"], g["end_us"], g["reason"]) for g in cam["gaps"]] == [
        (last_before + FRAME_US, first_after, "no frames recorded")]
    assert [(c["start_us"], c["end_us"]) for c in cam["covered"]] == [
        (start_us, last_before + FRAME_US), (first_after, start_us + 5_000_000)]
    clip = settings.data_dir / "exports" / manifest["file"]["name"]
    report = verify(clip, clip.with_name(f"export-{export_id}.manifest.json"))
    assert report["ok"], report["problems"]
