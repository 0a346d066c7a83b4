"""Live-view benchmark: glass-to-glass latency and CPU per viewer, as one JSON object.

Starts a camsim RTSP camera (1080p25 ~4 Mbit/s H.264 by default) on 127.0.0.1 and the whole server
(without recording) in a child process, so its CPU and its ffmpeg children's CPU can be read from
/proc. Then, through the live WebSocket:

- phase 1: one viewer for ``--seconds``; phase 2: ``--viewers`` viewers for ``--seconds``. For each
  fragment a viewer receives, latency = receive wall clock − camsim's capture time (the SEI stamped
  in the frame), i.e. camera → server → ffmpeg → WebSocket → client; reported as p50/p95/max.
- CPU of the server process and of its ffmpeg children in each phase, and the marginal CPU of one
  more viewer ((phase 2 − phase 1) / (viewers − 1)).
- with ``--browser``: Chromium plays the live page and reports its own estimate (newest frame's
  capture time vs the wall clock when displayed, plus how far playback is behind that frame).
- first picture (``--trials`` each): the time from opening the WebSocket to the first frame a
  client can show, decoded with PyAV from the init segment and the fragments received so far —
  *cold* (nobody watching: the server starts ffmpeg and the camera session) and *warm* (another
  viewer is watching: init + cached GOP at once), p50/p95 against the targets (1 s cold, 0.3 s
  warm). The same with ffmpeg alone, for the live input options before issue 16 (``-fflags
  nobuffer``, default probe) and now (short probe, probed packets kept). And *recorded*: a second
  camera the server records, watched by nobody — live view attaches to the recording ffmpeg's
  live output (init + GOP at once), opening no second camera session (``camera_sessions_max``).

    python bench/live.py --viewers 8 --seconds 20 [--browser] [--trials 10] [--first-picture-only]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from camsim.media import ClipSpec
from camsim.rtsp import RtspServer
from camsim.sei import find_capture_times
from recorder.fmp4 import Fmp4Splitter
from recorder.live import LiveSource, live_argv, live_input
from vms.auth import Accounts
from vms.clock import SystemClock
from vms.config import load_settings
from vms.db.gateway import Gateway
from vms.db.models import Camera, CameraStream
from vms.secrets import SecretBox

CHILD = r'''
import asyncio, json, signal, sys
from aiohttp import web
from vms.app import create_app
from vms.config import load_settings
from vms.logs import setup_logging

async def main():
    settings = load_settings(None, env={}, overrides=json.loads(sys.argv[1]))
    setup_logging(settings.logging.level, settings.logging.format)
    app = create_app(settings, start_recorder=len(sys.argv) > 3 and sys.argv[3] == "record")
    if len(sys.argv) > 2:  # a short grace period, so cold trials need not wait 5 s each
        import dataclasses
        from recorder.live import LiveService
        from web.keys import SERVICES

        async def short_grace(app):
            live = app[SERVICES]["live"]
            assert isinstance(live, LiveService)
            live.options = dataclasses.replace(live.options, grace_s=float(sys.argv[2]))
        app.on_startup.append(short_grace)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print("port", runner.addresses[0][1], flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()

asyncio.run(main())
'''

CLK_TCK = os.sysconf("SC_CLK_TCK")
USER, PASSWORD = "bench", "bench-pass-123"
CAM_USER, CAM_PASSWORD = "admin", "bench-cam-pw"


def cpu_s(pid: int) -> float:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(raw[raw.rindex(")") + 2:].split()[1]) == pid:
                out.append(int(entry))
    return out


class Viewer:
    def __init__(self) -> None:
        self.latencies_s: list[float] = []
        self.fragments = 0
        self.bytes = 0
        self.recording = False

    async def run(self, session: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> None:
        async with session.ws_connect(url, max_msg_size=0) as ws:
            while not stop.is_set():
                try:
                    msg = await asyncio.wait_for(ws.receive(), 1.0)
                except TimeoutError:
                    continue
                if msg.type != aiohttp.WSMsgType.BINARY:
                    if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        break
                    continue
                now = time.time()
                data: bytes = msg.data
                mdat = data.find(b"mdat")
                if mdat < 0 or not self.recording:
                    continue
                self.fragments += 1
                self.bytes += len(data)
                times = find_capture_times(data[mdat + 4:])
                if times:
                    self.latencies_s.append(now - times[0] / 1e6)


def summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "max_ms": None}
    ordered = sorted(values)
    return {"p50_ms": round(statistics.median(ordered) * 1000, 1),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1)}


async def phase(session: aiohttp.ClientSession, url: str, server_pid: int, viewers: int,
                seconds: float, warmup_s: float = 3.0) -> dict[str, Any]:
    stop = asyncio.Event()
    group = [Viewer() for _ in range(viewers)]
    tasks = [asyncio.create_task(v.run(session, url, stop)) for v in group]
    await asyncio.sleep(warmup_s)
    failed = [t.exception() for t in tasks if t.done() and t.exception() is not None]
    if failed:
        raise RuntimeError(f"viewers failed: {failed}")
    for v in group:
        v.recording = True
    pids = [server_pid, *children(server_pid)]
    before = {pid: cpu_s(pid) for pid in pids}
    start = time.monotonic()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - start
    after = {pid: cpu_s(pid) for pid in pids}
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    server_pct = (after[server_pid] - before[server_pid]) / wall * 100
    ffmpeg_pct = sum(after[p] - before[p] for p in pids if p != server_pid) / wall * 100
    latencies = [x for v in group for x in v.latencies_s]
    return {"viewers": viewers, "seconds": round(wall, 1), "ffmpeg_processes": len(pids) - 1,
            "server_cpu_pct": round(server_pct, 2), "ffmpeg_cpu_pct": round(ffmpeg_pct, 2),
            "fragments_per_viewer_per_s": round(sum(v.fragments for v in group) / viewers / wall, 1),
            "mbit_per_viewer": round(sum(v.bytes for v in group) * 8 / viewers / wall / 1e6, 2),
            "latency": summary(latencies)}


async def browser_figure(base: str, camera_id: int, seconds: float) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    chromium = os.environ.get("VMS_TEST_CHROMIUM", "/usr/bin/chromium")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = await browser.new_page()
        await page.goto(f"{base}/login")
        await page.fill("input[name=username]", USER)
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{base}/")
        await page.goto(f"{base}/cameras/{camera_id}/live")
        await page.wait_for_function(
            "() => (window.vmsLivePlayers||[])[0] && window.vmsLivePlayers[0].stats.latencyMs",
            timeout=30_000)
        await page.wait_for_timeout(2000)
        samples = []
        for _ in range(int(seconds * 4)):
            samples.append(await page.evaluate("window.vmsLivePlayers[0].stats.latencyMs") / 1000)
            await page.wait_for_timeout(250)
        quality = await page.evaluate(
            "(() => { const q = window.vmsLivePlayers[0].video.getVideoPlaybackQuality();"
            " return {frames: q.totalVideoFrames, dropped: q.droppedVideoFrames}; })()")
        await browser.close()
    return {"latency": summary(samples), **quality}


def decodable(init: bytes, fragments: list[bytes]) -> bool:
    """True when PyAV decodes a picture from the init segment and these fragments."""
    import av

    try:
        with av.open(io.BytesIO(init + b"".join(fragments)), format="mp4") as container:
            stream = container.streams.video[0]
            stream.thread_type = "NONE"  # frame threads cost more to start than one frame
            stream.codec_context.thread_count = 1
            for _frame in container.decode(stream):
                return True
    except av.error.FFmpegError:
        return False
    return False


async def first_picture_s(session: aiohttp.ClientSession, url: str) -> float:
    """Seconds from opening the WebSocket to the first decodable picture."""
    start = time.monotonic()
    init: bytes | None = None
    fragments: list[bytes] = []
    async with session.ws_connect(url, max_msg_size=0) as ws:
        while time.monotonic() - start < 30:
            msg = await ws.receive(timeout=30)
            if msg.type == aiohttp.WSMsgType.TEXT:
                if json.loads(msg.data)["type"] == "init":
                    init, fragments = None, []
                continue
            if msg.type != aiohttp.WSMsgType.BINARY:
                raise RuntimeError(f"live socket ended: {msg.type}")
            if init is None:
                init = msg.data
                continue
            fragments.append(msg.data)
            if decodable(init, fragments):
                return time.monotonic() - start
    raise RuntimeError("no picture within 30 s")



async def wait_no_session(rtsp: RtspServer, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while rtsp.session_count:
        if time.monotonic() > deadline:
            raise RuntimeError("the live stream did not stop")
        await asyncio.sleep(0.05)


async def first_picture(session: aiohttp.ClientSession, url: str, rtsp: RtspServer,
                        trials: int) -> dict[str, Any]:
    cold = []
    for _ in range(trials):
        await wait_no_session(rtsp)
        await asyncio.sleep(0.2)
        cold.append(await first_picture_s(session, url))
    await wait_no_session(rtsp)
    stop = asyncio.Event()
    watcher = Viewer()
    task = asyncio.create_task(watcher.run(session, url, stop))
    warm = []
    try:
        await asyncio.sleep(2.0)
        for i in range(trials):
            await asyncio.sleep(0.137 * (i % 8))  # land at different places in the GOP
            warm.append(await first_picture_s(session, url))
    finally:
        stop.set()
        await task
    return {"cold": {**summary(cold), "trials": len(cold), "target_p95_ms": 1000},
            "warm": {**summary(warm), "trials": len(warm), "target_p95_ms": 300}}


async def recorded_first_picture(session: aiohttp.ClientSession, url: str, rtsp: RtspServer,
                                 trials: int) -> dict[str, Any]:
    """A recorded camera nobody watches: live view shares the recorder's session."""
    deadline = time.monotonic() + 30
    while rtsp.session_count != 1:
        if time.monotonic() > deadline:
            raise RuntimeError("the recorder did not connect")
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.0)
    times, sessions = [], 0
    for i in range(trials):
        await asyncio.sleep(0.6 + 0.137 * (i % 8))  # the live stream's 0.3 s grace has passed
        times.append(await first_picture_s(session, url))
        sessions = max(sessions, rtsp.session_count)
    return {**summary(times), "trials": len(times), "target_p95_ms": 300,
            "camera_sessions_max": sessions}


