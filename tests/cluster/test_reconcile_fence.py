"""Reconciliation in a cluster keeps "no time range of a camera is ever indexed twice": an
unindexed file of a crashed run of this node is adopted only when no other node took the camera's
lease before the file's end and no other run's indexed footage covers its time; a refused file goes
to lost+found with its reason (recorder/index.py ``adoption_problem``). Real PostgreSQL, real files
(ffmpeg), no cluster processes."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from recorder.reconcile import reconcile
from recorder.segments import run_dir
from recorder.volumes import database_uuid, mark_volume
from tests.cluster.conftest import no_overlap
from vms.clock import SystemClock
from vms.config import load_settings
from vms.db.gateway import Gateway
from vms.db.models import Camera, CameraLease, Run, Segment, Site

S = 1_000_000
T0 = 1_780_000_000 * S  # 2026-05-28


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A playable 2-second fragmented MP4, like a segment the recorder writes."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    subprocess.run([load_settings(None, env={}).ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10:duration=2",
                    "-c:v", "libx264", "-g", "10", "-movflags",
                    "+frag_keyframe+empty_moov+default_base_moof", str(path)],
                   check=True, timeout=60)
    return path


def test_adoption_refuses_time_another_node_took_or_indexed(
        tmp_path: Path, cluster_db: str, clip: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "rec").mkdir()
    config = tmp_path / "vms.toml"
    config.write_text(f'data_dir = "data"\n[database]\nurl = "{cluster_db}"\n'
                      '[cluster]\nnode_name = "a"\n'
                      '[[storage.volumes]]\nname = "vol-a"\npath = "rec"\n')
    settings = load_settings(config, env={})
    assert settings.clustered
    volume = settings.volumes[0]
    gw = Gateway(cluster_db)
    try:
        mark_volume(volume, gw.write_sync(database_uuid), T0)

        def seed() -> dict[str, object]:
            site = Site.create(name="S", created_us=T0)
            cams = [Camera.create(site=site, name=name, status_since_us=T0, created_us=T0,
                                  updated_us=T0) for name in ("gate", "yard")]
            gate, yard = cams
            # gate: node b took its lease at T0 + 10 s (a crashed before that)
            CameraLease.create(camera=gate, node="b", epoch=2, taken_us=T0 + 10 * S,
                               expires_us=T0 + 3600 * S, reason="node_lost")
            # yard: a holds it again, but b recorded [T0 + 20 s, T0 + 22 s) meanwhile
            CameraLease.create(camera=yard, node="a", epoch=3, taken_us=T0 + 30 * S,
                               expires_us=T0 + 3600 * S)
            b_run = Run.create(camera=yard, start_us=T0 + 20 * S, end_us=T0 + 22 * S,
                               end_reason="handover", node="b")
            Segment.create(camera=yard, run=b_run, volume="vol-b", path="b/seg.mp4",
                           start_us=T0 + 20 * S, end_us=T0 + 22 * S, duration_us=2 * S,
                           size_bytes=1000)
            runs = {
                "before_take": Run.create(camera=gate, start_us=T0, node="a"),
                "after_take": Run.create(camera=gate, start_us=T0 + 11 * S, node="a"),
                "overlapping": Run.create(camera=yard, start_us=T0 + 21 * S, node="a"),
                "clear": Run.create(camera=yard, start_us=T0 + 23 * S, node="a"),
            }
            return {key: (run.camera.uuid, run.uuid, run.start_us) for key, run in runs.items()}

        runs = gw.write_sync(seed)
        files: dict[str, str] = {}
        for key, (cam_uuid, run_uuid, start_us) in runs.items():  # type: ignore[misc]
            folder = run_dir(volume, cam_uuid, "main", start_us)
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(clip, folder / f"{run_uuid}-000000.mp4")
            files[key] = str((folder / f"{run_uuid}-000000.mp4").relative_to(volume.path))

        # a check-only pass says what it would do and touches nothing
        report = reconcile(gw, settings, SystemClock(), False)
        assert sorted(report.adopted) == sorted(f"vol-a:{files[k]}"
                                                for k in ("before_take", "clear"))
        assert len(report.refused) == 2
        assert gw.read_sync(lambda: Segment.select().count()) == 1

        with caplog.at_level(logging.WARNING, logger="recorder.reconcile"):
            report = reconcile(gw, settings, SystemClock(), True)
        refused = dict(line.split(": ", 1) for line in report.refused)
        assert set(refused) == {f"vol-a:{files['after_take']}", f"vol-a:{files['overlapping']}"}
        assert "node 'b' took the camera's lease (epoch 2)" in refused[f"vol-a:{files['after_take']}"]
        assert "overlaps b/seg.mp4" in refused[f"vol-a:{files['overlapping']}"]
        assert sorted(report.adopted) == sorted(f"vol-a:{files[k]}"
                                                for k in ("before_take", "clear"))
        for key in ("after_take", "overlapping"):  # set aside, with a log line saying why
            assert not (volume.path / files[key]).exists()
            assert (volume.path / "lost+found" / files[key]).is_file()
            assert any(files[key] in r.getMessage() and "refused" in r.getMessage()
                       for r in caplog.records)
        indexed = gw.read_sync(lambda: list(
            Segment.select(Segment.camera, Segment.start_us, Segment.end_us, Segment.volume,
                           Segment.path, Run.node).join(Run)
            .order_by(Segment.camera, Segment.start_us).tuples()))
        assert {row[4] for row in indexed} == {"b/seg.mp4", files["before_take"], files["clear"]}
        assert no_overlap(indexed, tolerance_us=0) == []
        # every crashed run of a is closed; a second pass finds nothing more to do
        assert gw.read_sync(lambda: Run.select().where(Run.end_us.is_null()).count()) == 0
        again = reconcile(gw, settings, SystemClock(), True)
        assert again.adopted == [] and again.refused == []
    finally:
        gw.close()
