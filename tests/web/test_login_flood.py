"""Sign-in floods against a real server socket: parallel guesses are throttled as they arrive, and
password hashing never holds up the database writer the recorder shares.

Clients connect from distinct loopback addresses (127.0.0.0/8 is all local on Linux), as a botnet
would, so the per-address throttle is not what saves the day.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from tests.web.conftest import PASSWORD, World
from vms.db import models as m
from web.keys import GATEWAY, PASSWORDS


@asynccontextmanager
async def clients(count: int) -> AsyncIterator[list[aiohttp.ClientSession]]:
    """``count`` HTTP clients, each bound to its own loopback address 127.0.x.y."""
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(
        local_addr=(f"127.0.{2 + i // 250}.{1 + i % 250}", 0), force_close=True))
        for i in range(count)]
    try:
        yield sessions
    finally:
        await asyncio.gather(*(s.close() for s in sessions))


async def login(world: World, session: aiohttp.ClientSession, username: str,
                password: str) -> tuple[int, str]:
    """(status, Retry-After) of one sign-in; a refusal must be a JSON error."""
    async with session.post(world.client.make_url("/api/v1/auth/login"),
                            json={"username": username, "password": password}) as resp:
        body = await resp.json()
        if resp.status != 200:
            assert body["error"]["status"] == resp.status and body["error"]["message"], body
        if resp.status == 503:
            assert "try again in" in body["error"]["message"], body
        return resp.status, resp.headers.get("Retry-After", "")


async def test_parallel_guesses_are_counted_before_they_are_checked(world: World) -> None:
    """200 wrong passwords at once, from 200 addresses, then the right one: at most the first
    five are checked, the rest are refused with 429, and the account's lock holds for the right
    password afterwards. (Before: 200 x 401 and the right password let in.)"""
    async with clients(201) as sessions:
        guesses = [login(world, s, "operator1", f"wrong-guess-{i:03d}")
                   for i, s in enumerate(sessions[:200])]
        results = await asyncio.gather(*guesses)
        statuses = Counter(status for status, _ in results)
        assert statuses[401] <= 5, statuses
        assert statuses[429] >= 190, statuses
        assert set(statuses) <= {401, 429}, statuses
        # five failures locked the account: the right password, from a fresh address, is refused
        status, retry_after = await login(world, sessions[200], "operator1", PASSWORD)
        assert status == 429 and int(retry_after) > 60, (status, retry_after)
    # the audit keeps every checked failure and the lock once, not a row per refusal
    await world.login("admin1")
    resp = await world.client.get("/api/v1/audit", params={"action": "login",
                                                           "username": "operator1"})
    outcomes = Counter(e["outcome"] for e in (await resp.json())["entries"])
    assert outcomes == {"failed": statuses[401], "throttled": 1}, outcomes


async def test_the_right_password_among_parallel_guesses_is_refused(world: World) -> None:
    async with clients(100) as sessions:
        attempts = [login(world, s, "viewer1", f"wrong-guess-{i:03d}")
                    for i, s in enumerate(sessions[:99])]
        attempts.append(login(world, sessions[99], "viewer1", PASSWORD))
        results = await asyncio.gather(*attempts)
    assert results[-1][0] == 429, results[-1]
    assert sum(1 for status, _ in results if status == 401) <= 5


@pytest.mark.slow
async def test_database_writes_do_not_wait_for_password_checks(world: World) -> None:
    """60 sign-ins for unknown users in flight (each from its own address, so none is
    throttled): a database write issued meanwhile completes while passwords are still being
    checked, instead of queueing behind ~60 argon2 checks on the writer thread (~8 s before).
    Sign-ins beyond the password pool's capacity are answered 503 with Retry-After at once."""
    gateway = world.app[GATEWAY]
    pool = world.app[PASSWORDS]
    assert pool.capacity < 60
    async with clients(60) as sessions:
        flood = asyncio.gather(*(login(world, s, f"nobody{i}", "some-password-1")
                                 for i, s in enumerate(sessions)))
        # the sign-ins have reached the server and passwords are being checked
        deadline = time.monotonic() + 10
        while pool.under_way == 0:
            assert time.monotonic() < deadline, "no password check started within 10 s"
            await asyncio.sleep(0.01)

        def touch() -> int:
            return int(m.Site.update(timezone="Asia/Almaty").where(
                m.Site.id == world.site_a).execute())

        start = time.monotonic()
        assert await gateway.write(touch) == 1
        elapsed_s = time.monotonic() - start
        checks_under_way = pool.under_way
        results = await flood
        statuses = Counter(status for status, _ in results)
        assert elapsed_s < 2.0, f"a write waited {elapsed_s:.1f} s behind sign-ins ({statuses})"
        assert checks_under_way > 0, "the write was not timed while passwords were being checked"
        # every sign-in was answered: refused (401), or told the password pool is full (503)
        assert set(statuses) == {401, 503}, statuses
        assert all(int(r) >= 1 for s, r in results if s == 503)
        # once the checks are done, a real user signs in
        assert pool.under_way == 0
        assert (await login(world, sessions[0], "viewer_b", PASSWORD))[0] == 200


async def test_a_full_password_pool_refuses_at_once_and_counts_no_failure(world: World) -> None:
    """With every place in the password pool taken, sign-ins (form and API) are answered 503
    with Retry-After at once; those attempts were never checked, so they lock nothing."""
    import re
    from contextlib import ExitStack

    pool = world.app[PASSWORDS]
    page = await (await world.client.get("/login")).text()
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    with ExitStack() as places:
        for _ in range(pool.capacity):
            places.enter_context(pool.place())
        resp = await world.client.post("/login", data={
            "username": "viewer1", "password": PASSWORD, "login_csrf": login_csrf})
        assert resp.status == 503 and int(resp.headers["Retry-After"]) >= 1
        assert "busy" in await resp.text()
        for _ in range(8):  # more than the throttle's five
            resp = await world.client.post("/api/v1/auth/login",
                                           json={"username": "viewer1", "password": "wrong-1234"})
            assert resp.status == 503 and int(resp.headers["Retry-After"]) >= 1
            assert "try again in" in (await resp.json())["error"]["message"]
    await world.login("viewer1")  # neither the account nor the address was locked
