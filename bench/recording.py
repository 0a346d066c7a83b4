"""Recording benchmark: our supervisor against bare ffmpeg, on N camsim cameras, as one JSON object.

Starts N camsim RTSP cameras (1080p25 ~4 Mbit/s H.264 + AAC by default) on 127.0.0.1, then in the
same time window records every camera twice: once with a ``RecorderSupervisor`` running in a child
process (so its CPU and the CPU of its ffmpeg children can be measured from /proc), and once with N
bare ``ffmpeg -c copy -f segment`` processes. Prints CPU seconds of both, their ratio, RSS per
camera, and lost seconds (wall time minus indexed duration) per camera.

    python bench/recording.py --cameras 10 --minutes 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from camsim.media import ClipSpec
from camsim.rtsp import RtspServer
from vms.clock import SystemClock
from vms.config import load_settings
from vms.db.gateway import Gateway
from vms.db.models import Camera, CameraStream, Run, Segment, Site
from vms.secrets import SecretBox

CHILD = r'''
import asyncio, json, signal, sys
from vms.clock import SystemClock
from vms.config import load_settings
from vms.db.gateway import Gateway
from vms.secrets import SecretBox
from recorder.supervisor import RecorderSupervisor

async def main():
    settings = load_settings(None, env={}, overrides=json.loads(sys.argv[1]))
    gw = Gateway(settings.database_url)
    sup = RecorderSupervisor(gw, settings, SystemClock(), SecretBox.from_key_file(settings.key_file))
    await sup.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("started", flush=True)
    await stop.wait()
    await sup.stop()
    gw.close()

asyncio.run(main())
'''

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float, int] | None:
    """(ppid, cpu seconds, rss bytes) of ``pid`` from /proc, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    ppid = int(fields[1])
    cpu_s = (int(fields[11]) + int(fields[12])) / CLK_TCK
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return ppid, cpu_s, rss


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[0] == pid:
                out.append(int(entry))
    return out


class CpuMeter:
    """Keeps the largest CPU time seen per pid (it only grows) and the last RSS."""

    def __init__(self) -> None:
        self.cpu_s: dict[int, float] = {}
        self.rss: dict[int, int] = {}

    def sample(self, pids: list[int]) -> None:
        for pid in pids:
            st = _stat(pid)
            if st is not None:
                self.cpu_s[pid] = max(self.cpu_s.get(pid, 0.0), st[1])
                self.rss[pid] = st[2]

    def baseline(self, pids: list[int]) -> dict[int, float]:
        return {pid: st[1] for pid in pids if (st := _stat(pid)) is not None}


