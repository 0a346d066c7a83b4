"""A small RTSP 1.0 client (RFC 2326) for sending to a camera: the ONVIF audio backchannel.

This module owns one RTSP control connection the server itself speaks (ffmpeg does every other
RTSP session): requests and their responses matched by ``CSeq``, Digest (RFC 2617, MD5 with or
without ``qop=auth``) or Basic authentication answered once per challenge, interleaved RTP/RTCP
frames from the camera read and dropped, and outgoing interleaved RTP written with a bounded send
buffer. Every read and request has a time limit and a byte limit; the camera password is only ever
used to compute the ``Authorization`` header (Basic only when the camera offers nothing else), and
errors name a status or a reason, never an answer's text. :mod:`recorder.backchannel` uses it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import re
import secrets
import struct
from dataclasses import dataclass, field
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
USER_AGENT = "vms-talkback/1"
_AUTH_PARAM_RE = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


class RtspError(Exception):
    """The camera's RTSP answer, or its absence, made the session impossible."""

    def __init__(self, message: str, *, status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


@dataclass
class RtspResponse:
    status: int
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes = b""


@dataclass
class _Challenge:
    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    nc: int = 0


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def _parse_challenges(values: list[str]) -> _Challenge | None:
    """The strongest challenge offered: Digest (MD5) before Basic."""
    found: dict[str, _Challenge] = {}
    for value in values:
        scheme, _, rest = value.strip().partition(" ")
        params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
                  for m in _AUTH_PARAM_RE.finditer(rest)}
        found.setdefault(scheme.lower(), _Challenge(scheme.lower(), params))
    digest = found.get("digest")
    if digest is not None and digest.params.get("algorithm", "MD5").upper() == "MD5":
        return digest
    return found.get("basic")


