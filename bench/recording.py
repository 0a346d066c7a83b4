"""Recording benchmark: our supervisor against bare ffmpeg, on N camsim cameras, as one JSON object.

Starts N camsim RTSP cameras (1080p25 ~4 Mbit/s H.264 + AAC by default) on 127.0.0.1, then in the
same time window records every camera twice: once with a ``RecorderSupervisor`` running in a child
process (so its CPU and the CPU of its ffmpeg children can be measured from /proc), and once with N
bare ``ffmpeg -c copy -f segment`` processes. Prints CPU seconds of both, their ratio, RSS per
camera, and lost seconds (wall time minus indexed duration) per camera.

With ``--compare-live`` the second variant is not bare ffmpeg but a second supervisor child with
live feeds wired (``LiveFeeds``, as ``vms serve`` runs it: every recording ffmpeg also writes the
live fMP4 output, which the server reads and splits, nobody watching), each child on its own
database, both recording the same cameras in the same window. Both report the server process's CPU
(all its threads), its event-loop thread's alone, and their ffmpeg children's, in CPU seconds per
camera per minute, the event loop's lag (p50/p99/max of a 20 ms ticker), and the ratios
live/no-live.

    python bench/recording.py --cameras 10 --minutes 2
    python bench/recording.py --cameras 30 --minutes 2 --compare-live
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
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
import asyncio, json, signal, sys, time
from vms.clock import SystemClock
from vms.config import load_settings
from vms.db.gateway import Gateway
from vms.secrets import SecretBox
from recorder.live_tap import LiveFeeds
from recorder.supervisor import RecorderSupervisor

TICK_S = 0.02

async def main():
    settings = load_settings(None, env={}, overrides=json.loads(sys.argv[1]))
    feeds = LiveFeeds() if sys.argv[2] == "live" else None
    gw = Gateway(settings.database_url)
    sup = RecorderSupervisor(gw, settings, SystemClock(), SecretBox.from_key_file(settings.key_file),
                             live_feeds=feeds)
    await sup.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    lags = []
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    mark = [time.thread_time()]  # CPU of this thread: the event loop's

    def window_starts():
        lags.clear()
        mark[0] = time.thread_time()

    loop.add_signal_handler(signal.SIGUSR1, window_starts)

    async def ticker():
        while True:
            t = time.monotonic()
            await asyncio.sleep(TICK_S)
            lags.append(time.monotonic() - t - TICK_S)

    tick = asyncio.create_task(ticker())
    print("started", flush=True)
    await stop.wait()
    loop_cpu_s = time.thread_time() - mark[0]
    tick.cancel()
    lags.sort()
    pick = lambda q: round(1000 * lags[min(len(lags) - 1, int(q * len(lags)))], 1) if lags else None
    keys = [(i, "main") for i in range(1, int(sys.argv[3]) + 1)]
    gops = [len(f.gop) for k in keys if feeds is not None and (f := feeds.get(k)) is not None]
    print(json.dumps({"lag_ms_p50": pick(0.5), "lag_ms_p99": pick(0.99), "lag_ms_max": pick(1.0),
                      "lag_samples": len(lags), "loop_thread_cpu_s": round(loop_cpu_s, 3),
                      "live_feeds": len(gops),
                      "live_feeds_with_gop": sum(1 for g in gops if g)}), flush=True)
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


async def _cameras(work: Path, cameras: int, spec: ClipSpec) -> list[RtspServer]:
    servers = []
    for _ in range(cameras):
        srv = RtspServer("127.0.0.1", 0, cache_dir=work / "cache")
        srv.add_stream("/main", spec)
        await srv.start()
        servers.append(srv)
    return servers


def _seed(data_dir: Path, segment_seconds: int, servers: list[RtspServer]) -> dict[str, object]:
    """A fresh database in ``data_dir`` with one recorded camera per server; the overrides."""
    overrides: dict[str, object] = {"data_dir": str(data_dir),
                                    "recording.segment_seconds": segment_seconds}
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
    gw.close()
    return overrides


async def _child(script: Path, overrides: dict[str, object], variant: str,
                 cameras: int) -> asyncio.subprocess.Process:
    child = await asyncio.create_subprocess_exec(sys.executable, str(script),
                                                 json.dumps(overrides), variant, str(cameras),
                                                 stdout=asyncio.subprocess.PIPE)
    assert child.stdout is not None
    await child.stdout.readline()
    return child


def _coverage(overrides: dict[str, object], cameras: int,
              window_s: float) -> dict[str, float | int]:
    """Lost seconds (window minus indexed duration) and holes of one child's database."""
    gw = Gateway(load_settings(None, env={}, overrides=overrides).database_url)

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
    lost = [max(0.0, window_s - per_camera.get(cid, 0) / 1e6) for cid in range(1, cameras + 1)]
    return {"lost_s_total": round(sum(lost), 2), "lost_s_max_camera": round(max(lost), 2),
            "gap_s_inside_recording_total": round(hole_s, 3), "runs_beyond_one": extra_runs}


