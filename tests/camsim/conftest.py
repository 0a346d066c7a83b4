"""Fixtures of the camsim tests: ``server``, camsim's RTSP server on 127.0.0.1 with a small H.264 +
AAC stream (``/main``) and one with G.711 µ-law audio (``/pcmu``), Digest auth."""

from __future__ import annotations

import pytest

from camsim.rtsp import RtspServer
from tests.camsim.rtsp_client import PASSWORD, SMALL, SMALL_PCMU, USER


@pytest.fixture
async def server() -> RtspServer:
    srv = RtspServer(username=USER, password=PASSWORD)
    srv.add_stream("/main", SMALL)
    srv.add_stream("/pcmu", SMALL_PCMU)
    await srv.start()
    yield srv  # type: ignore[misc]
    await srv.stop()
