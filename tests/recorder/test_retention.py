"""Retention's purge engine on real files and a real database (SQLite and PostgreSQL), with an
injected clock: the age purge deletes exactly the expired segments, event footage outlives
continuous footage, holds and unexpired exports protect their ranges from every purge, exports
expire, the per-camera byte cap holds, purged time is a ``retention`` gap, and a purge killed
between its steps recovers with ``vms check`` clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from recorder.reconcile import reconcile
from recorder.retention import Purger, PurgeReport, RetentionMetrics
from recorder.retention_service import blocking_holds
from recorder.timeline import build_timeline
from recorder.volumes import MARKER_NAME, database_uuid, mark_volume
from vms.clock import FakeClock, us_to_datetime
from vms.config import Settings
from vms.db import models as m
from vms.db.gateway import Gateway

ROOT = Path(__file__).resolve().parents[2]

HOUR = 3_600 * 1_000_000
DAY = 24 * HOUR
T0 = 1_780_000_000_000_000 - (1_780_000_000_000_000 % DAY)  # a UTC midnight in 2026
NOW = T0 + 40 * DAY
SEG_BYTES = 1_000


@dataclass
class Env:
    settings: Settings
    gw: Gateway
    clock: FakeClock
    tmp_path: Path

    @property
    def root(self) -> Path:
        return self.settings.volumes[0].path


@pytest.fixture
def env(db_url: str, settings_factory: Any, tmp_path: Path) -> Any:
    settings = settings_factory(db_url, **{"retention.continuous_days": 10,
                                           "retention.event_days": 30,
                                           "retention.exports_days": 7})
    gw = Gateway(settings.database_url)
    gw.migrate()
    settings.volumes[0].path.mkdir(parents=True, exist_ok=True)
    # a volume is purged only while marked for this database (a disk not mounted is left alone)
    mark_volume(settings.volumes[0], gw.write_sync(database_uuid), NOW)
    yield Env(settings, gw, FakeClock(NOW), tmp_path)
    gw.close()


def add_camera(env: Env, name: str, *, days: int = 40, event_days: tuple[int, ...] = (),
               site: str = "site") -> int:
    """A camera with one segment per hour over ``[T0, T0 + days)``, each a real file of
    :data:`SEG_BYTES` in the volume layout; the days in ``event_days`` are event footage."""

    def create() -> tuple[int, str, list[tuple[int, str]]]:
        site_row = m.Site.get_or_none(m.Site.name == site) or m.Site.create(name=site,
                                                                           created_us=0)
        cam = m.Camera.create(site=site_row, name=name, status_since_us=0, created_us=0,
                              updated_us=0)
        run = m.Run.create(camera=cam, stream="main", start_us=T0, end_us=T0 + days * DAY,
                           end_reason="shutdown")
        rows, files = [], []
        for i in range(days * 24):
            start = T0 + i * HOUR
            day = us_to_datetime(start).strftime("%Y-%m-%d")
            rel = f"{cam.uuid}/{day}/main/{run.uuid}-{i:06d}.mp4"
            kind = "event" if i // 24 in event_days else "continuous"
            rows.append({"camera": cam.id, "stream": "main", "run": run.id, "volume": "main",
                         "path": rel, "start_us": start, "end_us": start + HOUR,
                         "duration_us": HOUR, "size_bytes": SEG_BYTES, "kind": kind})
            files.append(rel)
        for i in range(0, len(rows), 500):
            m.Segment.insert_many(rows[i:i + 500]).execute()
        return cam.id, cam.uuid, files

    cam_id, _uuid, files = env.gw.write_sync(create)
    for rel in files:
        path = env.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x00" * SEG_BYTES)
    return int(cam_id)


def segments(env: Env, camera_id: int) -> list[tuple[int, int, str, str]]:
    """(start_us, end_us, kind, path) of the camera's segments, by start."""
    return env.gw.read_sync(lambda: list(
        m.Segment.select(m.Segment.start_us, m.Segment.end_us, m.Segment.kind, m.Segment.path)
        .where(m.Segment.camera == camera_id).order_by(m.Segment.start_us).tuples()))