async def _measure(groups: dict[str, list[int]], children: dict[str, int],
                   duration_s: float) -> tuple[dict[str, CpuMeter], dict[str, dict[int, float]],
                                               float]:
    """Sample CPU of each group (a supervisor child and its children, or listed pids)."""
    def pids(name: str) -> list[int]:
        if name in children:
            return [children[name], *_children(children[name])]
        return groups[name]

    meters = {name: CpuMeter() for name in groups}
    bases = {name: meters[name].baseline(pids(name)) for name in groups}
    for pid in children.values():
        os.kill(pid, signal.SIGUSR1)  # the lag samples start now
    t0 = time.monotonic()
    while time.monotonic() - t0 < duration_s:
        await asyncio.sleep(1)
        for name in groups:
            meters[name].sample(pids(name))
    return meters, bases, time.monotonic() - t0


def _cpu(meter: CpuMeter, base: dict[int, float], pid: int | None = None) -> float:
    if pid is not None:
        return meter.cpu_s.get(pid, 0.0) - base.get(pid, 0.0)
    return sum(v - base.get(p, 0.0) for p, v in meter.cpu_s.items())


async def _stop_child(child: asyncio.subprocess.Process) -> dict[str, object]:
    child.terminate()
    assert child.stdout is not None
    line = await asyncio.wait_for(child.stdout.readline(), 60)
    await child.wait()
    return dict(json.loads(line)) if line.strip() else {}


async def run(cameras: int, minutes: float, width: int, height: int, kbps: int,
              segment_seconds: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="vms-bench-rec-"))
    spec = ClipSpec(width=width, height=height, fps=25, bitrate_kbps=kbps, audio="aac", seconds=10)
    servers = await _cameras(work, cameras, spec)
    overrides = _seed(work / "data", segment_seconds, servers)
    script = work / "child.py"
    script.write_text(CHILD)
    ffmpeg = load_settings(None, env={}, overrides=overrides).ffmpeg_exe()
    bare_dir = work / "bare"
    bare_dir.mkdir()
    duration_s = minutes * 60
    started_us = SystemClock().now_us()
    child = await _child(script, overrides, "plain", cameras)
    bare = []
    for i, srv in enumerate(servers):
        bare.append(await asyncio.create_subprocess_exec(
            ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp",
            "-i", srv.url("/main"), "-map", "0:v", "-map", "0:a?", "-c", "copy",
            "-f", "segment", "-segment_time", str(segment_seconds), "-segment_format", "mp4",
            "-segment_format_options", "movflags=+frag_keyframe+empty_moov+default_base_moof",
            str(bare_dir / f"c{i}-%06d.mp4"),
            stdout=asyncio.subprocess.DEVNULL))
    # start-up (migration, reconcile, clip encoding) is excluded: baselines after 3 s
    await asyncio.sleep(3)
    meters, bases, wall_s = await _measure(
        {"ours": [], "bare": [p.pid for p in bare]}, {"ours": child.pid}, duration_s)
    ours, theirs = meters["ours"], meters["bare"]
    rss_ours = sum(ours.rss.values())
    rss_bare = sum(theirs.rss.values())
    cpu_ours = _cpu(ours, bases["ours"])
    cpu_python = _cpu(ours, bases["ours"], child.pid)
    rss_python = ours.rss.get(child.pid, 0)
    cpu_bare = _cpu(theirs, bases["bare"])
    lag = await _stop_child(child)
    for p in bare:
        p.terminate()
    await asyncio.gather(*(p.wait() for p in bare))
    for srv in servers:
        await srv.stop()
    window_s = (SystemClock().now_us() - started_us) / 1e6
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
        **_coverage(overrides, cameras, window_s),
        "event_loop": lag,
        "load_average_1m": round(os.getloadavg()[0], 1),
        "work_dir": str(work),
        "lost_note": "window from supervisor start to stop, includes connect time at start",
    }


