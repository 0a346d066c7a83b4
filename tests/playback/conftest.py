"""Fixtures for playback tests: the shared real recording and a signed-in client of the app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.playback.recording import PASSWORD, Recording, shared_recording
from tests.web.conftest import world  # noqa: F401  (the two-site app, for index-only tests)


@pytest.fixture(scope="session")
def recording(request: pytest.FixtureRequest) -> Recording:
    return shared_recording(request)


@pytest.fixture
async def client_as(recording: Recording, aiohttp_client) -> Callable[[str], Awaitable[Any]]:  # type: ignore[no-untyped-def]
    """``await client_as("pb_admin")``: a test client of the app on the recording, signed in."""
    from vms.app import create_app

    async def make(username: str) -> Any:
        app = create_app(recording.settings, start_recorder=False)
        client = await aiohttp_client(app)
        resp = await client.post("/api/v1/auth/login",
                                 json={"username": username, "password": PASSWORD})
        assert resp.status == 200, await resp.text()
        return client

    return make
