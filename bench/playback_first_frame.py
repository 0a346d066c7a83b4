"""First-frame latency of recorded playback in Chromium: from a click on the timeline to the first
decoded frame at the clicked instant, as one JSON object. Target: under 1 s on loopback.

A camsim RTSP camera (``--width``x``--height``, 25 fps, GOP 1 s, ``--bitrate-kbps``) is recorded by
the real recorder (ffmpeg ``-c copy``, ``--segment-seconds`` per file) for ``--segments`` files into
a fresh SQLite database (or one kept in ``--data-dir`` by an earlier run), the whole app is served
on 127.0.0.1, and Debian's Chromium (Playwright, headless) opens the playback page signed in, in
the middle of the recording. The timeline is zoomed until the recording about fills it, then
``--clicks`` times a random recorded instant is clicked. Each click is timed from the
``pointerup`` event to the first frame presented (``requestVideoFrameCallback``) whose wall time
(the playlist's program-date-time of its media time) lies within one GOP (+100 ms) before or
400 ms after the clicked instant. A click before the loaded playlist's start reloads the playlist
("reload"); one inside it seeks in the loaded stream ("seek"); both are reported.

    python bench/playback_first_frame.py --segment-seconds 60 --segments 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from camsim.media import ClipSpec
from camsim.rtsp import RtspServer
from recorder.run import RecorderOptions
from recorder.supervisor import RecorderSupervisor
from vms.app import create_app
from vms.auth import Accounts
from vms.clock import SystemClock
from vms.config import Settings, load_settings
from vms.db.gateway import Gateway
from vms.db.models import Camera, CameraStream, Segment
from vms.secrets import SecretBox

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
USER = "bench_viewer"
PASSWORD = "bench-FirstFrame-7"
GOP_MS = 1000
OPTIONS = RecorderOptions(backoff_initial_s=0.2, backoff_max_s=1.0, auth_retry_s=1.0,
                          stall_timeout_s=6.0, startup_timeout_s=15.0, stop_timeout_s=10.0,
                          socket_timeout_s=5.0)

# In the page: time one click (pointerup on the timeline) to the first presented frame of the
# clicked instant. Resolves {ms, wall_ms, target_ms} or {timeout: true}.
MEASURE_JS = """
([x, y, timeoutMs, gopMs]) => new Promise((resolve) => {
  const canvas = document.getElementById('pb-timeline');
  const video = () => document.querySelector('video.pb-video');
  let t0 = null, done = false, frames = 0, lastWall = null, lastMedia = null;
  const finish = (value) => { if (!done) { done = true; resolve(value); } };
  const onFrame = (now, meta) => {
    if (done) return;
    const seek = window.VmsPlayback.lastSeek;
    const wall = window.VmsPlayback.wallOfMedia(0, meta.mediaTime);
    frames += 1; lastWall = wall; lastMedia = meta.mediaTime;
    if (seek && wall != null && wall <= seek.wallMs + 400 && wall >= seek.wallMs - gopMs - 100) {
      finish({ ms: now - t0, wall_ms: wall, target_ms: seek.wallMs });
      return;
    }
    video().requestVideoFrameCallback(onFrame);
  };
  canvas.addEventListener('pointerup', (ev) => {
    t0 = ev.timeStamp;
    // after playback.js handled the click (it may have replaced the video's source)
    setTimeout(() => video().requestVideoFrameCallback(onFrame), 0);
  }, { capture: true, once: true });
  setTimeout(() => finish({ timeout: true, frames, last_wall_ms: lastWall, last_media_s: lastMedia,
    target_ms: window.VmsPlayback.lastSeek && window.VmsPlayback.lastSeek.wallMs,
    clicked: t0 != null, ready_state: video().readyState, current_time: video().currentTime,
    paused: video().paused, status: document.querySelector('.pb-status').textContent,
    wall_now: window.VmsPlayback.wallOfMedia(0, video().currentTime) }), timeoutMs);
  window.__vmsClick = [x, y];
})
"""


async def record(settings: Settings, spec: ClipSpec, segments: int) -> tuple[int, list[tuple[int, int]]]:
    """Record ``segments`` files of one camsim camera; (camera id, [(start_us, end_us)] by start)."""
    gw = Gateway(settings.database_url)
    gw.migrate()
    clock = SystemClock()
    secrets = SecretBox.from_key_file(settings.key_file)
    server = RtspServer("127.0.0.1", 0)
    server.add_stream("/main", spec)
    await server.start()

    def seed() -> int:
        now = clock.now_us()
        accounts = Accounts(clock)
        site = accounts.create_site("Bench yard", "Europe/Berlin")
        accounts.create_user(USER, PASSWORD, "viewer", ["Bench yard"])
        cam = Camera.create(site=site, name="Bench gate", password_enc=secrets.encrypt(""),
                            status_since_us=now, created_us=now, updated_us=now)
        CameraStream.create(camera=cam, kind="main", rtsp_url=server.url("/main"))
        return int(cam.id)

    cam_id = gw.write_sync(seed)

    def rows() -> list[tuple[int, int]]:
        return [(s, e) for s, e in Segment.select(Segment.start_us, Segment.end_us)
                .where(Segment.camera == cam_id).order_by(Segment.start_us).tuples()]

    sup = RecorderSupervisor(gw, settings, clock, secrets, OPTIONS)
    await sup.start()
    try:
        deadline = time.monotonic() + segments * settings.recording.segment_seconds * 2 + 60
        while len(gw.read_sync(rows)) < segments:
            if time.monotonic() > deadline:
                raise SystemExit(f"the recorder did not write {segments} segments in time")
            await asyncio.sleep(0.5)
    finally:
        await sup.stop()
        await server.stop()
    found = gw.read_sync(rows)
    gw.close()
    return cam_id, found


def recorded(settings: Settings) -> tuple[int, list[tuple[int, int]]] | None:
    """(camera id, spans) of a recording kept in ``--data-dir`` by an earlier run, else None."""
    if not (settings.data_dir / "vms.sqlite3").exists():
        return None
    gw = Gateway(settings.database_url)
    try:
        def rows() -> tuple[int, list[tuple[int, int]]] | None:
            cam = Camera.select(Camera.id).where(Camera.name == "Bench gate").first()
            if cam is None:
                return None
            found = [(s, e) for s, e in Segment.select(Segment.start_us, Segment.end_us)
                     .where(Segment.camera == cam.id).order_by(Segment.start_us).tuples()]
            return (int(cam.id), found) if found else None
        return gw.read_sync(rows)
    finally:
        gw.close()


async def wait_js(page: Any, expression: str, timeout_s: float = 30) -> Any:
    """Poll ``expression`` until truthy (the page's CSP forbids ``wait_for_function``'s eval)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"not true within {timeout_s}s: {expression}")
        await asyncio.sleep(0.02)