async def run(cameras: int, minutes: float, width: int, height: int, kbps: int,
              segment_seconds: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="vms-bench-rec-"))
    spec = ClipSpec(width=width, height=height, fps=25, bitrate_kbps=kbps, audio="aac", seconds=10)
    servers = []
    for _ in range(cameras):
        srv = RtspServer("127.0.0.1", 0, cache_dir=work / "cache")
        srv.add_stream("/main", spec)
        await srv.start()
        servers.append(srv)
    overrides = {"data_dir": str(work / "data"), "recording.segment_seconds": segment_seconds}
    settings = load_settings(None, env={}, overrides=overrides)
    gw = Gateway(settings.database_url)
    gw.migrate()
    box = SecretBox.from_key_file(settings.key_file)
    now = SystemClock().now_us()

    def add() -> None:
        site = Site.create(name="bench", created_us=now)
        for i, srv in enumerate(servers):
            cam = Camera.create(site=site, name=f"bench-{i}", status_since_us=now,
                                created_us=now, updated_us=now, password_enc=box.encrypt(""))
            CameraStream.create(camera=cam, kind="main", rtsp_url=srv.url("/main"))

    gw.write_sync(add)
    script = work / "child.py"
    script.write_text(CHILD)
    ffmpeg = settings.ffmpeg_exe()
    bare_dir = work / "bare"
    bare_dir.mkdir()
    duration_s = minutes * 60
    child = await asyncio.create_subprocess_exec(sys.executable, str(script),
                                                 json.dumps(overrides),
                                                 stdout=asyncio.subprocess.PIPE)
    assert child.stdout is not None
    await child.stdout.readline()
    bare = []
    for i, srv in enumerate(servers):
        bare.append(await asyncio.create_subprocess_exec(
            ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp",
            "-i", srv.url("/main"), "-map", "0:v", "-map", "0:a?", "-c", "copy",
            "-f", "segment", "-segment_time", str(segment_seconds), "-segment_format", "mp4",
            "-segment_format_options", "movflags=+frag_keyframe+empty_moov+default_base_moof",
            str(bare_dir / f"c{i}-%06d.mp4"),
            stdout=asyncio.subprocess.DEVNULL))
    ours, theirs = CpuMeter(), CpuMeter()
    # start-up (migration, reconcile, clip encoding) is excluded: baselines after 3 s
    await asyncio.sleep(3)
    our_pids = [child.pid, *_children(child.pid)]
    bare_pids = [p.pid for p in bare]
    base_ours, base_bare = ours.baseline(our_pids), theirs.baseline(bare_pids)
    t0 = time.monotonic()
    while time.monotonic() - t0 < duration_s:
        await asyncio.sleep(1)
        our_pids = [child.pid, *_children(child.pid)]
        ours.sample(our_pids)
        theirs.sample(bare_pids)
    rss_ours = sum(ours.rss.get(p, 0) for p in our_pids)
    rss_bare = sum(theirs.rss.get(p, 0) for p in bare_pids)
    cpu_ours = sum(v - base_ours.get(p, 0.0) for p, v in ours.cpu_s.items())
    cpu_python = ours.cpu_s.get(child.pid, 0.0) - base_ours.get(child.pid, 0.0)
    rss_python = ours.rss.get(child.pid, 0)
    cpu_bare = sum(v - base_bare.get(p, 0.0) for p, v in theirs.cpu_s.items())
    wall_s = time.monotonic() - t0
    started_us = SystemClock().now_us() - int((wall_s + 3) * 1e6)
    child.terminate()
    await child.wait()
    for p in bare:
        p.terminate()
    await asyncio.gather(*(p.wait() for p in bare))
    for srv in servers:
        await srv.stop()
    stopped_us = SystemClock().now_us()

    def indexed() -> dict[int, int]:
        out: dict[int, int] = {}
        for seg in Segment.select(Segment.camera, Segment.duration_us):
            out[seg.camera_id] = out.get(seg.camera_id, 0) + seg.duration_us
        return out

    def holes() -> tuple[float, int]:
        """Seconds between the first and last indexed instant of each camera not covered by a
        segment (unexplained gaps while recording), and the number of runs beyond one each."""
        total_us, extra_runs = 0, 0
        for cam in Camera.select(Camera.id):
            segs = list(Segment.select(Segment.start_us, Segment.end_us)
                        .where(Segment.camera == cam.id).order_by(Segment.start_us))
            for a, b in zip(segs, segs[1:]):
                total_us += max(0, b.start_us - a.end_us)
            extra_runs += max(0, Run.select().where(Run.camera == cam.id).count() - 1)
        return total_us / 1e6, extra_runs

    per_camera = gw.read_sync(indexed)
    hole_s, extra_runs = gw.read_sync(holes)
    gw.close()
    window_s = (stopped_us - started_us) / 1e6
    lost = [max(0.0, window_s - per_camera.get(cid, 0) / 1e6) for cid in range(1, cameras + 1)]
    return {
        "cameras": cameras, "minutes": minutes, "stream": f"{width}x{height}@25 {kbps} kbit/s",
        "segment_seconds": segment_seconds, "measured_s": round(wall_s, 1),
        "cpu_s_ours": round(cpu_ours, 2), "cpu_s_bare_ffmpeg": round(cpu_bare, 2),
        "cpu_ratio": round(cpu_ours / cpu_bare, 3) if cpu_bare else None,
        "cpu_s_ours_python": round(cpu_python, 2),
        "cpu_s_ours_ffmpeg": round(cpu_ours - cpu_python, 2),
        "rss_mb_python": round(rss_python / 2**20, 1),
        "cpu_percent_core_per_camera_ours": round(100 * cpu_ours / wall_s / cameras, 2),
        "rss_mb_per_camera_ours": round(rss_ours / cameras / 2**20, 1),
        "rss_mb_per_camera_bare": round(rss_bare / cameras / 2**20, 1),
        "lost_s_total": round(sum(lost), 2),
        "lost_s_max_camera": round(max(lost), 2),
        "work_dir": str(work),
        "lost_note": "window from supervisor start to stop, includes connect time at start",
        "gap_s_inside_recording_total": round(hole_s, 3),
        "runs_beyond_one": extra_runs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=10)
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--kbps", type=int, default=4000)
    ap.add_argument("--segment-seconds", type=int, default=60)
    ap.add_argument("--keep", action="store_true", help="keep the work folder (recordings)")
    args = ap.parse_args()
    result = asyncio.run(run(args.cameras, args.minutes, args.width, args.height, args.kbps,
                             args.segment_seconds))
    work = str(result.pop("work_dir"))
    if args.keep:
        result["work_dir"] = work
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
