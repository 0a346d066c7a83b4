"""``vms serve`` recording a camsim camera stops within 5 s on SIGTERM and leaves no ffmpeg behind;
the run ends with reason ``shutdown``."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.core.test_serve import alive, descendants, free_port
from tests.recorder.conftest import SMALL
from vms.config import load_settings
from vms.db.gateway import Gateway
from vms.db.models import Camera, CameraStream, Run, Segment, Site
from vms.secrets import SecretBox


def _ffmpeg_children(pid: int) -> list[int]:
    out = []
    for child in descendants(pid):
        try:
            if b"ffmpeg" in Path(f"/proc/{child}/cmdline").read_bytes():
                out.append(child)
        except OSError:
            pass
    return out


@pytest.mark.slow
async def test_serve_with_a_recording_camera_stops_on_sigterm(tmp_path: Path,
                                                              rtsp_factory) -> None:
    server = await rtsp_factory(SMALL)
    port = free_port()
    config = tmp_path / "vms.toml"
    config.write_text(f'data_dir = "data"\n[server]\nport = {port}\n'
                      f'[recording]\nsegment_seconds = 2\n')
    settings = load_settings(config, env={})
    settings.data_dir.mkdir(parents=True)
    gw = Gateway(settings.database_url)
    gw.migrate()
    box = SecretBox.from_key_file(settings.key_file)

    def seed() -> int:
        now = int(time.time() * 1e6)
        site = Site.create(name="s", created_us=now)
        cam = Camera.create(site=site, name="gate", password_enc=box.encrypt(""),
                            status_since_us=now, created_us=now, updated_us=now)
        CameraStream.create(camera=cam, kind="main", rtsp_url=server.url("/main"))
        return int(cam.id)

    cam = gw.write_sync(seed)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vms.cli", "serve", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        deadline = time.monotonic() + 40
        while gw.read_sync(lambda: Segment.select().where(Segment.camera == cam).count()) < 2:
            assert proc.returncode is None, "server exited"
            assert time.monotonic() < deadline, "no segment recorded in time"
            await asyncio.sleep(0.3)
        ffmpegs = _ffmpeg_children(proc.pid)
        assert len(ffmpegs) == 1
        family = descendants(proc.pid)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.stderr is not None
        _, output = await asyncio.wait_for(proc.communicate(), 10)
        elapsed = time.monotonic() - started
        text = output.decode(errors="replace")
        assert elapsed < 5, f"took {elapsed:.1f} s to stop"
        assert proc.returncode == 0, text[-3000:]
        assert "Traceback" not in text, text[-3000:]
        leftovers = [pid for pid in family if alive(pid)]
        assert not leftovers, f"orphan processes after shutdown: {leftovers}"
        runs = gw.read_sync(lambda: list(Run.select().where(Run.camera == cam)))
        assert [r.end_reason for r in runs] == ["shutdown"]
        assert not (settings.data_dir / "server.lock").exists() or \
            _lock_free(settings.data_dir / "server.lock")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        gw.close()


def _lock_free(path: Path) -> bool:
    import fcntl

    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
