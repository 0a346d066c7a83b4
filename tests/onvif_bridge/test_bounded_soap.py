"""ONVIF SOAP against hostile or broken answers from a real HTTP server on 127.0.0.1.

An endless or huge answer is cut off at the client's byte limit (counted by what the server
managed to send before the client hung up); a slow one times out; an HTML error page is reported
by its HTTP status (not as "hostile XML"); no answer text is repeated in an error; a failed
interrogation keeps ``address`` a plain ``host:port``; a service address the camera names on
another host is used on the camera's own host (replaying a real Hikvision's answers).
"""

from __future__ import annotations

import re
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from onvif_bridge.client import OnvifClient, interrogate
from onvif_bridge.errors import (
    OnvifFault,
    OnvifHttpStatusError,
    OnvifTooLargeError,
    OnvifUnreachableError,
)
from onvif_bridge.models import Status
from onvif_bridge.scan import report_dict
from tests.onvif_bridge.streamed import Streamed

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LIMIT_BYTES = 256 << 10
SOAP_HEAD = (b'<?xml version="1.0" encoding="UTF-8"?><env:Envelope '
             b'xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body>')
HTML_500 = (b"<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>"
            b"<body><h1>Internal Server Error</h1></body></html>")


async def device(aiohttp_server: Any, handler: Handler) -> str:
    """A server answering every POST with ``handler``; returns its ``host:port``."""
    async def answer(request: web.Request) -> web.StreamResponse:
        return await handler(request)

    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    server = await aiohttp_server(app, host="127.0.0.1")
    return f"127.0.0.1:{server.port}"


# --- item 6: limits while reading ---------------------------------------------------------------

async def test_endless_answer_is_cut_off_at_the_limit(aiohttp_server: Any) -> None:
    endless = Streamed(SOAP_HEAD)
    address = await device(aiohttp_server, endless)
    tracemalloc.start()
    try:
        async with OnvifClient(address, "admin", "pw", timeout_s=10,
                               max_answer_bytes=LIMIT_BYTES) as client:
            with pytest.raises(OnvifTooLargeError, match=f"{LIMIT_BYTES} bytes") as info:
                await client.call("devicemgmt", "GetSystemDateAndTime", auth=False)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.limit_bytes == LIMIT_BYTES
    assert "GetSystemDateAndTime" in str(info.value)
    # The server would have sent 128 MiB; what it got out is our limit plus socket buffers.
    assert await endless.total() < 32 << 20
    assert peak_bytes < 32 << 20


async def test_huge_declared_length_is_refused_before_reading(aiohttp_server: Any) -> None:
    huge = Streamed(SOAP_HEAD, content_length=10 << 30)
    address = await device(aiohttp_server, huge)
    async with OnvifClient(address, "admin", "pw", timeout_s=10,
                           max_answer_bytes=LIMIT_BYTES) as client:
        with pytest.raises(OnvifTooLargeError, match=f"{10 << 30} bytes refused"):
            await client.call("devicemgmt", "GetSystemDateAndTime", auth=False)
    assert await huge.total() < 32 << 20


async def test_interrogation_of_an_endless_answer_is_a_bad_response(aiohttp_server: Any) -> None:
    endless = Streamed(SOAP_HEAD)
    address = await device(aiohttp_server, endless)
    report = await interrogate(address, "admin", "pw", timeout_s=10)
    assert report.status is Status.BAD_RESPONSE, report.message
    assert "limit" in report.message
    assert await endless.total() < 32 << 20


async def test_slow_answer_times_out(aiohttp_server: Any) -> None:
    address = await device(aiohttp_server, Streamed(SOAP_HEAD, delay_s=0.05))
    async with OnvifClient(address, "admin", "pw", timeout_s=0.5) as client:
        with pytest.raises(OnvifUnreachableError, match="within 0.5 s"):
            await client.call("devicemgmt", "GetSystemDateAndTime", auth=False)


# --- item 16: an HTML error page is an HTTP status, not hostile XML -----------------------------

