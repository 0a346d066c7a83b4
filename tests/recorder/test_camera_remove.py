"""Removing a camera archives it (recordings kept); ``--delete-recordings`` deletes them with the
camera, crash-safely and audited, and is refused while evidence holds protect the footage or a
server is running on the data directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.lock import ServerLock, lock_path
from recorder.purge import PurgeRefused, delete_camera_recordings
from recorder.reconcile import reconcile
from recorder.supervisor import RecorderSupervisor
from vms.db.models import AuditLog, Camera, Hold, PendingDeletion, Run, Segment


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vms.cli", "camera", "remove", "--config",
                           str(config), "--json", *args], capture_output=True, text=True,
                          timeout=60)


async def test_remove_archives_then_delete_recordings_deletes_them(rec_env, rtsp_factory,
                                                                   rec_options, wait_for) -> None:
    env = rec_env
    server = await rtsp_factory()
    cam = env.add_camera("yard", server.url("/main"))
    keep = env.add_camera("gate", server.url("/main"))
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, rec_options)
    await sup.start()
    try:
        await wait_for(lambda: env.gw.read_sync(
            lambda: Segment.select().where(Segment.camera == cam).count()) >= 2, 20)
    finally:
        await sup.stop()
    config = env.tmp_path / "vms.toml"
    config.write_text(f'data_dir = "{env.settings.data_dir}"\n')
    volume = env.settings.volumes[0].path
    uuid = env.gw.read_sync(lambda: Camera.get_by_id(cam).uuid)
    files = sorted((volume / uuid).rglob("*.mp4"))
    assert files

    # plain remove: archived, nothing deleted, not recorded by a supervisor any more
    proc = _cli(config, str(cam))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["archived"] is True
    row = env.gw.read_sync(lambda: Camera.get_by_id(cam))
    assert row.archived_us is not None and row.mac is None and row.status == "archived"
    assert all(f.exists() for f in files)
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, rec_options)
    await sup.start()
    try:
        assert sorted(k for k, _ in [(r.config.camera_id, r) for r in sup.recorders()]) == [keep]
    finally:
        await sup.stop()

    # a hold protects the footage: refused, nothing touched
    env.gw.write_sync(lambda: Hold.create(camera=cam, start_us=0, end_us=2**62, reason="case 7",
                                          created_us=0))
    proc = _cli(config, str(cam), "--delete-recordings")
    assert proc.returncode == 2 and "evidence hold" in proc.stderr and "nothing was changed" in proc.stderr
    assert all(f.exists() for f in files)
    env.gw.write_sync(lambda: Hold.delete().execute())

    # a running server (lock held) may be recording it: refused
    lock = ServerLock(lock_path(env.settings.data_dir))
    lock.acquire()
    try:
        proc = _cli(config, str(cam), "--delete-recordings")
        assert proc.returncode == 2 and "server is running" in proc.stderr
    finally:
        lock.release()

    proc = _cli(config, str(cam), "--delete-recordings")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["recordings_deleted"] is True and result["segments_deleted"] >= 2
    assert not (volume / uuid).exists() and not any(f.exists() for f in files)
    assert env.gw.read_sync(lambda: (Camera.get_or_none(Camera.id == cam),
                                     Segment.select().where(Segment.camera == cam).count(),
                                     Run.select().where(Run.camera == cam).count(),
                                     PendingDeletion.select().count())) == (None, 0, 0, 0)
    audit = env.gw.read_sync(lambda: [(a.action, json.loads(a.detail)) for a in
                                      AuditLog.select().order_by(AuditLog.id)])
    assert [a for a, _ in audit] == ["camera_remove", "camera_recordings_delete"]
    assert audit[1][1]["segments_deleted"] == result["segments_deleted"]
    # the other camera's footage is untouched and index and disk agree
    report = reconcile(env.gw, env.settings, env.clock, False)
    assert report.problems == 0, report.summary()
    assert env.gw.read_sync(lambda: Segment.select().where(Segment.camera == keep).count()) >= 1


def test_delete_recordings_refuses_a_camera_in_service(rec_env) -> None:
    cam = rec_env.add_camera("door", "rtsp://127.0.0.1:9/main")
    with pytest.raises(PurgeRefused, match="in service"):
        delete_camera_recordings(rec_env.gw, rec_env.settings, rec_env.clock, cam)