async def measure(settings: Settings, cam_id: int, spans: list[tuple[int, int]], clicks: int,
                  seed: int) -> list[dict[str, Any]]:
    recorded_s = (spans[-1][1] - spans[0][0]) / 1e6
    zoom_ins = 0  # the page opens with an hour in view; each zoom-in halves it
    while 3600 / 2 ** (zoom_ins + 1) > recorded_s * 1.3 and zoom_ins < 8:
        zoom_ins += 1
    from playwright.async_api import async_playwright

    app = create_app(settings, start_recorder=False)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    rnd = random.Random(seed)
    results: list[dict[str, Any]] = []
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                               args=CHROMIUM_ARGS)
            context = await browser.new_context(base_url=base,
                                                viewport={"width": 1200, "height": 900})
            page = await context.new_page()
            playlist_requests: list[float] = []
            page.on("request", lambda req: playlist_requests.append(time.monotonic())
                    if "playlist.m3u8" in req.url else None)
            resp = await context.request.post("/api/v1/auth/login",
                                              data={"username": USER, "password": PASSWORD})
            assert resp.ok, await resp.text()
            first, last = spans[0][0], spans[-1][1]
            # open in the middle, so clicks before it reload the playlist and clicks after it seek
            middle = (first + last) // 2
            await page.goto(f"/cameras/{cam_id}/playback?at={middle}")
            video = "document.querySelector('video.pb-video')"
            await wait_js(page, f"{video}.readyState >= 2 && {video}.currentTime > 0")
            for _ in range(zoom_ins):  # 1 h / 2**zoom_ins in view
                await page.click("#pb-zoom-in")
            for _ in range(clicks):
                view = await page.evaluate(
                    "(() => { const c = document.getElementById('pb-timeline');"
                    " c.scrollIntoView({block: 'center'}); const r = c.getBoundingClientRect();"
                    " return [Number(c.dataset.viewStart), Number(c.dataset.viewEnd),"
                    " r.left, r.top, r.width, r.height]; })()")
                v_start, v_end, left, top, width, height = view
                # a recorded instant in view, away from the ends of its file
                # a recorded instant in view, away from the ends of its file and of the view
                # (a click lands on a pixel: keep a few pixels' time from each end)
                margin_us = max(500_000, int(3 * (v_end - v_start) * 1000 / width))
                lo_us, hi_us = int(v_start * 1000) + margin_us, int(v_end * 1000) - margin_us
                choices = [(max(s + margin_us, lo_us), min(e - margin_us, hi_us)) for s, e in spans]
                choices = [(a, b) for a, b in choices if b > a]
                if not choices:
                    raise SystemExit("no recorded instant in the timeline's view")
                # away from the playhead, so that frames of the ongoing playback cannot pass for it
                playhead_ms = await page.evaluate(
                    f"window.VmsPlayback.wallOfMedia(0, {video}.currentTime)") or 0
                for _attempt in range(50):
                    a, b = rnd.choice(choices)
                    target_us = rnd.randint(a, b)
                    if abs(target_us / 1000 - playhead_ms) > 3_000:
                        break
                x = left + (target_us / 1000 - v_start) / (v_end - v_start) * width
                y = top + height / 3
                before = len(playlist_requests)
                waiting = asyncio.ensure_future(page.evaluate(MEASURE_JS, [x, y, 10_000, GOP_MS]))
                await wait_js(page, "window.__vmsClick !== undefined")
                await page.mouse.click(x, y)
                answer = await waiting
                await page.evaluate("delete window.__vmsClick")
                answer["kind"] = "reload" if len(playlist_requests) > before else "seek"
                results.append(answer)
                await page.wait_for_timeout(rnd.randint(300, 1500))  # let it play a little
            await browser.close()
    finally:
        await runner.cleanup()
    return results


