"""Snapshots over HTTP: whole, bounded, JPEG only, from the camera's own host only, and the
camera password never sent anywhere else (nor in clear when Digest is on offer).

Real aiohttp servers on loopback: 127.0.0.1 plays the camera (its adopted host) and 127.0.0.2
plays "some other host" a hostile camera names (an internal service, a password collector).
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from camsim.onvif.http import HttpAuth
from onvif_bridge.errors import (
    OnvifAuthError,
    OnvifParseError,
    OnvifRefusedUrlError,
    OnvifTooLargeError,
    OnvifUnreachableError,
)
from onvif_bridge.snapshot import digest_authorization, get_snapshot
from tests.onvif_bridge.streamed import Streamed

CAMERA = "127.0.0.1"
OTHER = "127.0.0.2"
USER, PASSWORD = "admin", "pw-123456"
JPEG = b"\xff\xd8" + os.urandom(2_000) + b"\xff\xd9"
SECRET_TEXT = "internal-service: token=TOP-SECRET-0042 do not show"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Recorder:
    """A real HTTP server that notes every request's path and Authorization header."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    def wrap(self, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            self.requests.append((request.path, request.headers.get("Authorization", "")))
            return await handler(request)

        return wrapped

    def sent_password_in_clear(self) -> bool:
        clear = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        return any(clear in auth or PASSWORD in auth for _, auth in self.requests)


async def serve(aiohttp_server: Any, host: str, routes: dict[str, Handler]) -> tuple[Any, Recorder]:
    recorder = Recorder()
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, recorder.wrap(handler))
    return await aiohttp_server(app, host=host), recorder


def basic_only(body: bytes = JPEG, content_type: str = "image/jpeg") -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") is None:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="cam"'})
        return web.Response(body=body, content_type=content_type)

    return handler


async def internal(request: web.Request) -> web.StreamResponse:
    return web.Response(text=SECRET_TEXT)


# --- whole and bounded --------------------------------------------------------------------------

