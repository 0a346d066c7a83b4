"""Events benchmark: N camsim cameras fire events through their control API into a real
``vms serve`` that adopted them; the MQTT messages are received from Mosquitto; prints one JSON
object.

Every camera fires ``--rate`` events a second for ``--seconds`` (``POST {control_url}/event``),
evenly spread so the cameras do not fire in step. ``--type plate`` (default) fires plate reads
with a unique plate text each (``B000001``…), matched exactly to the MQTT message carrying it in
``data.plate``; ``--type motion`` alternates motion on and off, matched per camera in order (the
first message of the same state after the fire; a camera's second ONVIF topic for the same change
is not counted twice). Reported: end-to-end latency camsim fire → MQTT message received (p50, p99,
max), events fired, received and dropped (fired − matched), the server's CPU seconds per event
(user + system of the ``vms serve`` process, from /proc, over the firing and settling time), and
whether the bridge was online with every camera's discovery configs before firing. The issue's
target: p99 under 250 ms, zero dropped.

    python bench/events.py                               # 50 cameras, 2 events/s, 60 s
    python bench/events.py --cameras 2 --rate 1 --seconds 3   # a quick look

Needs Mosquitto at ``--broker`` (default 127.0.0.1:1883) and the event pump in the server
(camsim events become ``CameraEvent`` on the bus). Recording of the adopted cameras is switched
off (``--recording``) so ffmpeg does not share the CPU. Traffic stays on 127.0.0.1; every loop is
bounded by ``--seconds`` and ``--settle``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt

from camsim.fleet import Fleet
from vms.auth import Accounts
from vms.clock import SystemClock
from vms.config import load_settings
from vms.db.gateway import Gateway

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests/
from tests.serve_process import ServeProcess  # noqa: E402

ADMIN_PASSWORD = secrets.token_urlsafe(12)
LIMITS = {"cameras": (1, 500), "rate": (0.1, 20.0), "seconds": (1.0, 3600.0),
          "settle": (0.5, 60.0)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (not its children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def _adopt_all(server: ServeProcess, fleet: Fleet, recording: str) -> list[int]:
    http, csrf = await server.session("admin", ADMIN_PASSWORD)
    async with http:
        limit = asyncio.Semaphore(4)

        async def adopt(info: dict[str, Any]) -> int:
            async with limit:
                async with http.post("/api/v1/cameras", headers={"X-CSRF-Token": csrf},
                                     json={"onvif_url": info["onvif_url"],
                                           "username": info["username"],
                                           "password": info["password"]}) as resp:
                    body = await resp.json()
                    if resp.status not in (200, 201):
                        raise RuntimeError(f"adopting {info['name']}: {resp.status} {body}")
                camera_id = int(body["id"])
                async with http.put(f"/api/v1/cameras/{camera_id}/recording-settings",
                                    headers={"X-CSRF-Token": csrf},
                                    json={"recording_mode": recording}) as resp:
                    if resp.status != 200:
                        raise RuntimeError(f"recording mode of {info['name']}: {resp.status} "
                                           f"{await resp.text()}")
                return camera_id

        return list(await asyncio.gather(*(adopt(c.info()) for c in fleet.cameras)))


class Receiver:
    """Every event message under the prefix, with its arrival time; availability and discovery
    configs too."""

    def __init__(self, prefix: str, discovery_prefix: str) -> None:
        self.prefix, self.discovery_prefix = prefix, discovery_prefix
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.availability: bytes = b""
        self.configs: set[str] = set()
        self.state_topics: set[str] = set()

    async def run(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            at = time.monotonic()
            topic = message.topic.value
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if topic == f"{self.prefix}/availability":
                self.availability = payload
            elif topic.startswith(self.discovery_prefix + "/"):
                (self.configs.add if payload else self.configs.discard)(topic)
            elif topic.endswith("/state"):
                self.state_topics.add(topic)
            elif topic.count("/") == self.prefix.count("/") + 3 and payload:
                try:
                    self.events.append((at, json.loads(payload)))
                except ValueError:
                    continue


async def _wait_until(check: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _fire(fleet: Fleet, camera_ids: list[int], *, kind: str, rate: float,
                seconds: float) -> list[tuple[float, int, Any]]:
    """Fire on schedule; returns (monotonic time just before the POST, camera id, key) for each
    event the camera accepted: key is the plate text, or the motion state."""
    schedule: list[tuple[float, int]] = []
    n = len(fleet.cameras)
    per_camera = int(rate * seconds)
    for index in range(n):
        offset = index / (n * rate)
        schedule += [(offset + k / rate, index) for k in range(per_camera)]
    schedule.sort()
    fired: list[tuple[float, int, Any]] = []
    failures = 0
    counter = 0
    states = [False] * n
    start = time.monotonic()
    limit = asyncio.Semaphore(64)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:

        async def one(index: int, body: dict[str, Any], key: Any) -> None:
            nonlocal failures
            cam = fleet.cameras[index]
            url = f"{cam.info()['control_url']}/event"
            async with limit:
                at = time.monotonic()
                try:
                    async with http.post(url, json=body) as resp:
                        ok = resp.status == 200
                except aiohttp.ClientError:
                    ok = False
            if ok:
                fired.append((at, camera_ids[index], key))
            else:
                failures += 1

        tasks = []
        for due, index in schedule:
            delay = start + due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if kind == "plate":
                counter += 1
                key: Any = f"B{counter:06d}"
                body: dict[str, Any] = {"type": "plate", "plate": key}
            else:
                states[index] = not states[index]
                key = states[index]
                body = {"type": "motion", "state": key}
            tasks.append(asyncio.create_task(one(index, body, key)))
        await asyncio.gather(*tasks)
    if failures:
        print(f"events.py: {failures} fires refused by camsim", file=sys.stderr)
    return fired


def _match(fired: list[tuple[float, int, Any]], received: list[tuple[float, dict[str, Any]]],
           kind: str) -> list[float]:
    """Latencies (s) of the fired events matched to a received message."""
    latencies: list[float] = []
    if kind == "plate":
        first: dict[str, float] = {}
        for at, msg in received:
            plate = (msg.get("data") or {}).get("plate") if msg.get("type") == "plate" else None
            if isinstance(plate, str) and plate not in first:
                first[plate] = at
        for at, _, key in fired:
            if key in first and first[key] >= at:
                latencies.append(first[key] - at)
        return latencies
    by_camera: dict[int, list[tuple[float, Any]]] = defaultdict(list)
    for at, msg in received:
        if msg.get("type") == "motion":
            by_camera[int(msg.get("camera_id", -1))].append((at, msg.get("state")))
    fires: dict[int, list[tuple[float, Any]]] = defaultdict(list)
    for at, camera_id, key in sorted(fired):
        fires[camera_id].append((at, key))
    for camera_id, wanted in fires.items():
        got = by_camera.get(camera_id, [])
        pointer = 0
        for at, state in wanted:
            while pointer < len(got) and (got[pointer][0] < at or got[pointer][1] != state):
                pointer += 1
            if pointer == len(got):
                break
            latencies.append(got[pointer][0] - at)
            pointer += 1
    return latencies


def _bounded(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for name, (low, high) in LIMITS.items():
        value = getattr(args, name)
        if not low <= value <= high:
            parser.error(f"--{name} must be between {low:g} and {high:g}, got {value:g}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", type=int, default=50)
    parser.add_argument("--rate", type=float, default=2.0, help="events a second per camera")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long cameras fire")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds to wait for late messages after the last fire")
    parser.add_argument("--type", choices=("plate", "motion"), default="plate")
    parser.add_argument("--recording", choices=("off", "continuous", "event"), default="off")
    parser.add_argument("--broker", default="127.0.0.1:1883")
    parser.add_argument("--database-url", default="",
                        help="PostgreSQL URL for the server; default: SQLite in a temp folder")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()
    _bounded(parser, args)
    host, _, port_text = args.broker.partition(":")
    broker_port = int(port_text or 1883)

    work = Path(tempfile.mkdtemp(prefix="vms-events-"))
    token = secrets.token_hex(4)
    prefix, discovery_prefix = f"vmsbench/{token}", f"habench-{token}"
    port = _free_port()
    config = work / "vms.toml"
    db_line = f'[database]\nurl = "{args.database_url}"\n' if args.database_url else ""
    config.write_text(f'data_dir = "data"\n[server]\nport = {port}\n{db_line}'
                      f'[mqtt]\nurl = "mqtt://{host}:{broker_port}"\n'
                      f'topic_prefix = "{prefix}"\ndiscovery_prefix = "{discovery_prefix}"\n')
    settings = load_settings(config, env={})
    settings.data_dir.mkdir(parents=True)
    gw = Gateway(settings.database_url)
    gw.migrate()
    gw.write_sync(lambda: Accounts(SystemClock()).create_user("admin", ADMIN_PASSWORD, "admin"))
    gw.close()

    receiver = Receiver(prefix, discovery_prefix)
    fleet = await Fleet(args.cameras, password=secrets.token_urlsafe(8)).start()
    server = ServeProcess(config, port, log_path=work / "server.log")
    started = time.time()
    try:
        async with aiomqtt.Client(host, broker_port) as mqtt:
            await mqtt.subscribe(f"{prefix}/#", qos=1)
            await mqtt.subscribe(f"{discovery_prefix}/#", qos=1)
            reader = asyncio.create_task(receiver.run(mqtt))
            try:
                await server.start()
                assert server.proc is not None
                camera_ids = await _adopt_all(server, fleet, args.recording)
                online = await _wait_until(lambda: receiver.availability == b"online", 10)
                configs_ok = await _wait_until(
                    lambda: len(receiver.configs) >= 4 * args.cameras, 15)
                cpu_before = _cpu_s(server.proc.pid)
                fire_start = time.monotonic()
                fired = await _fire(fleet, camera_ids, kind=args.type, rate=args.rate,
                                    seconds=args.seconds)
                fire_s = time.monotonic() - fire_start
                expected = len(fired)
                await _wait_until(lambda: len(_match(fired, receiver.events, args.type))
                                  >= expected, args.settle)
                cpu_s = _cpu_s(server.proc.pid) - cpu_before
            finally:
                await server.stop()
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
                # leave no retained message of this run on the broker (the states' topics are
                # the configs' state_topic; every one is cleared with the config)
                for topic in list(receiver.configs):
                    await mqtt.publish(topic, b"", qos=1, retain=True)
                for topic in receiver.state_topics:
                    await mqtt.publish(topic, b"", qos=1, retain=True)
                await mqtt.publish(f"{prefix}/availability", b"", qos=1, retain=True)
    finally:
        await server.stop()
        await fleet.stop()
    latencies = _match(fired, receiver.events, args.type)
    ms = [x * 1000 for x in latencies]
    print(json.dumps({
        "cameras": args.cameras, "rate_per_camera": args.rate, "seconds": args.seconds,
        "type": args.type, "database": "postgresql" if args.database_url else "sqlite",
        "recording": args.recording, "wall_s": round(time.time() - started, 1),
        "mqtt_online_before_firing": online,
        "discovery_configs": len(receiver.configs), "discovery_complete": configs_ok,
        "fired": len(fired), "fire_s": round(fire_s, 2),
        "mqtt_event_messages": len(receiver.events), "matched": len(latencies),
        "dropped": len(fired) - len(latencies),
        "latency_ms": {"p50": _round(_pct(ms, 50)), "p99": _round(_pct(ms, 99)),
                       "max": _round(max(ms) if ms else None),
                       "mean": _round(statistics.fmean(ms) if ms else None)},
        "server_cpu_s": round(cpu_s, 3),
        "server_cpu_ms_per_event": _round(cpu_s * 1000 / len(fired) if fired else None),
        "data_dir": str(work) if args.keep else None,
    }))
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


if __name__ == "__main__":
    asyncio.run(main())
