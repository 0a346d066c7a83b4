"""Rings and missed calls through the API and the live event feed: a doorbell reaches the feed of
its site's users only, a page opened during a ring finds it (GET /api/v1/rings), an answer stops it
on the site's feeds ("answered") and not elsewhere, an old unanswered ring is a missed call (JSON
and the /calls page, with the recorded snapshot's URL), and all of it is scoped by site. On both
database engines."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from tests.web.conftest import PASSWORD
from vms.bus import CameraEvent

US = 1_000_000


class Feed:
    """One signed-in user's SSE feed, read in the background."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []
        self.task: asyncio.Task[None] | None = None

    async def open(self, session: aiohttp.ClientSession, url: str) -> None:
        resp = await session.get(url)
        assert resp.status == 200

        async def read() -> None:
            kind = ""
            while True:
                line = (await resp.content.readline()).decode()
                if not line:
                    return
                if line.startswith("event: "):
                    kind = line[7:].strip()
                elif line.startswith("data: "):
                    self.items.append((kind, json.loads(line[6:])))

        self.task = asyncio.create_task(read())

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [row for k, row in self.items if k == kind]

    async def wait(self, kind: str, accept: Any, timeout_s: float = 3.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for row in self.of(kind):
                if accept(row):
                    return row
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {kind} event in time; got {self.items}")


async def _session(world: Any, username: str) -> tuple[aiohttp.ClientSession, str]:
    session = aiohttp.ClientSession(base_url=str(world.client.make_url("/")),
                                    cookie_jar=aiohttp.CookieJar(unsafe=True))
    resp = await session.post("/api/v1/auth/login",
                              json={"username": username, "password": PASSWORD})
    assert resp.status == 200
    return session, (await resp.json())["csrf_token"]


async def test_rings_answers_and_missed_calls_by_site(world) -> None:  # type: ignore[no-untyped-def]
    from web.keys import BUS, CLOCK

    app = world.app
    mine, my_csrf = await _session(world, "viewer1")        # Site A
    theirs, their_csrf = await _session(world, "viewer_b")  # Site B
    feeds = [Feed(), Feed()]
    try:
        await feeds[0].open(mine, "/api/v1/events/stream")
        await feeds[1].open(theirs, "/api/v1/events/stream")
        await asyncio.sleep(0.1)
        now = app[CLOCK].now_us()

        def ring(camera_id: int, site_id: int, at_us: int) -> None:
            app[BUS].publish(CameraEvent(camera_id=camera_id, site_id=site_id, type="doorbell",
                                         state=None, at_us=at_us,
                                         topic="tns1:Device/Trigger/DigitalInput"))

        ring(world.camera_a, world.site_a, now - 40 * US)  # rang 40 s ago (ring_seconds: 30)
        ring(world.camera_a, world.site_a, now)
        ring(world.camera_b, world.site_b, now)
        a_now = await feeds[0].wait("event", lambda r: r["start_us"] == now)
        b_now = await feeds[1].wait("event", lambda r: r["start_us"] == now)
        await asyncio.sleep(0.2)
        assert {r["camera_id"] for r in feeds[0].of("event")} == {world.camera_a}
        assert {r["camera_id"] for r in feeds[1].of("event")} == {world.camera_b}

        # a page opened now finds what is ringing, of its own site only
        resp = await mine.get("/api/v1/rings")
        state = await resp.json()
        assert state["ring_seconds"] == 30
        assert [r["id"] for r in state["rings"]] == [a_now["id"]]
        resp = await theirs.get("/api/v1/rings")
        assert [r["id"] for r in (await resp.json())["rings"]] == [b_now["id"]]

        # an answer stops the ring on the site's feeds, not on another site's
        resp = await theirs.post(f"/api/v1/rings/{a_now['id']}/answer",
                                 headers={"X-CSRF-Token": their_csrf})
        assert resp.status == 404
        resp = await mine.post(f"/api/v1/rings/{a_now['id']}/answer",
                               headers={"X-CSRF-Token": my_csrf})
        answer = await resp.json()
        assert resp.status == 200 and answer["how"] == "ack" and answer["username"] == "viewer1"
        got = await feeds[0].wait("answered", lambda r: r["id"] == a_now["id"])
        assert got["username"] == "viewer1"
        await asyncio.sleep(0.2)
        assert feeds[1].of("answered") == []
        resp = await mine.get("/api/v1/rings")
        assert (await resp.json())["rings"] == []

        # the old one was never answered: a missed call, with the recording's snapshot
        resp = await mine.get("/api/v1/calls/missed")
        calls = (await resp.json())["calls"]
        assert [(c["camera_id"], c["start_us"]) for c in calls] == [(world.camera_a,
                                                                      now - 40 * US)]
        assert calls[0]["snapshot_url"] == \
            f"/api/v1/cameras/{world.camera_a}/snapshot.jpg?at={now - 40 * US}"
        resp = await mine.post(f"/api/v1/rings/{calls[0]['id']}/answer",
                               headers={"X-CSRF-Token": my_csrf})
        assert resp.status == 409  # too late: it stays a missed call
        resp = await mine.get(f"/api/v1/calls/missed?camera_id={world.camera_b}")
        assert resp.status == 404
        resp = await theirs.get("/api/v1/calls/missed")
        assert (await resp.json())["calls"] == []
        page = await mine.get("/calls")
        html = await page.text()
        assert page.status == 200 and calls[0]["snapshot_url"].replace("&", "&amp;") in html
        assert 'href="/calls"' in html  # the navigation link
    finally:
        for feed in feeds:
            if feed.task is not None:
                feed.task.cancel()
        await mine.close()
        await theirs.close()

    # no door right, no ring and no missed calls
    await world.login("operator1")
    resp = await world.client.get("/api/v1/calls/missed")
    assert resp.status == 403
    page = await world.client.get("/")
    assert 'href="/calls"' not in await page.text()
