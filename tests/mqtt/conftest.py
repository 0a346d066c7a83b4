"""Fixtures of the MQTT bridge's tests: the shared Mosquitto (started when down), a private one,
a unique topic space per test (see tests/mqtt/broker.py)."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest

from tests.mqtt.broker import SHARED_PORT, PrivateBroker, Space, port_open, retained, wait_port


@pytest.fixture(scope="session")
def shared_broker() -> int:
    """The port of the Mosquitto at 127.0.0.1:1883, started when it is down."""
    if not port_open(SHARED_PORT):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        subprocess.run([exe, "-d", "-c", "/etc/mosquitto/mosquitto.conf"], check=False)
        try:
            wait_port(SHARED_PORT, True)
        except RuntimeError:
            pytest.fail("Mosquitto is not running at 127.0.0.1:1883 and could not be started "
                        "(apt-get install mosquitto; mosquitto -d)")
    return SHARED_PORT


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    broker = PrivateBroker(tmp_path)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
async def space(shared_broker: int) -> AsyncIterator[Space]:
    token = secrets.token_hex(4)
    found = Space(f"vmstest/{token}", f"hatest-{token}")
    try:
        yield found
    finally:  # leave no retained message of ours on the shared broker
        left = await retained(shared_broker, *found.topics)
        if left:
            async with aiomqtt.Client("127.0.0.1", shared_broker) as client:
                for topic in left:
                    await client.publish(topic, b"", qos=1, retain=True)
