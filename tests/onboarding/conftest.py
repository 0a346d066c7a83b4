"""Onboarding tests: the web ``world`` (app, two sites, a user of each role) plus camsim cameras."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.web import conftest as web_conftest
from tests.web.conftest import World

world = web_conftest.world  # the web tests' fixture: app, two sites, a user of each role

CAM_PASSWORD = "cam-pass-1234"


async def api(world: World, method: str, path: str, user: str, body: Any = None) -> Any:
    """Call the API as ``user`` (signing in when needed); returns the response."""
    if world.csrf.get("_current") != user:
        await world.login(user)
        world.csrf["_current"] = user
    headers = {"X-CSRF-Token": world.csrf[user]}
    if method == "GET":
        return await world.client.get(path, headers=headers)
    return await world.client.request(method, path, json=body, headers=headers)


async def run_scan(world: World, user: str, targets: list[str], *, username: str = "admin",
                   password: str = CAM_PASSWORD, timeout_s: float = 1.0) -> dict[str, Any]:
    resp = await api(world, "POST", "/api/v1/discovery", user,
                     {"targets": targets, "username": username, "password": password,
                      "timeout_s": timeout_s})
    assert resp.status == 202, await resp.text()
    job_id = (await resp.json())["id"]
    deadline = time.monotonic() + 30
    progress: list[float] = []
    while True:
        resp = await api(world, "GET", f"/api/v1/discovery/{job_id}", user)
        assert resp.status == 200, await resp.text()
        job = await resp.json()
        progress.append(job["progress"])
        if job["state"] in ("done", "failed"):
            break
        assert time.monotonic() < deadline, f"scan did not finish: {job}"
        await asyncio.sleep(0.1)
    assert progress == sorted(progress), f"progress went backwards: {progress}"
    job["progress_seen"] = progress
    return job


@pytest.fixture
def cam_password() -> str:
    return CAM_PASSWORD