async def run_compare_live(cameras: int, minutes: float, width: int, height: int, kbps: int,
                           segment_seconds: int) -> dict[str, object]:
    """Two supervisors on the same cameras at once: without live feeds and with them."""
    work = Path(tempfile.mkdtemp(prefix="vms-bench-rec-"))
    spec = ClipSpec(width=width, height=height, fps=25, bitrate_kbps=kbps, audio="aac", seconds=10)
    servers = await _cameras(work, cameras, spec)
    variants = ("no_live", "live")
    overrides = {v: _seed(work / v, segment_seconds, servers) for v in variants}
    script = work / "child.py"
    script.write_text(CHILD)
    started_us = SystemClock().now_us()
    children = {v: await _child(script, overrides[v], "live" if v == "live" else "plain", cameras)
                for v in variants}
    await asyncio.sleep(5)  # start-up (migration, reconcile, connecting) is excluded
    load_before = os.getloadavg()
    meters, bases, wall_s = await _measure({v: [] for v in variants},
                                           {v: c.pid for v, c in children.items()},
                                           minutes * 60)
    load_after = os.getloadavg()
    lags = {v: await _stop_child(c) for v, c in children.items()}
    for srv in servers:
        await srv.stop()
    window_s = (SystemClock().now_us() - started_us) / 1e6
    per_cam_min = cameras * wall_s / 60
    out: dict[str, object] = {
        "cameras": cameras, "minutes": minutes, "stream": f"{width}x{height}@25 {kbps} kbit/s",
        "segment_seconds": segment_seconds, "measured_s": round(wall_s, 1),
        "unit": "CPU seconds per camera per minute (60 = one core per camera)",
    }
    figures: dict[str, dict[str, float]] = {}
    for v in variants:
        py = _cpu(meters[v], bases[v], children[v].pid)
        ff = _cpu(meters[v], bases[v]) - py
        loop_s = float(str(lags[v].get("loop_thread_cpu_s", 0.0)))
        figures[v] = {"server_cpu_s": py / per_cam_min, "ffmpeg_cpu_s": ff / per_cam_min,
                      "loop_thread_cpu_s": loop_s / per_cam_min}
        out[v] = {
            "server_cpu_s_per_camera_minute": round(py / per_cam_min, 4),
            "event_loop_thread_cpu_s_per_camera_minute": round(loop_s / per_cam_min, 4),
            "ffmpeg_cpu_s_per_camera_minute": round(ff / per_cam_min, 4),
            "server_rss_mb": round(meters[v].rss.get(children[v].pid, 0) / 2**20, 1),
            "event_loop": lags[v],
            **_coverage(overrides[v], cameras, window_s),
        }

    def ratio(key: str) -> float | None:
        base = figures["no_live"][key]
        return round(figures["live"][key] / base, 3) if base else None

    lag_live, lag_plain = lags["live"].get("lag_ms_p99"), lags["no_live"].get("lag_ms_p99")
    out["ratio_live_over_no_live"] = {
        "server_cpu": ratio("server_cpu_s"), "event_loop_thread_cpu": ratio("loop_thread_cpu_s"),
        "ffmpeg_cpu": ratio("ffmpeg_cpu_s"),
        "lag_p99": round(float(str(lag_live)) / float(str(lag_plain)), 3)
        if lag_live and lag_plain else None,
    }
    out["load_average"] = {"before": [round(x, 2) for x in load_before],
                           "after": [round(x, 2) for x in load_after]}
    out["work_dir"] = str(work)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=10)
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--kbps", type=int, default=4000)
    ap.add_argument("--segment-seconds", type=int, default=60)
    ap.add_argument("--keep", action="store_true", help="keep the work folder (recordings)")
    ap.add_argument("--compare-live", action="store_true",
                    help="compare supervisors with and without live feeds instead of bare ffmpeg")
    args = ap.parse_args()
    bench = run_compare_live if args.compare_live else run
    result = asyncio.run(bench(args.cameras, args.minutes, args.width, args.height, args.kbps,
                               args.segment_seconds))
    work = str(result.pop("work_dir"))
    if args.keep:
        result["work_dir"] = work
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
