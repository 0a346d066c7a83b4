"""Fixtures for onvif_bridge tests: the shared real-camera answers and a loopback UDP responder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "onvif"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"real camera answers not found at {FIXTURES} (the shared folder beside the repo)")
    return FIXTURES


@pytest.fixture
def load(fixtures_dir: Path) -> Callable[[str], bytes]:
    """Read one shared fixture by file name (skips when it is missing)."""

    def read(name: str) -> bytes:
        path = fixtures_dir / name
        if not path.is_file():
            pytest.skip(f"fixture {name} not found in {fixtures_dir}")
        return path.read_bytes()

    return read


@pytest.fixture
def data_dir() -> Path:
    """Fixtures of our own (quirks we keep covered)."""
    return DATA


Reply = Callable[[bytes, tuple[str, int]], list[bytes]]


class Responder(asyncio.DatagramProtocol):
    """A fake WS-Discovery device on 127.0.0.1: ``reply(probe, addr)`` returns datagrams to send."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.probes: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.probes.append(data)
        assert self.transport is not None
        for datagram in self.reply(data, addr):
            self.transport.sendto(datagram, addr)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])


@pytest.fixture
async def responder_factory() -> AsyncIterator[Callable[[Reply], asyncio.Future[Responder]]]:
    transports: list[asyncio.DatagramTransport] = []

    async def start(reply: Reply) -> Responder:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: Responder(reply), local_addr=("127.0.0.1", 0))
        transports.append(transport)
        return protocol

    yield start  # type: ignore[misc]
    for transport in transports:
        transport.close()