def files_on_disk(env: Env) -> set[str]:
    return {str(p.relative_to(env.root)) for p in env.root.rglob("*.mp4")}


def assert_consistent(env: Env) -> None:
    """Every row has its file, every file its row, nothing pending: ``vms check`` clean."""
    rows = env.gw.read_sync(lambda: {p for (p,) in m.Segment.select(m.Segment.path).tuples()})
    assert rows == files_on_disk(env)
    assert env.gw.read_sync(lambda: m.PendingDeletion.select().count()) == 0
    report = reconcile(env.gw, env.settings, env.clock, repair=False)
    assert report.problems == 0, report.summary()


def audit_details(env: Env) -> list[dict[str, Any]]:
    return env.gw.read_sync(lambda: [json.loads(d) for (d,) in m.AuditLog.select(
        m.AuditLog.detail).where(m.AuditLog.action == "retention.purge")
        .order_by(m.AuditLog.id).tuples()])


def add_hold(env: Env, camera_id: int, start_us: int, end_us: int) -> int:
    return int(env.gw.write_sync(lambda: m.Hold.create(
        camera=camera_id, start_us=start_us, end_us=end_us, reason="case 7",
        created_us=NOW).id))


def add_export(env: Env, camera_ids: list[int], from_us: int, to_us: int,
               finished_us: int) -> int:
    folder = env.settings.data_dir / "exports"
    folder.mkdir(parents=True, exist_ok=True)

    def create() -> int:
        row = m.Export.create(state="done", progress=1.0, camera_ids=json.dumps(camera_ids),
                              from_us=from_us, to_us=to_us, created_us=finished_us,
                              finished_us=finished_us)
        row.path = str(folder / f"export-{row.id}.mp4")
        row.save()
        return int(row.id)

    export_id = env.gw.write_sync(create)
    (folder / f"export-{export_id}.mp4").write_bytes(b"\x01" * 5_000)
    (folder / f"export-{export_id}.manifest.json").write_text("{}")
    return export_id