async def test_html_500_page_is_reported_by_its_status(aiohttp_server: Any) -> None:
    async def broken(request: web.Request) -> web.StreamResponse:
        return web.Response(status=500, body=HTML_500, content_type="text/html")

    address = await device(aiohttp_server, broken)
    async with OnvifClient(address, "admin", "pw", timeout_s=5) as client:
        with pytest.raises(OnvifHttpStatusError) as info:
            await client.call("devicemgmt", "GetSystemDateAndTime", auth=False)
    assert info.value.status == 500
    assert "HTTP 500" in str(info.value) and "text/html" in str(info.value)
    report = await interrogate(address, "admin", "pw", timeout_s=5)
    assert report.status is Status.BAD_RESPONSE
    assert "HTTP 500" in report.message
    assert "DTD" not in report.message and "hostile" not in report.message.lower()


async def test_soap_fault_with_http_500_is_still_a_fault(aiohttp_server: Any,
                                                         load: Callable[[str], bytes]) -> None:
    fault = load("hikvision-ds-2cd2012-i__SetNTP__fault.xml")

    async def refuse(request: web.Request) -> web.StreamResponse:
        return web.Response(status=500, body=fault, content_type="application/soap+xml")

    address = await device(aiohttp_server, refuse)
    async with OnvifClient(address, "admin", "pw", timeout_s=5) as client:
        with pytest.raises(OnvifFault):
            await client.call("devicemgmt", "SetNTP", {"FromDHCP": True})


# --- item 4: never repeat what answered ----------------------------------------------------------

async def test_a_non_xml_answer_is_not_quoted(aiohttp_server: Any) -> None:
    """An adopt pointed at an internal service must not hand back the start of its answer."""

    async def internal(request: web.Request) -> web.StreamResponse:
        return web.Response(text="SECRET-TOKEN-0042 internal config: db_password=hunter2")

    address = await device(aiohttp_server, internal)
    report = await interrogate(address, "admin", "pw", timeout_s=5)
    assert report.status is Status.BAD_RESPONSE
    assert "not XML" in report.message
    assert "SECRET" not in report.message and "hunter2" not in report.message


# --- item 16: address stays host:port -------------------------------------------------------------

async def test_failed_interrogation_keeps_address_plain(aiohttp_server: Any) -> None:
    async def refuse(request: web.Request) -> web.StreamResponse:
        return web.Response(status=401)

    address = await device(aiohttp_server, refuse)
    report = await interrogate(address, "admin", "wrong", timeout_s=5, name="Gate 2")
    assert report.status is Status.AUTH_FAILED
    assert report.address == address
    assert report.name == "Gate 2" and "'Gate 2'" in report.message
    public = report_dict(report)
    assert public["address"] == address and public["name"] == "Gate 2"


# --- service addresses on another host ------------------------------------------------------------

async def test_services_named_on_another_host_are_used_on_the_cameras_own(
        aiohttp_server: Any, fixtures_dir: Path) -> None:
    """A real Hikvision's answers name its services at http://10.10.1.65/…; the camera is
    reached at 127.0.0.1:port (port-forwarded, or a hostile camera pointing elsewhere): every
    request, with its login, still goes to 127.0.0.1:port."""
    paths: list[str] = []
    operation = re.compile(rb"<(?:[\w-]+:)?Body[^>]*>\s*<(?:[\w-]+:)?(\w+)")

    async def hikvision(request: web.Request) -> web.StreamResponse:
        paths.append(request.path)
        found = operation.search(await request.read())
        assert found is not None
        name = found.group(1).decode()
        answer = fixtures_dir / f"hikvision-ds-2cd2012-i__{name}.xml"
        if not answer.is_file():
            return web.Response(status=400)
        return web.Response(body=answer.read_bytes(), content_type="application/soap+xml")

    address = await device(aiohttp_server, hikvision)
    async with OnvifClient(address, "admin", "pw", timeout_s=3) as client:
        caps = await client.capabilities()
        assert any("10.10.1.65" in s.xaddr for s in caps.services)
        profiles = await client.profiles()
        # the stream the recorder will send the login to is on the camera's host too
        stream = await client.stream_uri(profiles[0].token)
    assert profiles
    assert stream.startswith("rtsp://127.0.0.1:554/") and "10.10.1.65" not in stream
    assert "/onvif/Media" in paths
