"""The direct export writer (recorder/clip.py, recorder/mp4.py) on real ffmpeg segments: the
packets it writes are the recorded ones, at their wall times, cut at a keyframe; the hash is the
file's; truncated and hostile files are handled; and it agrees with ffmpeg's concat export."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.clip import Source, plan_clip, write_clip
from recorder.export import ExportService
from recorder.mp4 import Mp4Error, iter_boxes, read_fragmented
from recorder.segments import probe_segment
from tests.export.conftest import BASE_US, ExportWorld
from tests.export.export_helpers import make_segment_files
from vms.config import ExportSettings, load_settings
from web.keys import CLOCK, GATEWAY, SETTINGS

START_US = 1_800_000_000_000_000


def sources_for(files: list[Path], start_us: int = START_US) -> list[Source]:
    out, at = [], start_us
    for f in files:
        out.append(Source(f, at))
        at += probe_segment(f).duration_us
    return out


def packets(path: Path) -> list[tuple[str, int, bool, bytes]]:
    """(stream type, pts in µs, keyframe, payload) of every packet, in file order per stream."""
    import av

    out = []
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.size == 0 or packet.pts is None or packet.time_base is None:
                continue
            out.append((packet.stream.type, round(packet.pts * packet.time_base * 1_000_000),
                        packet.is_keyframe, bytes(packet)))
    return out


def wall_packets(sources: list[Source]) -> list[tuple[str, int, bool, bytes]]:
    """The recorded packets with their wall times (segment start + time in the segment)."""
    out = []
    for src in sources:
        out += [(kind, src.start_us + pts, key, data) for kind, pts, key, data in
                packets(src.path)]
    return out


def of(kind: str, items: list[tuple[str, int, bool, bytes]]) -> list[tuple[int, bool, bytes]]:
    return [(pts, key, data) for k, pts, key, data in items if k == kind]


def ffmpeg_errors(path: Path) -> str:
    ffmpeg = load_settings(None, env={}, overrides={}).ffmpeg_exe()
    run = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-f", "null", "-"],
                         capture_output=True, text=True, check=False)
    return run.stderr.strip() + ("" if run.returncode == 0 else f" (exit {run.returncode})")


def top_level(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return [b.kind for b in iter_boxes(data)]


def test_whole_range_copies_every_packet_at_its_wall_time(segment_files: list[Path],
                                                          tmp_path: Path) -> None:
    sources = sources_for(segment_files)
    end_us = sources[-1].start_us + probe_segment(segment_files[-1]).duration_us
    clip = plan_clip(sources, START_US, end_us)
    out = tmp_path / "whole.mp4"
    digest, size = write_clip(clip, out)
    assert size == out.stat().st_size
    assert digest == hashlib.sha256(out.read_bytes()).hexdigest()
    assert top_level(out)[:3] == [b"ftyp", b"moov", b"mdat"]  # faststart by construction
    assert ffmpeg_errors(out) == ""
    assert clip.actual_from_us == START_US and clip.truncated == []
    got, want = packets(out), wall_packets(sources)
    for kind in ("video", "audio"):
        mine, recorded = of(kind, got), of(kind, want)
        assert [d for _, _, d in mine] == [d for _, _, d in recorded], kind  # same bytes, order
        errors = [clip.actual_from_us + pts - wall for (pts, _, _), (wall, _, _) in
                  zip(mine, recorded, strict=True)]
        assert max(abs(e) for e in errors) <= 100, (kind, min(errors), max(errors))
    assert [key for _, key, _ in of("video", got)] == [key for _, key, _ in of("video", want)]


def test_b_frames_keep_presentation_times(tmp_path: Path) -> None:
    """Composition offsets (B-frames) are copied and an edit list makes the keyframe at the start
    present at 0: every frame at its recorded wall time, decoded without an error."""
    ffmpeg = load_settings(None, env={}, overrides={}).ffmpeg_exe()
    files = make_segment_files(ffmpeg, tmp_path / "bf", seconds=8, bframes=2)
    sources = sources_for(files)
    clip = plan_clip(sources, START_US + 1_500_000, START_US + 6_300_000)
    assert clip.tables[0].media_time > 0 and any(clip.tables[0].cts)
    out = tmp_path / "bf.mp4"
    write_clip(clip, out)
    assert ffmpeg_errors(out) == ""
    video = of("video", packets(out))
    assert min(pts for pts, _, _ in video) == 0 and video[0][1]
    recorded = {data: wall for wall, _, data in of("video", wall_packets(sources))}
    errors = [clip.actual_from_us + pts - recorded[data] for pts, _, data in video]
    assert max(abs(e) for e in errors) <= 100, (min(errors), max(errors))
    assert len(video) == sum(1 for w in recorded.values()
                             if clip.actual_from_us - 1 <= w < START_US + 6_300_000 + 80_000)


def test_cut_at_keyframes_and_a_gap_keeps_its_length(segment_files: list[Path],
                                                     tmp_path: Path) -> None:
    # segments 0-3, then a 5 s hole, then 5-9: the media clock must jump with the wall clock
    first = sources_for(segment_files[:4])
    resume = first[-1].start_us + probe_segment(segment_files[3]).duration_us + 5_000_000
    sources = first + sources_for(segment_files[5:], resume)
    from_us, to_us = START_US + 2_500_000, resume + 3_300_000
    clip = plan_clip(sources, from_us, to_us)
    out = tmp_path / "cut.mp4"
    write_clip(clip, out)
    assert ffmpeg_errors(out) == ""
    recorded = wall_packets(sources)
    keyframes = [pts for pts, key, _ in of("video", recorded) if key]
    assert abs(clip.actual_from_us - max(k for k in keyframes if k <= from_us)) <= 1
    video = of("video", packets(out))
    assert video[0][0] == 0 and video[0][1]
    walls = [clip.actual_from_us + pts for pts, _, _ in video]
    assert max(walls) < to_us and to_us - max(walls) <= 40_000 + 100  # last frame before the end
    expected = [(w, d) for w, _, d in of("video", recorded) if clip.actual_from_us - 1 <= w < to_us]
    assert [d for _, d in expected] == [d for _, _, d in video]
    assert max(abs(a - w) for a, (w, _) in zip(walls, expected, strict=True)) <= 100
    after_gap = next(w for w in walls if w >= resume)
    assert abs(after_gap - resume) <= 100  # the first frame after the hole is at its wall time
    audio = of("audio", packets(out))
    assert audio and audio[0][0] >= 0  # audio never before the first frame
    assert clip.actual_to_us == to_us


def test_truncated_segment_keeps_its_whole_fragments(segment_files: list[Path],
                                                     tmp_path: Path) -> None:
    cut = tmp_path / "killed.mp4"
    data = segment_files[1].read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])  # ends inside a fragment, as a kill -9 leaves it
    whole, part = read_fragmented(segment_files[1]), read_fragmented(cut)
    assert part.truncated and not whole.truncated
    assert 0 < len(part.runs) < len(whole.runs)
    assert all(r.offset + r.byte_size <= cut.stat().st_size for r in part.runs)
    sources = sources_for([segment_files[0], cut])
    clip = plan_clip(sources, START_US, START_US + 10_000_000)
    assert clip.truncated == [cut]
    out = tmp_path / "out.mp4"
    write_clip(clip, out)
    assert ffmpeg_errors(out) == ""


def test_overlapping_segments_follow_each_other(segment_files: list[Path],
                                                tmp_path: Path) -> None:
    """A segment indexed 200 ms before the previous one ends starts where that one ends."""
    first = Source(segment_files[1], START_US)
    second = Source(segment_files[2], START_US + probe_segment(segment_files[1]).duration_us
                    - 200_000)
    clip = plan_clip([first, second], START_US, START_US + 10_000_000)
    out = tmp_path / "overlap.mp4"
    write_clip(clip, out)
    assert ffmpeg_errors(out) == ""
    video = of("video", packets(out))
    steps = {b[0] - a[0] for a, b in zip(video, video[1:], strict=False)}
    assert steps == {40_000}, steps  # 25 fps throughout: no squeezed or doubled frame
    assert len(video) == len(of("video", packets(segment_files[1]) + packets(segment_files[2])))


@pytest.mark.parametrize("garbage", [
    b"",
    b"\x00\x00\x00\x08ftyp",
    struct.pack(">I4s", 0xFFFFFFF0, b"moov") + b"\x00" * 100,
    struct.pack(">I4s", 16, b"moof") + b"\x00" * 8,
    b"<?xml version='1.0'?><not-a-video/>",
])
def test_files_that_are_not_segments_are_refused(tmp_path: Path, garbage: bytes) -> None:
    path = tmp_path / "bad.mp4"
    path.write_bytes(garbage)
    with pytest.raises(Mp4Error):
        plan_clip([Source(path, START_US)], START_US, START_US + 1_000_000)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_corrupted_segments_raise_mp4error_or_read(segment_files: list[Path], tmp_path: Path,
                                                   data: st.DataObject) -> None:
    """Flipped bytes anywhere in the boxes: a clean Mp4Error or a readable file, nothing else."""
    raw = bytearray(segment_files[0].read_bytes())
    boxes_end = min(len(raw), 4096)  # ftyp, moov and the first moof: where parsing happens
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, boxes_end - 1))
        raw[at] = data.draw(st.integers(0, 255))
    path = tmp_path / "fuzz.mp4"
    path.write_bytes(bytes(raw))
    try:
        f = read_fragmented(path)
    except Mp4Error:
        return
    assert all(r.offset + r.byte_size <= len(raw) for r in f.runs)


def test_changed_camera_settings_fall_back_to_ffmpeg(tmp_path: Path) -> None:
    ffmpeg = load_settings(None, env={}, overrides={}).ffmpeg_exe()
    small = make_segment_files(ffmpeg, tmp_path / "a", seconds=4)
    large = make_segment_files(ffmpeg, tmp_path / "b", seconds=4, size="640x360")
    with pytest.raises(Mp4Error, match="video differs"):
        plan_clip(sources_for(small + large), START_US, START_US + 8_000_000)


async def test_direct_and_ffmpeg_exports_agree(xworld: ExportWorld, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """The same range across a gap, exported both ways: same frames, same wall times."""
    app = xworld.app
    results: dict[str, Any] = {}
    for muxer in ("auto", "ffmpeg"):
        settings = dataclasses.replace(app[SETTINGS], export=ExportSettings(muxer=muxer))
        service = ExportService(app[GATEWAY], settings, app[CLOCK])
        await service.start()
        try:
            export_id = await service.create(None, [xworld.cam_a2], BASE_US + 3_300_000,
                                             BASE_US + 19_000_000, username="t")
            state = await service.wait(export_id, 60)
            assert state["state"] == "done", state
            manifest = await service.manifest(None, export_id)
        finally:
            await service.stop()
        path = settings.data_dir / "exports" / manifest["file"]["name"]
        copy = tmp_path / f"{muxer}.mp4"
        shutil.copyfile(path, copy)
        assert hashlib.sha256(copy.read_bytes()).hexdigest() == manifest["file"]["sha256"]
        results[muxer] = (manifest["cameras"][0], packets(copy))
    assert "exporting with ffmpeg" not in caplog.text  # "auto" copied directly
    (direct, direct_packets), (ffm, ffmpeg_packets) = results["auto"], results["ffmpeg"]
    assert direct["gaps"] == ffm["gaps"] and len(direct["gaps"]) == 1
    # covered ranges are read from the frames written: the same both ways, within a frame
    assert len(direct["covered"]) == len(ffm["covered"]) == 2
    for mine_range, its_range in zip(direct["covered"], ffm["covered"], strict=True):
        assert abs(mine_range["start_us"] - its_range["start_us"]) <= 40_000
        assert abs(mine_range["end_us"] - its_range["end_us"]) <= 40_000
    assert direct["actual"]["from_us"] == ffm["actual"]["from_us"]
    for kind in ("video", "audio"):
        mine, theirs = of(kind, direct_packets), of(kind, ffmpeg_packets)
        assert len(mine) == len(theirs), kind
        for (pts, key, ours), (its_pts, _, its) in zip(mine, theirs, strict=True):
            # ffmpeg's concat (auto_convert) repeats SPS/PPS in its keyframes; ours are the
            # recorded bytes unchanged
            assert ours == its or (kind == "video" and key and its.endswith(ours))
            assert abs(pts - its_pts) <= 1_000, (kind, pts, its_pts)