@pytest.fixture
async def dribbling(aiohttp_server: Any) -> tuple[Any, bytes]:
    big = b"\xff\xd8" + os.urandom(700_000) + b"\xff\xd9"

    async def snapshot(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") is None:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="cam"'})
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        await response.prepare(request)
        for i in range(0, len(big), 10_000):  # dribble it out in small writes
            await response.write(big[i:i + 10_000])
        await response.write_eof()
        return response

    srv, _ = await serve(aiohttp_server, CAMERA, {"/snap.jpg": snapshot})
    return srv, big


async def test_large_snapshot_arrives_whole(dribbling: tuple[Any, bytes]) -> None:
    srv, big = dribbling
    body = await get_snapshot(str(srv.make_url("/snap.jpg")), USER, PASSWORD, camera_host=CAMERA)
    assert body == big


async def test_oversized_snapshot_is_refused_naming_the_limit(dribbling: tuple[Any, bytes]) -> None:
    srv, _ = dribbling
    with pytest.raises(OnvifTooLargeError, match="100000 bytes") as info:
        await get_snapshot(str(srv.make_url("/snap.jpg")), USER, PASSWORD, camera_host=CAMERA,
                           max_bytes=100_000)
    assert info.value.limit_bytes == 100_000


async def test_endless_snapshot_stops_at_the_limit(aiohttp_server: Any) -> None:
    """The server would send 128 MiB; the client hangs up soon after its 1 MiB limit."""
    sent = Streamed(b"\xff\xd8", content_type="image/jpeg")
    srv, _ = await serve(aiohttp_server, CAMERA, {"/snap.jpg": sent})
    with pytest.raises(OnvifTooLargeError, match="1048576 bytes"):
        await get_snapshot(str(srv.make_url("/snap.jpg")), USER, PASSWORD, camera_host=CAMERA,
                           max_bytes=1 << 20)
    assert await sent.total() < 32 << 20, "the client read on well past its limit"


async def test_slow_snapshot_times_out(aiohttp_server: Any) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        await response.prepare(request)
        await response.write(b"\xff\xd8")
        for _ in range(100):
            await asyncio.sleep(0.1)
            await response.write(b"\x00")
        return response

    srv, _ = await serve(aiohttp_server, CAMERA, {"/snap.jpg": slow})
    with pytest.raises(OnvifUnreachableError, match="within 0.5 s"):
        await get_snapshot(str(srv.make_url("/snap.jpg")), USER, PASSWORD, camera_host=CAMERA,
                           timeout_s=0.5)


async def test_wrong_password_is_an_auth_error(aiohttp_server: Any) -> None:
    async def refuse(request: web.Request) -> web.StreamResponse:
        return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="cam"'})

    srv, _ = await serve(aiohttp_server, CAMERA, {"/snap.jpg": refuse})
    with pytest.raises(OnvifAuthError):
        await get_snapshot(str(srv.make_url("/snap.jpg")), USER, "wrong-pass", camera_host=CAMERA)


# --- JPEG only, never the answer's text ---------------------------------------------------------

@pytest.mark.parametrize(("body", "content_type"), [
    (SECRET_TEXT.encode(), "text/plain"),  # what an internal service answers
    (SECRET_TEXT.encode(), "image/jpeg"),  # lying about its type: no FFD8 marker
])
async def test_a_body_that_is_no_jpeg_is_refused_unquoted(aiohttp_server: Any, body: bytes,
                                                          content_type: str) -> None:
    srv, _ = await serve(aiohttp_server, CAMERA, {"/snap.jpg": basic_only(body, content_type)})
    with pytest.raises(OnvifParseError, match="not a JPEG") as info:
        await get_snapshot(str(srv.make_url("/snap.jpg")), USER, PASSWORD, camera_host=CAMERA)
    assert "SECRET" not in str(info.value)


# --- only the camera's own host (SSRF) ----------------------------------------------------------

async def test_a_url_on_another_host_is_never_fetched(aiohttp_server: Any) -> None:
    other, seen = await serve(aiohttp_server, OTHER, {"/v1/kv": internal})
    with pytest.raises(OnvifRefusedUrlError, match="not the camera's own") as info:
        await get_snapshot(str(other.make_url("/v1/kv")), USER, PASSWORD, camera_host=CAMERA)
    assert seen.requests == []
    assert "SECRET" not in str(info.value)


async def test_a_redirect_to_another_host_is_not_followed(aiohttp_server: Any) -> None:
    other, seen = await serve(aiohttp_server, OTHER, {"/v1/kv": internal})

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(str(other.make_url("/v1/kv")))

    camera, _ = await serve(aiohttp_server, CAMERA, {"/snap.jpg": redirect})
    with pytest.raises(OnvifRefusedUrlError, match="not the camera's own"):
        await get_snapshot(str(camera.make_url("/snap.jpg")), USER, PASSWORD, camera_host=CAMERA)
    assert seen.requests == []


async def test_a_redirect_on_the_camera_itself_is_followed(aiohttp_server: Any) -> None:
    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/real.jpg")

    camera, seen = await serve(aiohttp_server, CAMERA,
                               {"/snap.jpg": redirect, "/real.jpg": basic_only()})
    body = await get_snapshot(str(camera.make_url("/snap.jpg")), USER, PASSWORD,
                              camera_host=CAMERA)
    assert body == JPEG
    assert [path for path, _ in seen.requests] == ["/snap.jpg", "/real.jpg", "/real.jpg"]


async def test_an_allowed_host_is_fetched_but_never_given_the_password_in_clear(
        aiohttp_server: Any) -> None:
    other, seen = await serve(aiohttp_server, OTHER, {"/snap.jpg": basic_only()})
    url = str(other.make_url("/snap.jpg"))
    with pytest.raises(OnvifAuthError, match="only to the camera's own host"):
        await get_snapshot(url, USER, PASSWORD, camera_host=CAMERA, allowed_hosts=[OTHER])
    assert seen.requests and not seen.sent_password_in_clear()


async def test_an_allowed_host_gets_digest(aiohttp_server: Any) -> None:
    auth = HttpAuth("other", lambda: USER, lambda: PASSWORD)  # camsim's Digest checker

    async def snapshot(request: web.Request) -> web.StreamResponse:
        if not auth.check(request):
            raise auth.challenge()
        return web.Response(body=JPEG, content_type="image/jpeg")

    other, seen = await serve(aiohttp_server, OTHER, {"/snap.jpg": snapshot})
    body = await get_snapshot(str(other.make_url("/snap.jpg")), USER, PASSWORD,
                              camera_host=CAMERA, allowed_hosts=[f" {OTHER} "])
    assert body == JPEG
    assert not seen.sent_password_in_clear()


async def test_digest_is_preferred_when_basic_is_offered_first(aiohttp_server: Any) -> None:
    """A camera offering ``Basic`` and then ``Digest`` gets Digest: the password stays hidden."""
    auth = HttpAuth("cam", lambda: USER, lambda: PASSWORD)

    async def snapshot(request: web.Request) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("digest") and auth.check(request):
            return web.Response(body=JPEG, content_type="image/jpeg")
        digest = auth.challenge().headers["WWW-Authenticate"]
        response = web.Response(status=401)
        response.headers.add("WWW-Authenticate", 'Basic realm="cam"')
        response.headers.add("WWW-Authenticate", digest)
        return response

    camera, seen = await serve(aiohttp_server, CAMERA, {"/snap.jpg": snapshot})
    body = await get_snapshot(str(camera.make_url("/snap.jpg")), USER, PASSWORD,
                              camera_host=CAMERA)
    assert body == JPEG
    assert not seen.sent_password_in_clear()


async def test_credentials_in_the_url_are_dropped(aiohttp_server: Any) -> None:
    camera, seen = await serve(aiohttp_server, CAMERA, {"/snap.jpg": basic_only()})
    url = str(camera.make_url("/snap.jpg").with_user("evil").with_password("planted"))
    assert await get_snapshot(url, USER, PASSWORD, camera_host=CAMERA) == JPEG
    sent = [auth for _, auth in seen.requests if auth]
    assert sent == [aiohttp.encode_basic_auth(USER, PASSWORD)]


def test_digest_answer_matches_rfc_7616_examples() -> None:
    """RFC 7616 section 3.9.1: the same challenge answered with SHA-256 and with MD5."""
    challenge = ('realm="http-auth@example.org", qop="auth, auth-int", algorithm={}, '
                 'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
                 'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
    url = URL("http://www.example.org/dir/index.html")
    cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
    expected = {"SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
                "MD5": "8ca523f5e9506fed4657c9700eebdbec"}
    for algorithm, response in expected.items():
        header = digest_authorization(challenge.format(algorithm), "GET", url, "Mufasa",
                                      "Circle of Life", cnonce=cnonce)
        assert header is not None and f'response="{response}"' in header
        assert 'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"' in header
        assert "Circle of Life" not in header
