"""Marked storage volumes (DESIGN.md decision 9): the marker, `vms storage init`, the default
volume made on first start, cameras moved off an unmarked volume (and stopped when no volume is
healthy) without a folder ever created where a disk should be mounted, a foreign marker refused,
and a volume whose probe hangs (a FIFO as its marker: open() blocks) marked ``unresponsive`` while
the other volume's camera keeps recording and the event loop keeps turning."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from pathlib import Path

import pytest

from recorder.supervisor import RecorderSupervisor
from recorder.volumes import (
    MARKER_NAME,
    VolumeError,
    VolumeMonitor,
    check_volume,
    database_uuid,
    mark_volume,
    read_marker,
)
from tests.recorder.conftest import RecEnv
from vms.clock import SystemClock
from vms.config import Volume
from vms.db.gateway import Gateway
from vms.db.models import Camera, Run, Segment

FOREIGN_UUID = "f" * 32


def _with_volumes(env: RecEnv, *volumes: Volume) -> RecEnv:
    settings = dataclasses.replace(env.settings, volumes=volumes)
    return dataclasses.replace(env, settings=settings)


def _assign(env: RecEnv, camera_id: int, volume: str | None) -> None:
    env.gw.write_sync(lambda: Camera.update(volume=volume).where(Camera.id == camera_id)
                      .execute())


def _segment_volumes(env: RecEnv, camera_id: int) -> list[str]:
    return env.gw.read_sync(lambda: [s.volume for s in Segment.select(Segment.volume)
                                     .where(Segment.camera == camera_id).order_by(Segment.id)])


def _reason(sup: RecorderSupervisor, camera_id: int) -> str:
    return str(sup.status(camera_id)["reason"])


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# -- vms storage init ------------------------------------------------------------------------

def test_storage_init_marks_is_idempotent_and_refuses(db_url: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from vms.cli import main

    disk1, unmounted, foreign = tmp_path / "disk1", tmp_path / "unmounted", tmp_path / "foreign"
    disk1.mkdir()
    foreign.mkdir()
    (foreign / MARKER_NAME).write_text(json.dumps({"database_uuid": FOREIGN_UUID,
                                                   "volume": "other", "marked_us": 1}))
    config = tmp_path / "vms.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[database]\nurl = "{db_url}"\n'
        f'[[storage.volumes]]\nname = "one"\npath = "{disk1}"\n'
        f'[[storage.volumes]]\nname = "two"\npath = "{unmounted}"\n'
        f'[[storage.volumes]]\nname = "three"\npath = "{foreign}"\n')
    assert main(["storage", "init", "--config", str(config), "--json"]) == 1
    out = capsys.readouterr()
    report = json.loads(out.out)
    gw = Gateway(db_url)
    try:
        db_uuid = gw.write_sync(database_uuid)
    finally:
        gw.close()
    assert report["database_uuid"] == db_uuid and len(db_uuid) == 32
    by_name = {v["volume"]: v for v in report["volumes"]}
    assert by_name["one"]["result"] == "marked" and by_name["one"]["state"] == "ok"
    marker = read_marker(disk1)
    assert marker["database_uuid"] == db_uuid and marker["volume"] == "one"
    assert marker["marked_us"] > 0
    assert (disk1 / MARKER_NAME).stat().st_mode & 0o077 == 0
    assert by_name["two"]["result"] == "refused"
    assert "volume 'two'" in by_name["two"]["error"] and "does not exist" in by_name["two"]["error"]
    assert not unmounted.exists(), "storage init must never create a volume's folder"
    assert by_name["three"]["result"] == "refused"
    assert "another database" in by_name["three"]["error"] and FOREIGN_UUID in by_name["three"]["error"]
    assert read_marker(foreign)["database_uuid"] == FOREIGN_UUID, "a foreign marker is kept"
    # idempotent: a second run leaves the marker as it is
    before = (disk1 / MARKER_NAME).read_bytes()
    assert main(["storage", "init", "--config", str(config)]) == 1
    out = capsys.readouterr()
    assert "volume 'one'" in out.out and "already marked" in out.out
    assert "vms storage init: volume 'two'" in out.err and "another database" in out.err
    assert (disk1 / MARKER_NAME).read_bytes() == before
    # once the disk is "mounted", init marks it and exits 0 when the foreign one is dealt with
    unmounted.mkdir()
    (foreign / MARKER_NAME).unlink()
    assert main(["storage", "init", "--config", str(config), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [v["result"] for v in report["volumes"]] == ["already_marked", "marked", "marked"]
    assert all(v["state"] == "ok" for v in report["volumes"])


def test_marker_of_another_volume_name_or_garbage(tmp_path: Path) -> None:
    root = tmp_path / "v"
    root.mkdir()
    vol = Volume("a", root)
    assert mark_volume(vol, "1" * 32, 5) is True
    assert mark_volume(vol, "1" * 32, 6) is False
    assert check_volume(vol, "1" * 32).ok
    renamed = Volume("b", root)
    health = check_volume(renamed, "1" * 32)
    assert health.state == "foreign" and "marked as volume 'a'" in health.message
    with pytest.raises(VolumeError, match="already marked as volume 'a'"):
        mark_volume(renamed, "1" * 32, 7)
    health = check_volume(vol, "2" * 32)
    assert health.state == "foreign" and "another database" in health.message
    (root / MARKER_NAME).write_text("{not json")
    health = check_volume(vol, "1" * 32)
    assert health.state == "unreadable" and "volume 'a'" in health.message
    with pytest.raises(VolumeError, match="refusing to overwrite"):
        mark_volume(vol, "1" * 32, 8)


# -- the recorder ----------------------------------------------------------------------------

async def test_default_volume_made_and_marked_on_first_start(rec_env: RecEnv,
                                                             rec_options) -> None:
    volume = rec_env.settings.volumes[0]
    assert volume.implicit and not volume.path.exists()
    sup = RecorderSupervisor(rec_env.gw, rec_env.settings, rec_env.clock, rec_env.secrets,
                             rec_options)
    await sup.start()
    try:
        assert volume.path.is_dir() and volume.path.stat().st_mode & 0o777 == 0o700
        marker = read_marker(volume.path)
        assert marker["database_uuid"] == rec_env.gw.write_sync(database_uuid)
        assert marker["volume"] == "main"
        health = await sup.volume_health()
        assert [h.state for h in health] == ["ok"] and health[0].free_bytes
    finally:
        await sup.stop()


async def test_no_healthy_volume_stops_with_a_clear_error_and_creates_nothing(
        rec_env: RecEnv, rec_options, wait_for) -> None:
    empty_mount = rec_env.tmp_path / "mnt" / "a"   # a mount point with no disk in it
    empty_mount.mkdir(parents=True)
    missing = rec_env.tmp_path / "mnt" / "c"       # not even the mount point
    foreign = rec_env.tmp_path / "mnt" / "f"
    foreign.mkdir()
    (foreign / MARKER_NAME).write_text(json.dumps({"database_uuid": FOREIGN_UUID, "volume": "f"}))
    env = _with_volumes(rec_env, Volume("a", empty_mount), Volume("c", missing),
                        Volume("f", foreign))
    url = "rtsp://127.0.0.1:9/main"  # never dialled: no run may start
    first = env.add_camera("first", url)
    on_c = env.add_camera("on-c", url)
    on_f = env.add_camera("on-f", url)
    _assign(env, on_c, "c")
    _assign(env, on_f, "f")
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, rec_options)
    await sup.start()
    try:
        await wait_for(lambda: all(sup.status(c)["state"] == "error"
                                   for c in (first, on_c, on_f)), 10)
        first_reason = _reason(sup, first)
        assert "volume 'a'" in first_reason and MARKER_NAME in first_reason
        assert "not mounted" in first_reason and first_reason.endswith("not recording")
        assert "volume 'c'" in _reason(sup, on_c)
        assert "does not exist" in _reason(sup, on_c)
        assert "volume 'f'" in _reason(sup, on_f)
        assert "another database" in _reason(sup, on_f)
        # the reason reaches the camera row (what the API and pages show)
        await wait_for(lambda: "volume 'a'" in env.gw.read_sync(
            lambda: Camera.get_by_id(first).status_reason), 5)
        # a few retries later: still nothing written where a disk should be
        await wait_for(lambda: all(r.volume_refusals >= 3 for r in sup.recorders()), 15)
        assert env.gw.read_sync(lambda: Run.select().count()) == 0
    finally:
        await sup.stop()
    assert _tree(empty_mount) == [], "nothing may be written to an empty mount point"
    assert not missing.exists(), "a missing volume folder must never be created"
    assert _tree(foreign) == [MARKER_NAME]


async def test_camera_moves_off_an_unmarked_volume_and_back(rec_env: RecEnv, rtsp_factory,
                                                            rec_options, wait_for) -> None:
    disk_a = rec_env.tmp_path / "mnt" / "a"      # unmounted: an empty mount point
    disk_a.mkdir(parents=True)
    disk_b = rec_env.tmp_path / "mnt" / "b"
    disk_b.mkdir()
    env = _with_volumes(rec_env, Volume("a", disk_a), Volume("b", disk_b))
    db_uuid = env.gw.write_sync(database_uuid)
    mark_volume(env.settings.volumes[1], db_uuid, env.clock.now_us())
    server = await rtsp_factory()
    cam = env.add_camera("gate", f"rtsp://127.0.0.1:{server.port}/main")
    _assign(env, cam, "a")
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, rec_options)
    await sup.start()
    try:
        await wait_for(lambda: len(_segment_volumes(env, cam)) >= 2, 30)
        assert set(_segment_volumes(env, cam)) == {"b"}
        assert sup.status(cam)["state"] == "recording"
        assert "volume 'a'" in _reason(sup, cam) and MARKER_NAME in _reason(sup, cam)
        assert "recording on volume 'b' instead" in _reason(sup, cam)
        assert _tree(disk_a) == [], "the unmounted volume's mount point stays empty"
        # the disk is "mounted" (marked) and b loses its marker: the run on b stops at once and
        # the camera goes back to its own volume
        mark_volume(env.settings.volumes[0], db_uuid, env.clock.now_us())
        (disk_b / MARKER_NAME).unlink()
        await wait_for(lambda: "a" in _segment_volumes(env, cam), 30)
        runs = env.gw.read_sync(lambda: [r.end_reason for r in Run.select()
                                         .where(Run.camera == cam).order_by(Run.id)])
        assert runs[0] == "volume_unavailable"
        await wait_for(lambda: _reason(sup, cam) == "recording", 10)
    finally:
        await sup.stop()
    seg_paths = env.gw.read_sync(lambda: [(s.volume, s.path) for s in Segment.select()
                                          .where(Segment.camera == cam)])
    for vol, rel in seg_paths:
        assert ((disk_a if vol == "a" else disk_b) / rel).is_file()


async def test_hung_volume_is_unresponsive_while_others_record(rec_env: RecEnv, rtsp_factory,
                                                               rec_options, wait_for) -> None:
    """A probe that hangs (the marker replaced by a FIFO: open() blocks until a writer comes)
    makes that volume ``unresponsive``: its camera moves to the healthy volume, the camera on the
    healthy volume never stops indexing, and the event loop never stalls."""
    disk_a, disk_b = rec_env.tmp_path / "a", rec_env.tmp_path / "b"
    disk_a.mkdir()
    disk_b.mkdir()
    env = _with_volumes(rec_env, Volume("a", disk_a), Volume("b", disk_b))
    db_uuid = env.gw.write_sync(database_uuid)
    for vol in env.settings.volumes:
        mark_volume(vol, db_uuid, env.clock.now_us())
    server = await rtsp_factory()
    url = f"rtsp://127.0.0.1:{server.port}/main"
    on_a = env.add_camera("on-a", url)
    on_b = env.add_camera("on-b", url)
    _assign(env, on_b, "b")
    options = dataclasses.replace(rec_options, volume_probe_timeout_s=1.0)
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, options)
    fifo = disk_b / MARKER_NAME
    lags: list[float] = []
    stop_beat = asyncio.Event()

    async def heartbeat() -> None:
        loop = asyncio.get_running_loop()
        while not stop_beat.is_set():
            before = loop.time()
            await asyncio.sleep(0.05)
            lags.append(loop.time() - before - 0.05)

    await sup.start()
    beat = asyncio.create_task(heartbeat())
    try:
        await wait_for(lambda: len(_segment_volumes(env, on_a)) >= 1
                       and len(_segment_volumes(env, on_b)) >= 1, 30)
        fifo.unlink(missing_ok=True)
        os.mkfifo(fifo, 0o600)
        lags.clear()
        hung_at = time.monotonic()
        await wait_for(lambda: "does not answer" in _reason(sup, on_b), 20)
        assert "volume 'b'" in _reason(sup, on_b)
        indexed_a = len(_segment_volumes(env, on_a))
        # the camera of the hung volume records on the healthy one; the other never stopped
        await wait_for(lambda: "a" in _segment_volumes(env, on_b), 30)
        assert "recording on volume 'a' instead" in _reason(sup, on_b)
        await wait_for(lambda: len(_segment_volumes(env, on_a)) >= indexed_a + 2, 20)
        assert set(_segment_volumes(env, on_a)) == {"a"}
        assert sup.status(on_a)["state"] == "recording"
        health = {h.volume: h.state for h in await sup.volume_health()}
        assert health == {"a": "ok", "b": "unresponsive"}
        assert time.monotonic() - hung_at > 1.0
        assert lags and max(lags) < 0.5, f"event loop stalled {max(lags):.2f}s"
        print(f"volume hung {time.monotonic() - hung_at:.1f}s: max event-loop lag "
              f"{max(lags) * 1000:.0f} ms over {len(lags)} beats")
        runs_b = env.gw.read_sync(lambda: [r.end_reason for r in Run.select()
                                           .where(Run.camera == on_b).order_by(Run.id)])
        assert runs_b[0] == "volume_unavailable"
    finally:
        stop_beat.set()
        await beat
        # release the hung probe thread (a writer opens the FIFO, then closes it) and take the
        # FIFO away first, so no later probe blocks on it again
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # no reader blocked on it right now
            fd = -1
        fifo.unlink(missing_ok=True)
        if fd >= 0:
            os.close(fd)
        await sup.stop()


async def test_monitor_probe_not_restarted_while_hung(tmp_path: Path) -> None:
    """One hung probe holds one thread: later calls answer ``unresponsive`` at once."""
    from vms.config import load_settings

    root = tmp_path / "v"
    root.mkdir()
    os.mkfifo(root / MARKER_NAME, 0o600)
    settings = load_settings(None, env={}, overrides={"data_dir": tmp_path / "data"})
    settings = dataclasses.replace(settings, volumes=(Volume("v", root),))
    monitor = VolumeMonitor(settings, "1" * 32, SystemClock(), probe_timeout_s=0.3,
                            max_age_s=0.0)
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        first = await monitor.health(settings.volumes[0])
        assert first.state == "unresponsive" and "volume 'v'" in first.message
        assert 0.25 < loop.time() - start < 2.0
        start = loop.time()
        second = await monitor.health(settings.volumes[0])
        assert second.state == "unresponsive" and loop.time() - start < 0.2
        fd = os.open(root / MARKER_NAME, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)  # the probe reads EOF: an empty marker is unreadable, and says so

        async def settled() -> str:
            for _ in range(50):
                state = (await monitor.health(settings.volumes[0])).state
                if state != "unresponsive":
                    return state
                await asyncio.sleep(0.05)
            return "unresponsive"

        assert await settled() == "unreadable"
    finally:
        monitor.close()


def test_reconcile_leaves_an_unmounted_volume_alone(rec_env: RecEnv) -> None:
    """A disk that is not mounted has not lost its recordings: its rows are not marked missing
    and a pending deletion on it waits; once the disk is back, reconciliation walks it again."""
    from recorder.reconcile import reconcile
    from vms.db.models import PendingDeletion

    disk = rec_env.tmp_path / "mnt" / "a"
    disk.mkdir(parents=True)
    env = _with_volumes(rec_env, Volume("a", disk))
    cam = env.add_camera("gate", "rtsp://127.0.0.1:9/main")

    def seed() -> None:
        run = Run.create(camera=cam, start_us=1_000_000, end_us=3_000_000, end_reason="shutdown")
        Segment.create(camera=cam, run=run, volume="a", path="x/2026-12-03/main/seg.mp4",
                       start_us=1_000_000, end_us=3_000_000, duration_us=2_000_000,
                       size_bytes=10)
        PendingDeletion.create(volume="a", path="x/old.mp4", created_us=1)

    env.gw.write_sync(seed)
    report = reconcile(env.gw, env.settings, env.clock, True)
    assert report.missing == [] and report.deletions_completed == 0
    assert len(report.volumes_skipped) == 1 and "volume 'a'" in report.volumes_skipped[0]
    assert env.gw.read_sync(lambda: [s.state for s in Segment.select()]) == ["ok"]
    assert env.gw.read_sync(lambda: PendingDeletion.select().count()) == 1
    assert _tree(disk) == []
    # mounted again (marked): the row whose file is absent is now missing, the deletion finishes
    mark_volume(env.settings.volumes[0], env.gw.write_sync(database_uuid), 1)
    report = reconcile(env.gw, env.settings, env.clock, True)
    assert report.volumes_skipped == [] and report.deletions_completed == 1
    assert report.missing == ["a:x/2026-12-03/main/seg.mp4"]


async def test_volume_assignment_api_form_and_audit(db_url: str, tmp_path: Path,
                                                    aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    from tests.web.conftest import USERS, World, seed_world
    from vms.app import create_app
    from vms.config import load_settings
    from vms.db import models as m
    from web.keys import GATEWAY

    disk1, disk2 = tmp_path / "disk1", tmp_path / "disk2"
    config = tmp_path / "vms.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[database]\nurl = "{db_url}"\n[server]\nport = 0\n'
        f'[[storage.volumes]]\nname = "disk1"\npath = "{disk1}"\n'
        f'[[storage.volumes]]\nname = "disk2"\npath = "{disk2}"\n')
    app = create_app(load_settings(config, env={}), start_recorder=False)
    client = await aiohttp_client(app)
    site_a, site_b, cam_a, cam_b = await app[GATEWAY].write(seed_world, app)
    world = World(client=client, app=app, site_a=site_a, site_b=site_b, camera_a=cam_a,
                  camera_b=cam_b, users={u: r for u, (r, _) in USERS.items()})
    assert not disk1.exists() and not disk2.exists(), "the server never creates a volume folder"
    url = f"/api/v1/cameras/{cam_a}/recording-settings"

    async def put(user: str, body: dict[str, object]):  # type: ignore[no-untyped-def]
        return await client.put(url, json=body, headers={"X-CSRF-Token": world.csrf[user]})

    await world.login("operator1")
    assert (await put("operator1", {"volume": "disk2"})).status == 403
    await world.login("installer1")
    resp = await put("installer1", {"volume": "nope"})
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["field"] == "volume" and "unknown volume 'nope'" in error["message"]
    assert "'disk1', 'disk2'" in error["message"]
    resp = await put("installer1", {"volume": "disk2"})
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert data["volume"] == "disk2" and data["changed"] == ["volume"]

    def audit_rows() -> list[dict[str, object]]:
        return [json.loads(r.detail) for r in m.AuditLog.select()
                .where(m.AuditLog.action == "camera_change").order_by(m.AuditLog.id)]

    assert (await app[GATEWAY].read(audit_rows))[-1]["recording"] == {"volume": [None, "disk2"]}
    assert (await (await client.get(url)).json())["volume"] == "disk2"
    page = await (await client.get(f"/cameras/{cam_a}")).text()
    assert '<select name="volume">' in page and '<option value="disk2" selected>' in page
    # the form: back to the first volume ("" = the default)
    resp = await client.post(f"/cameras/{cam_a}/recording-settings",
                             data={"csrf_token": world.csrf["installer1"], "volume": ""},
                             allow_redirects=False)
    assert resp.status == 303, await resp.text()
    assert await app[GATEWAY].read(lambda: m.Camera.get_by_id(cam_a).volume) is None
    assert (await app[GATEWAY].read(audit_rows))[-1]["recording"] == {"volume": ["disk2", None]}
    resp = await client.post(f"/cameras/{cam_a}/recording-settings",
                             data={"csrf_token": world.csrf["installer1"], "volume": "disk9"},
                             allow_redirects=False)
    assert resp.status == 400 and "unknown volume &#39;disk9&#39;" in await resp.text()
