"""RTSP 1.0 messages and authentication of the virtual camera (RFC 2326, RFC 2617).

Reading one request from a connection (handing the client's interleaved packets — RTCP receiver
reports, backchannel RTP — to a callback),
formatting a response, and checking Digest (``MD5``, with or without ``qop``) or Basic credentials
against nonces the server signs itself (so it keeps no nonce table). :mod:`camsim.rtsp` serves the
methods.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass

MAX_REQUEST_BYTES = 64 * 1024
PUBLIC_METHODS = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    459: "Aggregate Operation Not Allowed",
    461: "Unsupported Transport",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    551: "Option not supported",
    505: "RTSP Version Not Supported",
}
_AUTH_PARAM_RE = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


@dataclass
class RtspRequest:
    method: str
    url: str
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes

    @property
    def cseq(self) -> str:
        return self.headers.get("cseq", "0")


async def read_request(reader: asyncio.StreamReader,
                       on_interleaved: Callable[[int, bytes], None]) -> RtspRequest | None:
    """The next request on ``reader`` (None at end of stream); ``on_interleaved(channel, data)``
    is called for each interleaved packet read before it (RTCP receiver reports, backchannel RTP).
    Raises ValueError for a malformed request."""
    while True:
        first = await reader.read(1)
        if not first:
            return None
        if first == b"$":  # an interleaved packet from the client
            head = await reader.readexactly(3)
            data = await reader.readexactly(struct.unpack(">H", head[1:])[0])
            on_interleaved(head[0], data)
            continue
        if first in b"\r\n":
            continue
        break
    head_bytes = first + await reader.readuntil(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise ValueError(f"malformed request line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    if length > MAX_REQUEST_BYTES:
        raise ValueError("request body too large")
    body = await reader.readexactly(length) if length else b""
    return RtspRequest(parts[0].upper(), parts[1], headers, body)


def format_response(code: int, cseq: str, server: str, headers: dict[str, str] | None = None,
                    body: bytes = b"") -> bytes:
    lines = [
        f"RTSP/1.0 {code} {REASONS.get(code, 'Error')}",
        f"CSeq: {cseq}",
        f"Server: {server}",
    ]
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def make_nonce(key: bytes) -> str:
    """A nonce the server can later recognise as its own (a random stamp and its HMAC)."""
    stamp = secrets.token_hex(8)
    mac = hmac.new(key, stamp.encode("ascii"), hashlib.sha256).hexdigest()[:16]
    return stamp + mac


def nonce_valid(key: bytes, nonce: str) -> bool:
    if len(nonce) != 32:
        return False
    mac = hmac.new(key, nonce[:16].encode("ascii"), hashlib.sha256).hexdigest()[:16]
    return hmac.compare_digest(mac, nonce[16:])


def authorized(request: RtspRequest, username: str | None, password: str | None, realm: str,
               nonce_key: bytes) -> bool:
    """Whether ``request`` carries the right Basic or Digest credentials (always, when the camera
    has no ``username``)."""
    if username is None:
        return True
    header = request.headers.get("authorization", "")
    scheme, _, rest = header.partition(" ")
    password = password or ""
    if scheme.lower() == "basic":
        try:
            user, _, given = base64.b64decode(rest.strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, username) and hmac.compare_digest(given, password)
    if scheme.lower() != "digest":
        return False
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _AUTH_PARAM_RE.finditer(rest)
    }
    if params.get("username") != username or params.get("realm") != realm:
        return False
    nonce = params.get("nonce", "")
    if not nonce_valid(nonce_key, nonce):
        return False

    def md5(text: str) -> str:
        return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()

    ha1 = md5(f"{username}:{realm}:{password}")
    ha2 = md5(f"{request.method}:{params.get('uri', '')}")
    if params.get("qop"):
        nc, cnonce = params.get("nc", ""), params.get("cnonce", "")
        expected = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{params['qop']}:{ha2}")
    else:
        expected = md5(f"{ha1}:{nonce}:{ha2}")
    return hmac.compare_digest(expected, params.get("response", ""))