class RtspConnection:
    """One TCP connection to a camera's RTSP port. ``await connect()``, :meth:`request`,
    :meth:`send_interleaved`, and always :meth:`close`."""

    def __init__(self, url: str, username: str, password: str, *, timeout_s: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "rtsp" or not parts.hostname:
            raise RtspError("not an rtsp:// URL")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or 554
        self.username = username
        self._password = password
        self.timeout_s = timeout_s
        self._cseq = 0
        self._pending: dict[int, asyncio.Future[RtspResponse]] = {}
        self._challenge: _Challenge | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._read_task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.close_reason = ""

    async def connect(self) -> None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, limit=MAX_HEADER_BYTES),
                self.timeout_s)
        except (OSError, TimeoutError) as exc:
            raise RtspError(f"cannot connect to {self.host}:{self.port} "
                            f"({type(exc).__name__})") from None
        writer.transport.set_write_buffer_limits(high=64 * 1024)
        self._reader, self._writer = reader, writer
        self._read_task = asyncio.create_task(self._read_loop(), name=f"rtsp-{self.host}")

    # -- requests ---------------------------------------------------------------------------------

    def _authorization(self, method: str, uri: str) -> str | None:
        challenge = self._challenge
        if challenge is None or not self.username:
            return None
        if challenge.scheme == "basic":
            raw = f"{self.username}:{self._password}".encode()
            return "Basic " + base64.b64encode(raw).decode("ascii")
        p = challenge.params
        realm, nonce = p.get("realm", ""), p.get("nonce", "")
        ha1 = _md5(f"{self.username}:{realm}:{self._password}")
        ha2 = _md5(f"{method}:{uri}")
        fields = [f'username="{self.username}"', f'realm="{realm}"', f'nonce="{nonce}"',
                  f'uri="{uri}"']
        qops = [q.strip() for q in p.get("qop", "").split(",") if q.strip()]
        if "auth" in qops:
            challenge.nc += 1
            nc, cnonce = f"{challenge.nc:08x}", secrets.token_hex(8)
            response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            fields += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
        else:
            response = _md5(f"{ha1}:{nonce}:{ha2}")
        fields.append(f'response="{response}"')
        if "opaque" in p:
            fields.append(f'opaque="{p["opaque"]}"')
        fields.append("algorithm=MD5")
        return "Digest " + ", ".join(fields)

    async def request(self, method: str, uri: str,
                      headers: dict[str, str] | None = None) -> RtspResponse:
        """Send one request and await its answer; a 401 is answered once with credentials."""
        response = await self._send(method, uri, headers)
        if response.status == 401 and self.username:
            challenge = _parse_challenges(response.headers.get("www-authenticate", "").split("\n"))
            if challenge is None:
                raise RtspError(f"{method}: the camera asks for an authentication scheme we do "
                                "not speak", status=401)
            self._challenge = challenge
            response = await self._send(method, uri, headers)
        if response.status == 401:
            raise RtspError(f"{method}: wrong camera user name or password (RTSP 401)",
                            status=401)
        return response

    async def _send(self, method: str, uri: str,
                    headers: dict[str, str] | None) -> RtspResponse:
        if self._writer is None or self.closed.is_set():
            raise RtspError(f"{method}: connection closed ({self.close_reason or 'not open'})")
        self._cseq += 1
        cseq = self._cseq
        lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {cseq}", f"User-Agent: {USER_AGENT}"]
        auth = self._authorization(method, uri)
        if auth:
            lines.append(f"Authorization: {auth}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        future: asyncio.Future[RtspResponse] = asyncio.get_running_loop().create_future()
        self._pending[cseq] = future
        try:
            self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            raise RtspError(f"{method}: no answer within {self.timeout_s:.0f} s") from None
        finally:
            self._pending.pop(cseq, None)

    # -- media ------------------------------------------------------------------------------------

    def send_interleaved(self, channel: int, packet: bytes) -> None:
        if self._writer is None or self.closed.is_set():
            raise RtspError(f"connection closed ({self.close_reason or 'not open'})")
        self._writer.write(b"$" + bytes((channel,)) + struct.pack(">H", len(packet)) + packet)

    def write_buffer_bytes(self) -> int:
        return self._writer.transport.get_write_buffer_size() if self._writer else 0

    # -- reading ----------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        assert self._reader is not None
        reader = self._reader
        reason = "camera closed the connection"
        try:
            while True:
                first = await reader.read(1)
                if not first:
                    break
                if first == b"$":  # the camera's RTCP (or media we did not ask for): dropped
                    head = await reader.readexactly(3)
                    await reader.readexactly(struct.unpack(">H", head[1:])[0])
                    continue
                if first in b"\r\n":
                    continue
                response = await self._read_response(first, reader)
                future = self._pending.get(int(response.headers.get("cseq", "-1") or -1))
                if future is not None and not future.done():
                    future.set_result(response)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
                OSError) as exc:
            reason = f"connection lost ({type(exc).__name__})"
        except ValueError as exc:
            reason = f"bad answer from the camera: {exc}"
        finally:
            self.close_reason = self.close_reason or reason
            self.closed.set()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(RtspError(self.close_reason))

    async def _read_response(self, first: bytes, reader: asyncio.StreamReader) -> RtspResponse:
        head = (first + await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        lines = head.split("\r\n")
        match = re.fullmatch(r"RTSP/1\.0 (\d{3})(?: .*)?", lines[0])
        if match is None:
            raise ValueError("not an RTSP status line")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                # several WWW-Authenticate headers: keep them all, one a line
                headers[key] = f"{headers[key]}\n{value.strip()}" if key in headers \
                    else value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length > MAX_BODY_BYTES:
            raise ValueError(f"an answer of {length} bytes")
        body = await reader.readexactly(length) if length else b""
        return RtspResponse(int(match.group(1)), headers, body)

    async def close(self, reason: str = "closed") -> None:
        self.close_reason = self.close_reason or reason
        if self._writer is not None:
            self._writer.transport.abort()
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._read_task
            self._read_task = None
        self.closed.set()
