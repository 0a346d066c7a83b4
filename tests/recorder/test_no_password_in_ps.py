"""No camera password in any process's arguments (``ps -eo args``, i.e. ``/proc/*/cmdline``, which
every local user can read) while a camera is recorded, watched live and snapshotted at once."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from urllib.parse import quote

from onvif_bridge.rtsp_frame import grab_jpeg
from recorder.live import LiveOptions, LiveService
from recorder.supervisor import RecorderSupervisor
from tests.leakcheck import register_sensitive
from tests.recorder.conftest import RecEnv
from vms.db.models import Segment

PASSWORD = "Ps-Visible:9x@pw"
LIVE = LiveOptions(grace_s=0.2, startup_timeout_s=15.0, backoff_initial_s=0.2, backoff_max_s=1.0,
                   stop_timeout_s=3.0, socket_timeout_s=5.0)


def count_segments(env: RecEnv, cam: int) -> int:
    return env.gw.read_sync(lambda: Segment.select().where(Segment.camera == cam).count())


def _parent(pid: str) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return next((int(line.split()[1]) for line in status.splitlines()
                 if line.startswith("PPid:")), None)


class ArgsWatcher(threading.Thread):
    """Reads every process's command line every few milliseconds, as ``ps -eo args`` would."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stopped = threading.Event()
        self.ffmpeg: dict[int, str] = {}
        """pid → command line of every ffmpeg child of this process seen."""
        self.all_args: set[str] = set()

    def run(self) -> None:
        while not self.stopped.wait(0.01):
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    raw = Path(f"/proc/{entry}/cmdline").read_bytes()
                except OSError:
                    continue
                args = raw.replace(b"\0", b" ").decode("utf-8", "replace")
                self.all_args.add(args)
                if "ffmpeg" in os.path.basename(raw.split(b"\0", 1)[0].decode(errors="replace")) \
                        and _parent(entry) == os.getpid():
                    self.ffmpeg.setdefault(int(entry), args)


async def test_no_camera_password_in_ps_while_recording_live_and_snapshot(
        rec_env: RecEnv, rtsp_factory, rec_options, wait_for) -> None:
    env = rec_env
    register_sensitive(PASSWORD)
    server = await rtsp_factory(username="admin", password=PASSWORD)
    url = server.url("/main")
    cam = env.add_camera("gate", url, "admin", PASSWORD)
    watcher = ArgsWatcher()
    watcher.start()
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, rec_options)
    live = LiveService(env.gw, env.settings, env.secrets, LIVE)
    try:
        await sup.start()
        async with live.watch(cam, "main") as viewer:
            first = await anext(aiter(viewer))
            assert first.kind == "init", first
            jpeg = await grab_jpeg(env.settings.ffmpeg_exe(), url, "admin", PASSWORD,
                                   label="gate", timeout_s=10)
            assert jpeg[:2] == b"\xff\xd8"
            await wait_for(lambda: count_segments(env, cam) >= 1, 20)
    finally:
        await live.stop()
        await sup.stop()
        watcher.stopped.set()
        watcher.join()
    roles = {"recording": "segment_list", "live": "frag_every_frame", "snapshot": "mjpeg"}
    for role, marker in roles.items():
        assert any(marker in args for args in watcher.ffmpeg.values()), \
            f"no {role} ffmpeg seen among {list(watcher.ffmpeg.values())}"
    forms = {PASSWORD, quote(PASSWORD, safe=""), quote(PASSWORD)}
    leaks = [args for args in watcher.all_args for form in forms if form in args]
    assert not leaks, f"a camera password is in a process's arguments: {leaks[:3]}"