OLD_OPTIONS = {"fflags": "nobuffer"}
"""The live input before issue 16: ``-fflags nobuffer`` (on the RTSP and the concat input), the
default probe. nobuffer discards the packets read while probing, so the first GOP was lost."""


async def ffmpeg_first_picture_s(ffmpeg_exe: str, source: LiveSource, old: bool) -> float:
    src = live_input(source, fast_probe=not old)
    if old:
        assert src.stdin is not None
        lines = src.stdin.decode().splitlines()
        lines.insert(2, "option fflags 'nobuffer'")
        src = dataclasses.replace(src, options={**OLD_OPTIONS, **src.options},
                                  stdin=("\n".join(lines) + "\n").encode())
    argv = live_argv(ffmpeg_exe, src)
    start = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(src.stdin or b"")
    proc.stdin.close()
    splitter = Fmp4Splitter()
    init: bytes | None = None
    fragments: list[bytes] = []
    try:
        while time.monotonic() - start < 30:
            data = await asyncio.wait_for(proc.stdout.read(256 * 1024), 30)
            if not data:
                break
            for kind, unit in splitter.feed(data):
                if kind == "init":
                    init = unit
                elif init is not None:
                    fragments.append(unit)
                    if decodable(init, fragments):
                        return time.monotonic() - start
        raise RuntimeError("ffmpeg gave no picture")
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def ffmpeg_only(ffmpeg_exe: str, source: LiveSource, trials: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, old in (("before_issue_16", True), ("now", False)):
        times = [await ffmpeg_first_picture_s(ffmpeg_exe, source, old) for _ in range(trials)]
        out[name] = {**summary(times), "trials": len(times)}
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="vms-bench-live-"))
    spec = ClipSpec(width=args.width, height=args.height, fps=25, bitrate_kbps=args.kbps,
                    audio="aac", seconds=10)
    rtsp = RtspServer("127.0.0.1", 0, username=CAM_USER, password=CAM_PASSWORD)
    rtsp.add_stream("/main", spec)
    await rtsp.start()
    overrides = {"data_dir": str(work / "data"), "logging.level": "WARNING"}
    settings = load_settings(None, env={}, overrides=overrides)
    gw = Gateway(settings.database_url)
    gw.migrate()
    box = SecretBox.from_key_file(settings.key_file)
    clock = SystemClock()
    accounts = Accounts(clock)

    rtsp_rec = RtspServer("127.0.0.1", 0, username=CAM_USER, password=CAM_PASSWORD)
    rtsp_rec.add_stream("/main", spec)
    if args.recorded:
        await rtsp_rec.start()

    def seed() -> tuple[int, int | None]:
        site = accounts.create_site("bench", "UTC")
        accounts.create_user(USER, PASSWORD, "viewer", ["bench"])
        now = clock.now_us()
        ids: list[int] = []
        for name, server, mode in (("bench-cam", rtsp, "off"), ("bench-rec", rtsp_rec, "continuous")):
            if server is rtsp_rec and not args.recorded:
                break
            cam = Camera.create(site=site, name=name, username=CAM_USER,
                                password_enc=box.encrypt(CAM_PASSWORD), status_since_us=now,
                                created_us=now, updated_us=now, recording_mode=mode)
            CameraStream.create(camera=cam, kind="main", rtsp_url=server.url("/main"))
            ids.append(int(cam.id))
        return ids[0], (ids[1] if len(ids) > 1 else None)

    camera_id, recorded_id = gw.write_sync(seed)
    gw.close()
    if args.recorded:
        (work / "data" / "recordings").mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, json.dumps(overrides), "0.3",
        "record" if args.recorded else "no", stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split()
        base = f"http://127.0.0.1:{line[1]}"
        url = f"{base}/api/v1/cameras/{camera_id}/live"
        jar = aiohttp.CookieJar(unsafe=True)  # the session cookie of an IP-address host
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            resp = await session.post(f"{base}/api/v1/auth/login",
                                      json={"username": USER, "password": PASSWORD})
            assert resp.status == 200, await resp.text()
            out: dict[str, Any] = {
                "stream": f"{args.width}x{args.height} 25 fps ~{args.kbps} kbit/s H.264, GOP 1 s "
                          "(camsim, loopback, RTSP over TCP)"}
            fp = await first_picture(session, url, rtsp, args.trials)
            if recorded_id is not None:
                fp["recorded"] = await recorded_first_picture(
                    session, f"{base}/api/v1/cameras/{recorded_id}/live", rtsp_rec, args.trials)
            source = LiveSource(camera_id, "bench-cam", "main", rtsp.url("/main"), CAM_USER,
                                CAM_PASSWORD)
            fp["ffmpeg_only"] = await ffmpeg_only(settings.ffmpeg_exe(), source, args.trials)
            fp["definition"] = ("seconds from opening the live WebSocket (ffmpeg_only: from "
                                "starting ffmpeg) to the first picture PyAV decodes from the init "
                                "segment and the fragments received")
            fp["load_average_1m"] = round(os.getloadavg()[0], 1)
            out["first_picture"] = fp
            if not args.first_picture_only:
                await wait_no_session(rtsp)
                one = await phase(session, url, proc.pid, 1, args.seconds)
                many = await phase(session, url, proc.pid, args.viewers, args.seconds)
                out.update({
                    "one_viewer": one, "many_viewers": many,
                    "cpu_pct_per_extra_viewer": round(
                        ((many["server_cpu_pct"] + many["ffmpeg_cpu_pct"])
                         - (one["server_cpu_pct"] + one["ffmpeg_cpu_pct"]))
                        / max(1, args.viewers - 1), 2),
                    "latency_definition": "receive wall clock - camsim SEI capture time, "
                                          "per fragment"})
        if args.browser:
            out["browser"] = await browser_figure(base, camera_id, args.seconds / 2)
        return out
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
        await rtsp.stop()
        if args.recorded:
            await rtsp_rec.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--kbps", type=int, default=4000)
    parser.add_argument("--browser", action="store_true", help="also measure in Chromium")
    parser.add_argument("--trials", type=int, default=10,
                        help="first-picture trials of each kind (cold, warm, ffmpeg old/new)")
    parser.add_argument("--no-recorded", dest="recorded", action="store_false",
                        help="skip the recorded camera (live view over the recorder's session)")
    parser.add_argument("--first-picture-only", action="store_true",
                        help="skip the latency and CPU phases")
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