def summarise(samples: list[dict[str, Any]]) -> dict[str, Any]:
    times = sorted(s["ms"] for s in samples if "ms" in s)
    out: dict[str, Any] = {"clicks": len(samples), "timeouts": sum(1 for s in samples if "ms" not in s)}
    if times:
        out.update({"p50_ms": round(statistics.median(times), 1), "max_ms": round(times[-1], 1)})
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    spec = ClipSpec(width=args.width, height=args.height, fps=25, bitrate_kbps=args.bitrate_kbps,
                    audio="aac", seconds=10)
    with tempfile.TemporaryDirectory(prefix="vms-bench-first-frame-") as folder:
        data_dir = args.data_dir or Path(folder) / "data"
        settings = load_settings(None, env={}, overrides={
            "data_dir": data_dir, "server.port": 0,
            "recording.segment_seconds": args.segment_seconds})
        started = time.perf_counter()
        kept = recorded(settings) if args.data_dir else None
        if kept is None:
            cam_id, spans = await record(settings, spec, args.segments)
        else:
            cam_id, spans = kept
        record_s = time.perf_counter() - started
        samples = await measure(settings, cam_id, spans, args.clicks, args.seed)
    by_kind = {kind: summarise([s for s in samples if s.get("kind") == kind])
               for kind in ("seek", "reload")}
    return {"bench": "playback_first_frame", "target_ms": 1000,
            "recording": {"width": args.width, "height": args.height,
                          "bitrate_kbps": args.bitrate_kbps, "segment_seconds": args.segment_seconds,
                          "segments": len(spans), "record_s": round(record_s, 1)},
            **summarise(samples), "by_kind": by_kind,
            "samples_ms": [round(s["ms"]) if "ms" in s else None for s in samples],
            "timeouts_detail": [s for s in samples if "ms" not in s][:5]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segment-seconds", type=int, default=60,
                        help="recorded file length (the server's default is 60)")
    parser.add_argument("--segments", type=int, default=3, help="files to record")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--bitrate-kbps", type=int, default=4000)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="keep the recording here, and reuse one made there before")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(asyncio.run(main_async(args))))


if __name__ == "__main__":
    main()
