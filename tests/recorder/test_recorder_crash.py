"""kill -9 of the process owning the supervisor mid-segment: after reconciliation the partial segment
is indexed and playable, the open run is closed as crash_recovered, and index and disk agree."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import av

from recorder.reconcile import reconcile
from recorder.segments import iter_segment_files
from vms.db.models import Camera, Run, Segment

CHILD = r'''
import asyncio, json, sys
from vms.clock import SystemClock
from vms.config import load_settings
from vms.db.gateway import Gateway
from vms.secrets import SecretBox
from recorder.run import RecorderOptions
from recorder.supervisor import RecorderSupervisor

async def main():
    overrides = json.loads(sys.argv[1])
    settings = load_settings(None, env={}, overrides=overrides)
    gw = Gateway(settings.database_url)
    sup = RecorderSupervisor(gw, settings, SystemClock(), SecretBox.from_key_file(settings.key_file),
                             RecorderOptions(backoff_initial_s=0.2, backoff_max_s=1.0))
    await sup.start()
    print("started", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
'''


def _ffmpeg_pids_writing_to(folder: Path) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "ffmpeg" in cmdline and str(folder) in cmdline:
            pids.append(int(entry))
    return pids


async def test_kill_9_of_the_server_mid_segment(rec_env, rtsp_factory, wait_for) -> None:
    env = rec_env
    server = await rtsp_factory()
    cam = env.add_camera("hall", server.url("/main"))
    overrides = {"data_dir": str(env.settings.data_dir), "recording.segment_seconds": 2}
    script = env.tmp_path / "child.py"
    script.write_text(CHILD)
    child = await asyncio.create_subprocess_exec(sys.executable, str(script), json.dumps(overrides),
                                                 stdout=asyncio.subprocess.PIPE)

    def count() -> int:
        return env.gw.read_sync(lambda: Segment.select().where(Segment.camera == cam).count())

    try:
        await wait_for(lambda: count() >= 2, 20)
        await asyncio.sleep(1.2)  # inside the third segment, after its first fragment
        child.send_signal(signal.SIGKILL)
        await child.wait()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    volume = env.settings.volumes[0]
    await wait_for(lambda: not _ffmpeg_pids_writing_to(volume.path), 5)  # PR_SET_PDEATHSIG
    before = count()

    report = await asyncio.to_thread(reconcile, env.gw, env.settings, env.clock, True)
    assert len(report.adopted) == 1, report.as_dict()
    assert not report.lost_and_found and not report.missing and not report.quarantined
    assert len(report.runs_closed) == 1
    segs = env.gw.read_sync(lambda: list(
        Segment.select().where(Segment.camera == cam).order_by(Segment.start_us)))
    assert len(segs) == before + 1
    partial = segs[-1]
    assert partial.state == "partial" and partial.start_us == segs[-2].end_us
    assert 500_000 <= partial.duration_us <= 2_100_000
    with av.open(str(volume.path / partial.path)) as c:
        assert sum(1 for _ in c.decode(video=0)) >= 10
    run = env.gw.read_sync(lambda: Run.get_by_id(partial.run_id))
    assert run.end_reason == "crash_recovered" and run.end_us == partial.end_us
    # index and disk agree: every file has a row and every row a file of the indexed size
    on_disk = set(iter_segment_files(volume))
    assert on_disk == {s.path for s in segs}
    for s in segs:
        assert (volume.path / s.path).stat().st_size == s.size_bytes
    again = await asyncio.to_thread(reconcile, env.gw, env.settings, env.clock, False)
    assert again.problems == 0, again.summary()


async def test_reconcile_reports_and_repairs_disk_damage(rec_env, rtsp_factory, rec_options,
                                                         wait_for) -> None:
    from recorder.supervisor import RecorderSupervisor

    env = rec_env
    server = await rtsp_factory()
    cam = env.add_camera("lab", server.url("/main"))
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, rec_options)
    await sup.start()
    try:
        await wait_for(lambda: env.gw.read_sync(
            lambda: Segment.select().where(Segment.camera == cam).count()) >= 3, 20)
    finally:
        await sup.stop()
    volume = env.settings.volumes[0]
    segs = env.gw.read_sync(lambda: list(Segment.select().order_by(Segment.start_us)))
    (volume.path / segs[0].path).unlink()  # vanished file
    run = env.gw.read_sync(lambda: Run.select(Run, Camera).join(Camera)
                           .where(Run.id == segs[0].run_id).get())
    garbage = volume.path / run.camera.uuid / "2026-01-01" / "main" / f"{run.uuid}-000099.mp4"
    garbage.parent.mkdir(parents=True)
    garbage.write_bytes(b"\x00" * 100_000)  # unplayable
    playable = (volume.path / segs[1].path).read_bytes()
    # playable, but nothing proves whose: an unknown run uuid, the camera's uuid with another
    # stream's name, and the id-based layout of old releases
    strays = [volume.path / run.camera.uuid / "2026-01-01" / "main" / f"{'ab' * 16}-000000.mp4",
              volume.path / run.camera.uuid / "2026-01-01" / "sub" / f"{run.uuid}-000001.mp4",
              volume.path / str(cam) / "2026-01-01" / "main" / f"r{run.id}-000002.mp4"]
    for stray in strays:
        stray.parent.mkdir(parents=True, exist_ok=True)
        stray.write_bytes(playable)

    check = await asyncio.to_thread(reconcile, env.gw, env.settings, env.clock, False)
    assert check.missing == [f"main:{segs[0].path}"]
    assert len(check.lost_and_found) == 1 and len(check.quarantined) == 3
    assert garbage.exists() and all(p.exists() for p in strays)  # check-only changes nothing

    fixed = await asyncio.to_thread(reconcile, env.gw, env.settings, env.clock, True)
    assert fixed.missing == check.missing
    assert not garbage.exists()
    assert (volume.path / "lost+found" / garbage.relative_to(volume.path)).exists()
    state = env.gw.read_sync(lambda: Segment.get_by_id(segs[0].id).state)
    assert state == "missing"
    for stray in strays:
        assert not stray.exists()
        assert (volume.path / "quarantine" / stray.relative_to(volume.path)).exists()
    assert env.gw.read_sync(lambda: Segment.select().where(
        Segment.path.contains("quarantine") | Segment.path.contains(f"r{run.id}-")).count()) == 0
    after = await asyncio.to_thread(reconcile, env.gw, env.settings, env.clock, False)
    assert after.problems == 0 and len(after.in_quarantine) == 3
