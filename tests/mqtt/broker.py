"""Real Mosquitto for the MQTT bridge's tests (the fixtures are in conftest.py): a private
broker on a free port that a test may stop and start again, a unique topic space per test, and a
listener that records what the broker delivers."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

SHARED_PORT = 1883


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port: int, up: bool, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while port_open(port) != up:
        if time.monotonic() > deadline:
            raise RuntimeError(f"mosquitto on port {port} did not come {'up' if up else 'down'}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])



class PrivateBroker:
    """A Mosquitto of this test's own on a free port: ``start()``, ``stop()``, ``start()`` again.
    No persistence: a restart loses every retained message."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                             "persistence false\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port, True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
        wait_port(self.port, False)



@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float  # time.monotonic() on arrival


@dataclass
class Listener:
    """Everything delivered to one subscribing client, in order."""

    messages: list[Received] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else (
                str(message.payload).encode() if message.payload is not None else b"")
            self.messages.append(Received(message.topic.value, payload, bool(message.retain),
                                          time.monotonic()))
            self.changed.set()

    async def wait_for(self, match: Callable[[Received], bool], timeout_s: float = 5.0,
                       what: str = "") -> Received:
        """The first message (seen so far or arriving) that matches; fails after the deadline."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while True:
            for message in self.messages[seen:]:
                if match(message):
                    return message
            seen = len(self.messages)
            left = deadline - time.monotonic()
            if left <= 0:
                shown = [(r.topic, r.payload[:80], r.retain) for r in self.messages[-15:]]
                raise AssertionError(f"no MQTT message {what} within {timeout_s} s; last: {shown}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)

    def on(self, topic: str) -> list[Received]:
        return [r for r in self.messages if r.topic == topic]


@contextlib.asynccontextmanager
async def listen(port: int, *topics: str) -> AsyncIterator[Listener]:
    """A client subscribed (QoS 1) to ``topics`` for the duration of the block."""
    listener = Listener()
    async with aiomqtt.Client("127.0.0.1", port,
                              identifier=f"test-listener-{secrets.token_hex(4)}") as client:
        for topic in topics:
            await client.subscribe(topic, qos=1)
        task = asyncio.create_task(listener.read(client))
        try:
            yield listener
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def retained(port: int, *topics: str, timeout_s: float = 5.0) -> dict[str, bytes]:
    """The retained messages on ``topics`` now: subscribed afresh, read up to a marker message
    published after the subscription (the broker sends retained messages first)."""
    marker = f"vmstest-marker/{secrets.token_hex(6)}"
    async with listen(port, *topics, marker) as listener:
        async with aiomqtt.Client("127.0.0.1", port) as pub:
            await pub.publish(marker, b"end", qos=1)
        await listener.wait_for(lambda r: r.topic == marker, timeout_s, "(marker)")
        return {r.topic: r.payload for r in listener.messages if r.retain and r.payload}


@dataclass(frozen=True)
class Space:
    """A topic prefix and discovery prefix used by one test alone."""

    prefix: str
    discovery_prefix: str

    @property
    def topics(self) -> tuple[str, str]:
        return f"{self.prefix}/#", f"{self.discovery_prefix}/#"

