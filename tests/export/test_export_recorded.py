"""Exports of real camsim recordings, checked against the SEI capture time stamped in every frame:
duration, start and end within one GOP, and a gap (camera dropped) listed with wall time kept."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from camsim.sei import read_capture_times
from recorder.export import ExportService
from recorder.supervisor import RecorderSupervisor
from tests.export.export_helpers import media_duration_us
from tests.recorder.conftest import rec_env, rec_options, rtsp_factory  # noqa: F401 (fixtures)
from vms.cli.verify import verify
from vms.db.models import Run, Segment

pytestmark = pytest.mark.slow

GOP_US = 1_000_000  # camsim: keyframe every fps frames (1 s)
TIMING_US = 120_000
"""How far the index may place a frame from its SEI stamp (recorder tolerance: ~80 ms)."""


async def wait_for(predicate, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


def _segments_of_run(env, index: int) -> list[Segment]:  # type: ignore[no-untyped-def]
    """The indexed segments of the ``index``-th run (by start), [] while there is no such run."""
    def read() -> list[Segment]:
        runs = list(Run.select().order_by(Run.start_us))
        if len(runs) <= index:
            return []
        return list(Segment.select().where(Segment.run == runs[index].id))
    return env.gw.read_sync(read)


async def test_export_recorded_camsim(rec_env, rtsp_factory, rec_options,  # noqa: F811
                                      tmp_path: Path) -> None:
    env = rec_env
    server = await rtsp_factory()
    cam = env.add_camera("gate", server.url("/main"))
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, rec_options)
    await sup.start()
    try:
        await wait_for(lambda: sup.status(cam)["state"] == "recording", 15)
        # three segments of the first run indexed, then the camera drops the session
        await wait_for(lambda: len(_segments_of_run(env, 0)) >= 3, 20)
        server.drop_sessions()
        await wait_for(lambda: len(env.gw.read_sync(lambda: list(Run.select()))) >= 2, 15)
        await wait_for(lambda: sup.status(cam)["state"] == "recording", 15)
        # two segments of the second run indexed
        await wait_for(lambda: len(_segments_of_run(env, 1)) >= 2, 20)
    finally:
        await sup.stop()
    runs = env.gw.read_sync(lambda: list(Run.select().order_by(Run.start_us)))
    segs = env.gw.read_sync(lambda: list(Segment.select().order_by(Segment.start_us)))
    assert len(runs) == 2, [(r.start_us, r.end_us, r.end_reason) for r in runs]
    run1 = [s for s in segs if s.run_id == runs[0].id]
    run2 = [s for s in segs if s.run_id == runs[1].id]
    assert len(run1) >= 3 and len(run2) >= 2

    service = ExportService(env.gw, env.settings, env.clock)
    await service.start()
    try:
        # 1. inside one run, cut mid-GOP at both ends
        from_us = run1[1].start_us + 500_000
        to_us = run1[-1].end_us - 700_000
        export_id = await service.create(None, [cam], from_us, to_us, username="test")
        state = await service.wait(export_id, 30)
        assert state["state"] == "done", state
        manifest = await service.manifest(None, export_id)
        clip = Path(env.settings.data_dir / "exports" / manifest["file"]["name"])
        stamps = read_capture_times(clip)
        first_capture, last_capture = stamps[0][1], stamps[-1][1]
        assert -TIMING_US <= from_us - first_capture <= GOP_US + TIMING_US, from_us - first_capture
        assert -TIMING_US <= to_us - last_capture <= GOP_US, to_us - last_capture
        duration = media_duration_us(clip)
        assert abs(duration - (to_us - from_us)) <= GOP_US, duration
        actual = manifest["cameras"][0]["actual"]
        assert abs(duration - (actual["to_us"] - actual["from_us"])) <= 80_000
        assert manifest["cameras"][0]["gaps"] == []
        assert manifest["cameras"][0]["covered"][0]["start_us"] == actual["from_us"]
        assert manifest["cameras"][0]["covered_us"] == actual["to_us"] - actual["from_us"]
        report = verify(clip, clip.with_name(f"export-{export_id}.manifest.json"))
        assert report["ok"], report["problems"]  # frames read back match the manifest

        # 2. across the drop: the gap is listed, and media time still maps to wall time
        from_us = run1[-2].start_us + 300_000
        to_us = run2[1].start_us + 800_000
        export_id = await service.create(None, [cam], from_us, to_us, username="test")
        state = await service.wait(export_id, 30)
        assert state["state"] == "done", state
        manifest = await service.manifest(None, export_id)
        camera = manifest["cameras"][0]
        assert len(camera["gaps"]) == 1, (camera["gaps"], run1[-1].end_us, run2[0].start_us)
        gap = camera["gaps"][0]
        assert gap["start_us"] == run1[-1].end_us and gap["end_us"] == run2[0].start_us
        assert gap["reason"].startswith("recording stopped")
        clip = Path(env.settings.data_dir / "exports" / manifest["file"]["name"])
        zero_us = camera["media_time_zero_us"]
        errors = [capture - (zero_us + round(pts * 1e6)) for pts, capture in
                  read_capture_times(clip)]
        assert max(abs(e) for e in errors) <= TIMING_US, (min(errors), max(errors))
        assert -TIMING_US <= from_us - (zero_us + 0) <= GOP_US + TIMING_US
        assert [(c["start_us"], c["end_us"]) for c in camera["covered"]] == [
            (camera["actual"]["from_us"], gap["start_us"]),
            (gap["end_us"], camera["actual"]["to_us"])]
        report = verify(clip, clip.with_name(f"export-{export_id}.manifest.json"))
        assert report["ok"], report["problems"]
    finally:
        await service.stop()
