"""Hostile cameras through the HTTP API: a snapshot URL naming an internal service is never
fetched (nor its text shown to a viewer), an adopt pointed at an internal service does not quote
its answer, and a host an installer allowed (``cameras.snapshot_hosts_allowed``) is used.

camsim cameras and the server on 127.0.0.1; 127.0.0.2 plays an internal service the server can
reach and a viewer cannot; 127.0.0.3 is the host this module's installer allowed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web

from camsim.onvif.http import HttpAuth
from tests.onboarding.conftest import CAM_PASSWORD, api
from tests.web.conftest import World

INTERNAL = "127.0.0.2"
ALLOWED = "127.0.0.3"
SECRET = "internal-service: token=TOP-SECRET-0042"


@pytest.fixture
def settings_factory(settings_factory: Any) -> Any:
    """This module's server allows snapshots from ALLOWED (and from nowhere else)."""

    def make(db_url: str = "", **overrides: Any) -> Any:
        overrides.setdefault("cameras.snapshot_hosts_allowed", f"{ALLOWED}, nvr.invalid")
        return settings_factory(db_url, **overrides)

    return make


@pytest.fixture
async def internal(aiohttp_server: Any) -> Any:
    """An internal service that answers anyone with its secret (GET and POST), counting hits."""
    hits: list[str] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        return web.Response(text=SECRET)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    server = await aiohttp_server(app, host=INTERNAL)
    server.hits = hits
    return server


async def adopt(world: World, onvif_url: str) -> Any:
    return await api(world, "POST", "/api/v1/cameras", "installer1",
                     {"onvif_url": onvif_url, "username": "admin", "password": CAM_PASSWORD,
                      "site_id": world.site_a})


async def test_snapshot_url_on_an_internal_host_is_never_fetched(
        world: World, camsim_factory: Any, internal: Any) -> None:
    url = str(internal.make_url("/v1/kv/config"))
    fleet = await camsim_factory(count=1, password=CAM_PASSWORD, snapshot_uri=url)
    resp = await adopt(world, fleet.cameras[0].info()["onvif_url"])
    assert resp.status == 201, await resp.text()
    camera_id = (await resp.json())["id"]

    resp = await api(world, "GET", f"/api/v1/cameras/{camera_id}/snapshot", "viewer1")
    text = await resp.text()
    assert resp.status == 424, text
    assert "not the camera's own" in text and SECRET not in text
    assert internal.hits == []


async def test_a_scan_thumbnail_from_an_internal_host_is_refused(
        world: World, camsim_factory: Any, internal: Any) -> None:
    from tests.onboarding.conftest import run_scan

    url = str(internal.make_url("/v1/kv/config"))
    fleet = await camsim_factory(count=1, password=CAM_PASSWORD, snapshot_uri=url)
    job = await run_scan(world, "installer1", [fleet.cameras[0].info()["discovery"]],
                         timeout_s=0.5)
    device = job["devices"][0]
    assert device["status"] == "ok", device
    resp = await api(world, "GET", f"/api/v1/discovery/{job['id']}/snapshot?device="
                                   f"{device['index']}", "installer1")
    assert resp.status == 424 and SECRET not in await resp.text()
    assert internal.hits == []


async def test_adopting_an_internal_service_does_not_quote_its_answer(
        world: World, internal: Any) -> None:
    resp = await adopt(world, str(internal.make_url("/onvif/device_service")))
    body = await resp.text()
    assert resp.status == 424, body
    assert "not XML" in json.loads(body)["error"]["message"]
    assert "TOP-SECRET" not in body and "internal-service" not in body


async def test_an_allowed_snapshot_host_is_used_with_digest(
        world: World, camsim_factory: Any, aiohttp_server: Any) -> None:
    jpeg = b"\xff\xd8" + b"\x00" * 1000 + b"\xff\xd9"
    auth = HttpAuth("nvr", lambda: "admin", lambda: CAM_PASSWORD)
    seen: list[str] = []

    async def snapshot(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization", ""))
        if not auth.check(request):
            raise auth.challenge()
        return web.Response(body=jpeg, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/snap.jpg", snapshot)
    nvr = await aiohttp_server(app, host=ALLOWED)
    fleet = await camsim_factory(count=1, password=CAM_PASSWORD,
                                 snapshot_uri=str(nvr.make_url("/snap.jpg")))
    resp = await adopt(world, fleet.cameras[0].info()["onvif_url"])
    assert resp.status == 201, await resp.text()
    camera_id = (await resp.json())["id"]
    resp = await api(world, "GET", f"/api/v1/cameras/{camera_id}/snapshot", "viewer1")
    assert resp.status == 200, await resp.text()
    assert await resp.read() == jpeg
    assert seen and all(not a or a.startswith("Digest ") for a in seen)
