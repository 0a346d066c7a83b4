"""Bounded HTTP to cameras: every answer read with a byte limit and a time limit.

A camera (or anything answering at its address) may send an endless body, a huge
``Content-Length`` or one byte a second. Nothing here ever reads an answer whole before checking
its size: :func:`read_body` refuses a declared length over the limit before reading a byte, counts
bytes as they arrive and, at the limit, closes the connection and raises
:class:`~onvif_bridge.errors.OnvifTooLargeError` naming the limit. Decompression is incremental
(aiohttp), so the count is of the decompressed bytes and a compressed bomb is cut off the same way.
The time limit is the session's ``ClientTimeout(total=…)`` plus the callers' own
``asyncio.timeout``.

:class:`BoundedTransport` is onvif-zeep-async's transport with the same reading, installed on
every ONVIF service :class:`onvif_bridge.client.OnvifClient` opens (its own and zeep's calls both
go through it). SOAP is never redirected (a 3xx is reported by its status).

:func:`host_key` and :func:`same_host` compare hosts as the snapshot rules need them
(:mod:`onvif_bridge.snapshot`): case, brackets and IP spelling do not matter, nothing else does.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from onvif.client import AsyncTransportProtocolErrorHandler
from zeep.utils import get_version

from onvif_bridge.errors import OnvifTooLargeError

READ_CHUNK_BYTES = 64 * 1024


async def read_body(response: aiohttp.ClientResponse, max_bytes: int, what: str) -> bytes:
    """The whole body of ``response``, or :class:`OnvifTooLargeError` as soon as it passes
    ``max_bytes`` (the connection is then closed: the rest is never received)."""
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        response.close()
        raise OnvifTooLargeError(
            f"{what}: answer of {declared} bytes refused (limit {max_bytes} bytes)", max_bytes)
    body = bytearray()
    async for chunk in response.content.iter_chunked(READ_CHUNK_BYTES):
        if len(body) + len(chunk) > max_bytes:
            response.close()
            raise OnvifTooLargeError(
                f"{what}: answer longer than {max_bytes} bytes (limit; reading stopped there)",
                max_bytes)
        body += chunk
    return bytes(body)


class BoundedTransport(AsyncTransportProtocolErrorHandler):  # type: ignore[misc]
    """onvif-zeep-async's aiohttp transport (with its retry of a dead pooled connection), reading
    every answer through :func:`read_body` and never following redirects."""

    def __init__(self, session: aiohttp.ClientSession, *, max_bytes: int) -> None:
        super().__init__(session=session, verify_ssl=False)
        self.max_bytes = max_bytes

    async def _post_internal(self, address: str, message: str | bytes,
                             headers: dict[str, str]) -> tuple[aiohttp.ClientResponse, bytes]:
        headers = dict(headers or {})
        headers.setdefault("User-Agent", f"Zeep/{get_version()}")
        headers.setdefault("Content-Type", 'text/xml; charset="utf-8"')
        data = message.encode("utf-8") if isinstance(message, str) else message
        async with self.session.post(address, data=data, headers=headers,
                                     allow_redirects=False) as response:
            content = await read_body(response, self.max_bytes, _where(address))
        return response, content

    async def get(self, address: str, params: dict[str, Any] | None = None,
                  headers: dict[str, str] | None = None) -> Any:
        headers = dict(headers or {})
        headers.setdefault("User-Agent", f"Zeep/{get_version()}")
        async with self.session.get(address, params=params, headers=headers,
                                    allow_redirects=False) as response:
            content = await read_body(response, self.max_bytes, _where(address))
        return self._aiohttp_to_requests_response(response, content)


def _where(address: str) -> str:
    parts = urlsplit(address)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"


def host_key(host: str) -> str:
    """A host as compared: lower case, without brackets or a trailing dot, an IP address in its
    canonical spelling (``::0:1`` and ``::1`` are one host; ``127.1`` is not ``127.0.0.1``:
    we compare what will be connected to, and refuse what is spelt oddly)."""
    key = host.strip().strip("[]").rstrip(".").lower()
    try:
        return ipaddress.ip_address(key).compressed
    except ValueError:
        return key


def url_host(url: str) -> str:
    """The host of ``url`` as :func:`host_key` spells it ("" when there is none)."""
    try:
        return host_key(urlsplit(url).hostname or "")
    except ValueError:
        return ""


def same_host(a: str, b: str) -> bool:
    return bool(a) and host_key(a) == host_key(b)


def onto_host(url: str, device_url: str, *, keep_port: bool) -> str:
    """``url`` unchanged when it is on ``device_url``'s host, else its path and query on that
    host: with ``url``'s own port (``keep_port``: an RTSP stream) or ``device_url``'s (another
    service of the device). Credentials in ``url`` are dropped. ValueError if unreadable.

    Our requests and ffmpeg's carry the camera's login, so they go to no host but the one the
    installer named; a camera behind NAT names its LAN address, which this also gets right."""
    if same_host(url_host(url), url_host(device_url)):
        return url
    parts, device = urlsplit(url), urlsplit(device_url)
    netloc = device.netloc.rsplit("@", 1)[-1]
    if keep_port:
        host = device.hostname or ""
        port = parts.port
        netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    return urlunsplit((parts.scheme if keep_port else device.scheme, netloc, parts.path or "/",
                       parts.query, ""))


__all__ = [
    "READ_CHUNK_BYTES",
    "BoundedTransport",
    "host_key",
    "read_body",
    "onto_host",
    "same_host",
    "url_host",
]