def test_age_purge_deletes_exactly_the_expired_segments(env: Env) -> None:
    cam = add_camera(env, "gate", event_days=(5, 15, 25))
    other = add_camera(env, "yard", site="courtyard")
    # the courtyard site keeps continuous footage 20 days; the yard camera keeps events 35
    env.gw.write_sync(lambda: m.Site.update(retention_continuous_days=20).where(
        m.Site.name == "courtyard").execute())
    env.gw.write_sync(lambda: m.Camera.update(retention_event_days=35).where(
        m.Camera.id == other).execute())
    before = {c: segments(env, c) for c in (cam, other)}
    registry = CollectorRegistry()
    purger = Purger(env.gw, env.settings, env.clock, metrics=RetentionMetrics(registry),
                    chunk=100)
    report = purger.run_pass()

    def expected(rows: list[tuple[int, int, str, str]], cont_days: int, event_days: int) -> list:
        return [r for r in rows if not (
            (r[2] == "continuous" and r[1] <= NOW - cont_days * DAY)
            or (r[2] == "event" and r[1] <= NOW - max(cont_days, event_days) * DAY))]

    kept = expected(before[cam], 10, 30)
    assert segments(env, cam) == kept
    # event footage outlived continuous footage: day 15 and 25 kept, day 5 (older than 30) gone
    assert {(r[0] - T0) // DAY for r in kept if r[2] == "event"} == {15, 25}
    assert min((r[0] - T0) // DAY for r in kept if r[2] == "continuous") == 30
    assert segments(env, other) == expected(before[other], 20, 35)
    deleted = (len(before[cam]) - len(kept)) + (len(before[other]) - len(segments(env, other)))
    assert report.by_reason["age"].segments == deleted
    assert report.by_reason["age"].bytes == deleted * SEG_BYTES
    assert_consistent(env)
    # audited in chunks, counted by the metrics
    details = audit_details(env)
    assert {d["reason"] for d in details} == {"age"} and {d["volume"] for d in details} == {"main"}
    assert sum(d["segments"] for d in details) == deleted
    assert sum(d["bytes"] for d in details) == deleted * SEG_BYTES
    assert max(d["segments"] for d in details) <= 100
    assert registry.get_sample_value("vms_retention_deleted_segments_total",
                                     {"reason": "age"}) == deleted
    assert registry.get_sample_value("vms_retention_deleted_bytes_total",
                                     {"reason": "age"}) == deleted * SEG_BYTES
    # empty day folders of old days are gone, those with footage left stay
    cam_uuid = env.gw.read_sync(lambda: m.Camera.get_by_id(cam).uuid)
    days = sorted(p.name for p in (env.root / cam_uuid).iterdir())
    assert days[0] == us_to_datetime(T0 + 15 * DAY).strftime("%Y-%m-%d")
    assert len(days) == 12  # day 15, day 25, days 30..39

    # a second pass at the same instant deletes nothing more
    again = purger.run_pass()
    assert again.by_reason == {}

    # the timeline says which time was deleted by policy and which was never recorded
    timeline = env.gw.read_sync(build_timeline, cam, T0 - DAY, T0 + 31 * DAY, now_us=NOW)
    gaps = [(g.start_us, g.end_us, g.reason) for g in timeline.gaps]
    assert gaps == [(T0 - DAY, T0, "not_recorded"), (T0, T0 + 15 * DAY, "retention"),
                    (T0 + 16 * DAY, T0 + 25 * DAY, "retention"),
                    (T0 + 26 * DAY, T0 + 30 * DAY, "retention")]


def test_holds_and_exports_protect_their_ranges_from_every_purge(env: Env) -> None:
    cam = add_camera(env, "gate")
    other = add_camera(env, "yard")
    hold_range = (T0 + 2 * DAY + 30 * 60 * 1_000_000, T0 + 3 * DAY)  # from 00:30 on day 2
    add_hold(env, cam, *hold_range)
    fresh = add_export(env, [cam], T0 + 4 * DAY, T0 + 4 * DAY + 6 * HOUR, NOW - DAY)
    stale = add_export(env, [cam, other], T0 + 6 * DAY, T0 + 7 * DAY, NOW - 8 * DAY)
    held_export = add_export(env, [other], T0 + 8 * DAY, T0 + 8 * DAY + HOUR, NOW - 9 * DAY)
    add_hold(env, other, T0 + 8 * DAY + 10 * 60 * 1_000_000, T0 + 8 * DAY + 20 * 60 * 1_000_000)
    purger = Purger(env.gw, env.settings, env.clock, chunk=64)
    report = purger.run_pass()

    def overlaps(row: tuple[int, int, str, str], start: int, end: int) -> bool:
        return row[0] < end and row[1] > start

    kept = segments(env, cam)
    expired = [r for r in kept if r[1] <= NOW - 10 * DAY]
    # what survives the age purge is exactly what the hold and the fresh export cover
    assert expired and all(overlaps(r, *hold_range)
                           or overlaps(r, T0 + 4 * DAY, T0 + 4 * DAY + 6 * HOUR)
                           for r in expired)
    assert len(expired) == 24 + 6  # the 24 hours of day 2, 00:00..05:00 of day 4
    # the stale export expired (files gone, row expired) and its range was purged with it;
    # the export a hold overlaps did not expire
    states = env.gw.read_sync(lambda: dict(m.Export.select(m.Export.id, m.Export.state).tuples()))
    assert states == {fresh: "done", stale: "expired", held_export: "done"}
    exports = env.settings.data_dir / "exports"
    assert sorted(p.name for p in exports.iterdir()) == sorted(
        f"export-{i}.{ext}" for i in (fresh, held_export) for ext in ("mp4", "manifest.json"))
    assert report.exports_expired == [stale]
    assert report.by_reason["export_expired"].bytes == 5_000 + 2
    assert not any(overlaps(r, T0 + 6 * DAY, T0 + 7 * DAY) for r in kept)
    other_kept = [r for r in segments(env, other) if r[1] <= NOW - 10 * DAY]
    assert [(r[0] - T0) // HOUR for r in other_kept] == [8 * 24]

    # the space purge (everything deletable, oldest first) and the byte cap respect them too
    protected = {r[3] for r in expired} | {r[3] for r in other_kept}
    space = PurgeReport()
    purger.free_bytes("space", 10**12, space, volume="main")
    env.gw.write_sync(lambda: m.Camera.update(retention_max_bytes=1).where(
        m.Camera.id == cam).execute())
    cap = purger.run_pass()
    assert {r[3] for r in segments(env, cam) + segments(env, other)} == protected
    assert space.by_reason["space"].segments > 0 and "byte_cap" not in cap.by_reason
    # what blocks freeing more: the holds, with the bytes each keeps
    blocking = env.gw.read_sync(blocking_holds, "main")
    assert [(h["camera_id"], h["bytes"]) for h in blocking] == [(cam, 24 * SEG_BYTES),
                                                                (other, SEG_BYTES)]
    assert_consistent(env)

    # once the fresh export expires (7 days after it finished), its range goes too
    env.clock.set_wall(NOW + 7 * DAY)
    purger.run_pass()
    assert {r[3] for r in segments(env, cam)} == {r[3] for r in expired
                                                  if overlaps(r, *hold_range)}
    # and once the hold is released, the held footage goes as well
    env.gw.write_sync(lambda: m.Hold.delete().execute())
    purger.run_pass()
    assert segments(env, cam) == [] and segments(env, other) == []
    states = env.gw.read_sync(lambda: dict(m.Export.select(m.Export.id, m.Export.state).tuples()))
    assert set(states.values()) == {"expired"}
    assert_consistent(env)


def test_byte_cap_keeps_the_newest_footage_under_the_cap(env: Env) -> None:
    env.settings = _no_age_limit(env.settings)
    cam = add_camera(env, "gate", days=10)
    other = add_camera(env, "yard", days=10)
    cap = 100 * SEG_BYTES + 500
    env.gw.write_sync(lambda: m.Camera.update(retention_max_bytes=cap).where(
        m.Camera.id == cam).execute())
    hold = (T0 + HOUR, T0 + 3 * HOUR)  # two of the oldest hours are evidence
    add_hold(env, cam, *hold)
    before = segments(env, cam)
    report = Purger(env.gw, env.settings, env.clock, chunk=50).run_pass()
    kept = segments(env, cam)
    assert sum(SEG_BYTES for _ in kept) <= cap
    held = [r for r in before if r[0] < hold[1] and r[1] > hold[0]]
    assert kept == held + before[-(100 - len(held)):]
    assert report.by_reason["byte_cap"].segments == len(before) - len(kept)
    assert len(segments(env, other)) == 240, "the other camera has no cap"
    assert {d["reason"] for d in audit_details(env)} == {"byte_cap"}
    assert_consistent(env)


def _no_age_limit(settings: Settings) -> Settings:
    from dataclasses import replace

    return replace(settings, retention=replace(settings.retention, continuous_days=0,
                                               event_days=0))


# -- a purge killed between its steps ----------------------------------------------------------

CHILD = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from recorder.retention import Purger
    from vms.clock import FakeClock
    from vms.config import load_settings
    from vms.db.gateway import Gateway

    config, now_us, stage = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    settings = load_settings(config, env={})
    gw = Gateway(settings.database_url)

    def checkpoint(reached):
        if reached == stage:
            os._exit(17)  # the process dies here: no clean-up, no further step

    Purger(gw, settings, FakeClock(now_us), chunk=100, checkpoint=checkpoint).run_pass()
    print("the purge finished without reaching", stage)
""")


def _check(config: Path, *args: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run([sys.executable, "-m", "vms.cli", "check", "--config", str(config),
                           "--json", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.mark.parametrize("stage", ["marked", "unlinked"])
def test_a_purge_killed_between_steps_recovers_with_check_clean(env: Env, stage: str) -> None:
    cam = add_camera(env, "gate", days=12)
    config = env.tmp_path / "vms.toml"
    config.write_text(f'data_dir = "{env.settings.data_dir}"\n'
                      f'[database]\nurl = "{env.settings.database.url}"\n'
                      "[retention]\ncontinuous_days = 10\n")
    before = segments(env, cam)
    first_chunk = {r[3] for r in before[:100]}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(config), str(NOW), stage],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 17, proc.stdout + proc.stderr
    pending = env.gw.read_sync(lambda: {p for (p,) in m.PendingDeletion.select(
        m.PendingDeletion.path).tuples()})
    assert pending == first_chunk, "the first chunk was marked, nothing else"
    rows = {r[3] for r in segments(env, cam)}
    assert rows == {r[3] for r in before}, "no row was deleted yet"
    on_disk = files_on_disk(env)
    if stage == "marked":
        assert on_disk == rows
    else:
        assert on_disk == rows - first_chunk
    code, report = _check(config)
    assert code == 1 and report["deletions_completed"] == 100

    code, report = _check(config, "--repair")
    assert code == 0 and report["deletions_completed"] == 100
    code, report = _check(config)
    assert code == 0 and report["problems"] == 0, report
    assert {r[3] for r in segments(env, cam)} == rows - first_chunk
    assert_consistent(env)
    # the purge carries on where it stopped
    Purger(env.gw, env.settings, env.clock, chunk=100).run_pass()
    assert segments(env, cam) == [r for r in before if r[1] > NOW - 10 * DAY]
    assert_consistent(env)
    # the interrupted chunk was audited once, when it was decided
    assert sum(d["segments"] for d in audit_details(env)) == len(before) - len(segments(env, cam))


def test_the_next_pass_finishes_an_interrupted_deletion(env: Env) -> None:
    cam = add_camera(env, "gate", days=11)
    before = segments(env, cam)

    class Crash(Exception):
        pass

    def crash(stage: str) -> None:
        if stage == "unlinked":
            raise Crash(stage)

    with pytest.raises(Crash):
        Purger(env.gw, env.settings, env.clock, chunk=10, checkpoint=crash).run_pass()
    assert env.gw.read_sync(lambda: m.PendingDeletion.select().count()) == 10
    report = Purger(env.gw, env.settings, env.clock, chunk=10).run_pass()
    assert report.pending_finished == 10
    assert segments(env, cam) == [r for r in before if r[1] > NOW - 10 * DAY]
    assert_consistent(env)


def test_min_free_percent_sets_the_floor(tmp_path: Path) -> None:
    from vms.config import ConfigError, Volume, load_settings

    assert Volume("v", tmp_path, min_free_bytes=100, min_free_percent=10).floor_bytes(10_000) \
        == 1_000
    assert Volume("v", tmp_path, min_free_bytes=5_000, min_free_percent=10).floor_bytes(10_000) \
        == 5_000
    config = tmp_path / "vms.toml"
    config.write_text('[[storage.volumes]]\nname = "a"\npath = "a"\nmin_free_percent = 100\n')
    with pytest.raises(ConfigError, match=r"storage.volumes\[0\].min_free_percent must be 0..99"):
        load_settings(config, env={})
    config.write_text('[[storage.volumes]]\nname = "a"\npath = "a"\nmin_free_percent = 12\n'
                      "[retention]\nexports_days = 3\n")
    settings = load_settings(config, env={})
    assert settings.volumes[0].min_free_percent == 12 and settings.retention.exports_days == 3


async def test_the_server_schedules_retention_and_counts_it(env: Env, aiohttp_client: Any) -> None:
    """``create_app`` wires the job ``retention`` (one at a time, coalesced, with a misfire
    grace), the recorder's disk-full hook and the counters on /metrics; the job purges."""
    from vms.app import SCHEDULER, create_app
    from web.keys import SERVICES

    cam = add_camera(env, "gate", days=11)
    env.clock.set_wall(T0 + 11 * DAY)
    app = create_app(env.settings, clock=env.clock)
    client = await aiohttp_client(app)
    job = app[SCHEDULER].get_job("retention")
    assert job is not None and job.max_instances == 1 and job.coalesce is True
    assert job.misfire_grace_time and job.misfire_grace_time >= 60
    service = app[SERVICES]["retention"]
    assert service.volume_full in app[SERVICES]["recorder"].volume_full_hooks
    report = await job.func()
    assert report.by_reason["age"].segments == 24  # day 0 is older than 10 days
    assert len(segments(env, cam)) == 11 * 24 - 24
    text = await (await client.get("/metrics")).text()
    assert 'vms_retention_deleted_segments_total{reason="age"} 24.0' in text
    assert 'vms_retention_deleted_bytes_total{reason="space"} 0.0' in text


def test_a_stopped_purge_ends_between_chunks_consistent(env: Env) -> None:
    """Shutdown (``stop_event``) ends a pass after the chunk in hand: nothing half done."""
    cam = add_camera(env, "gate", days=11)
    purger = Purger(env.gw, env.settings, env.clock, chunk=10)

    def stop_after_first(stage: str) -> None:
        if stage == "deleted":
            purger.stop_event.set()

    purger.checkpoint = stop_after_first
    report = purger.run_pass()
    assert report.by_reason["age"].segments == 10
    assert len(segments(env, cam)) == 11 * 24 - 10
    assert_consistent(env)


def test_a_volume_not_mounted_is_left_alone_until_it_is_back(env: Env) -> None:
    """An unmarked volume (a disk not mounted: its mount point is an empty folder) is never
    purged — not by age, not for space — so its index rows survive until the disk is back."""
    cam = add_camera(env, "gate")
    before = segments(env, cam)
    volume = env.settings.volumes[0]
    marker = volume.path / MARKER_NAME
    hidden = env.tmp_path / "marker.away"
    marker.rename(hidden)  # as good as unmounted: the folder holds no marker of ours
    purger = Purger(env.gw, env.settings, env.clock, chunk=100)
    report = purger.run_pass()
    assert segments(env, cam) == before and not report.by_reason
    assert purger.purge_space(volume).by_reason == {}
    hidden.rename(marker)
    purger.run_pass()
    after = segments(env, cam)
    assert after and len(after) < len(before)


def test_a_pass_in_a_child_process_stops_between_chunks(env: Env) -> None:
    """The server's scheduled pass runs in a child process (recorder/retention_child.py); stopping
    the server ends it after the chunk in hand, and the parent gets the child's report."""

    from recorder.retention import RetentionOptions
    from recorder.retention_child import ChildPass

    cam = add_camera(env, "gate", days=11)
    # after each chunk the child rests 200 times as long as the chunk took: it is resting
    # (between two chunks) when it is told to stop
    child = ChildPass(env.settings, env.clock, RetentionOptions(pause_ratio=200), chunk=10)
    result: list[PurgeReport] = []
    runner = threading.Thread(target=lambda: result.append(child.run()))
    runner.start()
    deadline = 60.0
    started = time.monotonic()
    while len(segments(env, cam)) == 11 * 24 and time.monotonic() - started < deadline:
        time.sleep(0.05)
    child.stop()
    runner.join(30)
    assert not runner.is_alive(), "the child pass did not stop"
    assert result and result[0].by_reason["age"].segments == 10
    assert len(segments(env, cam)) == 11 * 24 - 10
    assert_consistent(env)
    assert child.run().by_reason == {}  # stopped: no new pass starts


def test_a_pass_in_a_child_process_that_fails_says_why(settings_factory: Any,
                                                        tmp_path: Path) -> None:
    """A child whose database is not usable (here: never migrated) fails the pass with the
    child's own error."""
    from recorder.retention import RetentionOptions
    from recorder.retention_child import ChildPass, RetentionChildError

    broken = settings_factory(f"sqlite:///{tmp_path}/empty.sqlite3")
    with pytest.raises(RetentionChildError,
                       match="child process failed: OperationalError: no such table"):
        ChildPass(broken, FakeClock(NOW), RetentionOptions()).run()
