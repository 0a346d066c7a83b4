"""``vms check [--repair] [--json]``: reports damage with a non-zero exit, repairs it, and leaves
the runs of a running server (lock held) alone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from recorder.lock import LockHeld, ServerLock, lock_path
from recorder.supervisor import RecorderSupervisor
from vms.db.models import Run, Segment


def _check(config: Path, *args: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    proc = subprocess.run([sys.executable, "-m", "vms.cli", "check", "--config", str(config),
                           "--json", *args], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stderr


async def test_check_reports_repairs_and_respects_a_running_server(rec_env, rtsp_factory,
                                                                   rec_options, wait_for) -> None:
    env = rec_env
    server = await rtsp_factory()
    cam = env.add_camera("hall", server.url("/main"))
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, rec_options)
    await sup.start()
    try:
        # the supervisor holds the server lock: a second one on the same data dir refuses
        try:
            ServerLock(lock_path(env.settings.data_dir)).acquire()
            raise AssertionError("the lock should be held")
        except LockHeld:
            pass
        await wait_for(lambda: env.gw.read_sync(
            lambda: Segment.select().where(Segment.camera == cam).count()) >= 3, 20)
    finally:
        await sup.stop()
    config = env.tmp_path / "vms.toml"
    config.write_text(f'data_dir = "{env.settings.data_dir}"\n[recording]\nsegment_seconds = 2\n')
    volume = env.settings.volumes[0].path
    segs = env.gw.read_sync(lambda: list(Segment.select().order_by(Segment.start_us)))
    run_uuid = env.gw.read_sync(lambda: Run.get_by_id(segs[0].run_id).uuid)
    code, report, _ = _check(config)
    assert code == 0 and report["problems"] == 0, report

    # damage: a vanished file, a playable orphan, an unplayable orphan, a run left open
    (volume / segs[0].path).unlink()
    folder = (volume / segs[1].path).parent
    shutil.copy(volume / segs[1].path, folder / f"{run_uuid}-000099.mp4")
    (folder / f"{run_uuid}-000098.mp4").write_bytes(b"\x00garbage" * 20_000)
    open_run = env.gw.write_sync(lambda: Run.create(camera=cam, stream="main",
                                                    start_us=segs[-1].end_us + 10).id)
    code, report, _ = _check(config)
    assert code == 1
    assert report["missing"] == [f"main:{segs[0].path}"]
    assert [p.rsplit("/", 1)[1] for p in report["adopted"]] == [f"{run_uuid}-000099.mp4"]
    assert [p.rsplit("/", 1)[1] for p in report["lost_and_found"]] == [f"{run_uuid}-000098.mp4"]
    assert report["runs_closed"] == [open_run] and report["server_running"] is False
    assert (folder / f"{run_uuid}-000098.mp4").exists(), "check without --repair changes nothing"

    code, report, _ = _check(config, "--repair")
    assert code == 0 and report["repair"] is True and report["problems"] == 4
    assert not (folder / f"{run_uuid}-000098.mp4").exists()
    assert (volume / "lost+found" / Path(report["lost_and_found"][0][5:])).exists()
    name = f"{run_uuid}-000099.mp4"
    adopted = env.gw.read_sync(lambda: Segment.get(Segment.path.endswith(name)))
    assert adopted.state == "partial" and adopted.duration_us > 0
    assert env.gw.read_sync(lambda: Run.get_by_id(open_run).end_reason) == "crash_recovered"
    code, report, _ = _check(config)
    assert code == 0 and report["problems"] == 0

    # with the server lock held, open runs (being recorded) are left alone, and it says why
    lock = ServerLock(lock_path(env.settings.data_dir))
    lock.acquire()
    try:
        live = env.gw.write_sync(lambda: Run.create(camera=cam, stream="main",
                                                    start_us=segs[-1].end_us + 20))
        live_run = live.id
        live_file = folder / f"{live.uuid}-000000.mp4"
        live_file.write_bytes(b"\x00in flux" * 20_000)
        code, report, err = _check(config, "--repair")
        assert "server is running" in err and "not repaired" in err
        assert report["server_running"] is True and report["excluded_runs"] == [live_run]
        assert report["runs_closed"] == [] and report["lost_and_found"] == []
        assert live_file.exists()
        assert env.gw.read_sync(lambda: Run.get_by_id(live_run).end_us) is None
    finally:
        lock.release()


async def test_recording_set_cli_is_applied_by_a_running_supervisor(rec_env, rtsp_factory,
                                                                    rec_options,
                                                                    wait_for) -> None:
    import asyncio
    import dataclasses

    env = rec_env
    server = await rtsp_factory()
    cam = env.add_camera("gate", server.url("/main"))
    config = env.tmp_path / "vms.toml"
    config.write_text(f'data_dir = "{env.settings.data_dir}"\n[recording]\nsegment_seconds = 2\n')
    options = dataclasses.replace(rec_options, schedule_tick_s=0.2, config_poll_s=0.5)
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, options)
    await sup.start()
    try:
        await wait_for(lambda: sup.status(cam)["state"] == "recording", 15)
        bad = await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "vms.cli", "recording", "set", str(cam), "--config", str(config),
            "--mode", "scheduled", "--schedule", "[{\"start\": \"7\"}]"],
            capture_output=True, text=True)
        assert bad.returncode == 2 and "--schedule" in bad.stderr
        proc = await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "vms.cli", "recording", "set", str(cam), "--config", str(config),
            "--mode", "off", "--stream", "main", "--transport", "udp", "--json"],
            capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert data["recording_mode"] == "off"
        assert data["streams"] == [{"kind": "main", "record": True, "rtsp_transport": "udp"}]
        # the run ends (``config_change``), then the camera settles as switched off
        await wait_for(lambda: sup.status(cam)["state"] == "stopped"
                       and "off" in str(sup.status(cam)["reason"]), 10)
    finally:
        await sup.stop()
    runs = env.gw.read_sync(lambda: list(Run.select().where(Run.camera == cam)))
    assert [r.end_reason for r in runs] == ["config_change"]
