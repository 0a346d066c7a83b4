"""Snapshots over HTTP from the URL a camera names in GetSnapshotUri, fetched only where safe.

The URL comes from the camera, so it is untrusted: a hostile camera could name an internal
service (``http://10.0.0.5:8500/v1/kv/…``), hoping the server fetches it and hands the answer to
whoever asked for a snapshot (SSRF), or ask for Basic auth from some host of its choosing to
collect the camera password in clear. The rules:

- **Host.** The URL, and every redirect (followed by hand, at most :data:`MAX_REDIRECTS`), must
  be on the camera's own host: the host of the ONVIF address it was adopted by (a camera adopted
  by name may also name an IP address that name resolves to). Other hosts are refused before a
  connection is opened (:class:`~onvif_bridge.errors.OnvifRefusedUrlError`) unless the installer
  allowed them (``allowed_hosts``: setting ``cameras.snapshot_hosts_allowed``). Only ``http`` and
  ``https``; a ``user:password@`` in the URL is dropped.
- **Credentials.** Sent only after a 401 and only to the camera's own host or a host the
  installer allowed. Digest is preferred whenever it is offered (with several
  ``WWW-Authenticate`` headers too); Basic, which carries the password in clear, only to the
  camera's own host.
- **Answer.** Read with a byte limit while reading (:func:`onvif_bridge.http.read_body`) and a
  time limit on the whole fetch; it must be a JPEG: an image/JPEG (or generic binary) content
  type and the FFD8 start marker. Errors name the status, type or size, never the answer's text.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import re
import secrets
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from onvif_bridge.client import DEFAULT_TIMEOUT_S, redact_url
from onvif_bridge.errors import (
    OnvifAuthError,
    OnvifHttpStatusError,
    OnvifParseError,
    OnvifRefusedUrlError,
    OnvifUnreachableError,
)
from onvif_bridge.http import host_key, read_body

logger = logging.getLogger(__name__)

MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024
"""Largest snapshot we read (a 12 MP camera's JPEG is 2–5 MB)."""
MAX_REDIRECTS = 3
JPEG_CONTENT_TYPES = frozenset({"image/jpeg", "image/jpg", "image/pjpeg",
                                "application/octet-stream", "binary/octet-stream"})
"""Content types a JPEG may come with (aiohttp reads a missing one as octet-stream)."""
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_MIME_RE = re.compile(r"[a-z0-9.+-]{1,40}/[a-z0-9.+-]{1,60}")
_AUTH_PARAM = re.compile(r'([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
_UNESCAPE = re.compile(r"\\(.)")
_DIGEST_HASHES: dict[str, Callable[..., Any]] = {"MD5": hashlib.md5, "MD5-SESS": hashlib.md5,
                  "SHA-256": hashlib.sha256, "SHA-256-SESS": hashlib.sha256}


@dataclass(frozen=True, slots=True)
class _Hosts:
    """Where a snapshot may come from: the camera's own host (and, when that is a name, the
    addresses it resolves to) and the hosts an installer allowed."""

    own: frozenset[str]
    allowed: frozenset[str]
    camera_host: str

    def check(self, url: URL, safe: str) -> URL:
        if url.scheme not in ("http", "https"):
            raise OnvifRefusedUrlError(f"snapshot {safe}: not an http(s) URL; refused")
        host = host_key(url.host or "")
        if not host or (host not in self.own and host not in self.allowed):
            raise OnvifRefusedUrlError(
                f"snapshot {safe}: host {url.host or '?'} is not the camera's own "
                f"({self.camera_host}); refused (an installer may allow it: setting "
                "cameras.snapshot_hosts_allowed)")
        return url.with_user(None).with_fragment(None)

    def is_own(self, url: URL) -> bool:
        return host_key(url.host or "") in self.own


async def get_snapshot(
    uri: str, username: str, password: str, *, camera_host: str,
    allowed_hosts: Iterable[str] = (), timeout_s: float = DEFAULT_TIMEOUT_S,
    max_bytes: int = MAX_SNAPSHOT_BYTES,
) -> bytes:
    """The JPEG at ``uri``, a snapshot URL named by the camera whose host is ``camera_host``
    (the host of its adopted ONVIF address); raises our typed errors (see the module rules)."""
    safe = redact_url(uri)
    try:
        async with asyncio.timeout(timeout_s):
            try:
                first = URL(uri)
            except ValueError:
                raise OnvifRefusedUrlError(f"snapshot {safe}: unreadable URL; refused") from None
            hosts = await _hosts(camera_host, allowed_hosts, host_key(first.host or ""))
            url = hosts.check(first, safe)
            async with aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=timeout_s),
                    cookie_jar=aiohttp.DummyCookieJar()) as session:
                fetch = _Fetch(session, hosts, username, password, safe, max_bytes)
                for _ in range(MAX_REDIRECTS + 1):
                    answer = await fetch.one(url)
                    if isinstance(answer, bytes):
                        return answer
                    url = hosts.check(answer, safe)
                raise OnvifRefusedUrlError(f"snapshot {safe}: more than {MAX_REDIRECTS} "
                                           "redirects; refused")
    except TimeoutError:
        raise OnvifUnreachableError(f"snapshot {safe}: no answer within {timeout_s:g} s") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise OnvifUnreachableError(f"snapshot {safe}: {type(exc).__name__}: {exc}") from None


async def _hosts(camera_host: str, allowed_hosts: Iterable[str], target: str) -> _Hosts:
    own = {host_key(camera_host)}
    if target not in own and _is_ip(target) and not _is_ip(host_key(camera_host)):
        # Adopted by name, the camera names its IP address: accept the addresses the name
        # resolves to (we connect to the literal address, so no later lookup can change it).
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                camera_host, None, type=socket.SOCK_STREAM)
        except OSError:
            infos = []
        own.update(host_key(str(info[4][0])) for info in infos)
    allowed = frozenset(host_key(h) for h in allowed_hosts if h.strip())
    return _Hosts(frozenset(own), allowed, camera_host)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _Fetch:
    """One GET (with its 401 round trip); answers the JPEG or the URL a redirect names."""

    def __init__(self, session: aiohttp.ClientSession, hosts: _Hosts, username: str,
                 password: str, safe: str, max_bytes: int) -> None:
        self.session = session
        self.hosts = hosts
        self.username = username
        self.password = password
        self.safe = safe
        self.max_bytes = max_bytes

    async def one(self, url: URL) -> bytes | URL:
        async with self.session.get(url, allow_redirects=False) as response:
            if response.status != 401 or not (self.username or self.password):
                return await self._answer(response)
            challenges = response.headers.getall("WWW-Authenticate", [])
        authorization = self._authorization(url, challenges)
        async with self.session.get(url, allow_redirects=False,
                                    headers={"Authorization": authorization}) as response:
            return await self._answer(response)

    def _authorization(self, url: URL, challenges: list[str]) -> str:
        """Digest if offered; Basic only for the camera's own host."""
        schemes: dict[str, str] = {}
        for challenge in challenges:
            scheme, _, params = challenge.strip().partition(" ")
            schemes.setdefault(scheme.lower(), params)
        if "digest" in schemes:
            header = digest_authorization(schemes["digest"], "GET", url, self.username,
                                          self.password)
            if header is not None:
                return header
        if "basic" in schemes and self.hosts.is_own(url):
            return aiohttp.encode_basic_auth(self.username, self.password)
        if "basic" in schemes:
            raise OnvifAuthError(
                f"snapshot {self.safe}: asks for Basic auth, which would send the password in "
                "clear; it goes only to the camera's own host")
        raise OnvifAuthError(f"snapshot {self.safe}: asks for a login we cannot give (HTTP 401, "
                             f"{', '.join(sorted(schemes)) or 'no'} scheme)")

    async def _answer(self, response: aiohttp.ClientResponse) -> bytes | URL:
        status = response.status
        if status in _REDIRECT_STATUSES and response.headers.get("Location"):
            try:
                return response.url.join(URL(response.headers["Location"]))
            except ValueError:
                raise OnvifRefusedUrlError(f"snapshot {self.safe}: HTTP {status} to an "
                                           "unreadable URL; refused") from None
        if status in (401, 403):
            raise OnvifAuthError(f"snapshot {self.safe}: wrong user name or password "
                                 f"(HTTP {status})")
        if status != 200:
            raise OnvifHttpStatusError(f"snapshot {self.safe}: HTTP {status}", status)
        kind = response.content_type.lower()
        if kind not in JPEG_CONTENT_TYPES:
            shown = kind if _MIME_RE.fullmatch(kind) else "an unexpected type"
            response.close()
            raise OnvifParseError(f"snapshot {self.safe}: not a JPEG (Content-Type {shown})")
        body = await read_body(response, self.max_bytes, f"snapshot {self.safe}")
        if not body.startswith(b"\xff\xd8"):
            raise OnvifParseError(f"snapshot {self.safe}: not a JPEG ({len(body)} bytes without "
                                  "the FFD8 start marker)")
        return body


def digest_authorization(params_text: str, method: str, url: URL, username: str,
                         password: str, *, cnonce: str | None = None) -> str | None:
    """The ``Authorization`` value answering one Digest challenge (RFC 7616: MD5, SHA-256 and
    their -sess forms; qop ``auth`` or none); None for a challenge we cannot answer."""
    params = {m.group(1).lower(): (_UNESCAPE.sub(r"\1", m.group(2)) if m.group(2) is not None
                                   else m.group(3))
              for m in _AUTH_PARAM.finditer(params_text)}
    realm, nonce = params.get("realm"), params.get("nonce")
    algorithm = (params.get("algorithm") or "MD5").upper()
    hasher = _DIGEST_HASHES.get(algorithm)
    if realm is None or not nonce or hasher is None:
        return None

    def h(text: str) -> str:
        return hasher(text.encode(), usedforsecurity=False).hexdigest()

    cnonce = cnonce or secrets.token_hex(8)
    ha1 = h(f"{username}:{realm}:{password}")
    if algorithm.endswith("-SESS"):
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    uri = url.raw_path_qs
    ha2 = h(f"{method}:{uri}")
    qops = {q.strip().lower() for q in (params.get("qop") or "").split(",") if q.strip()}
    fields = {"username": username, "realm": realm, "nonce": nonce, "uri": uri,
              "algorithm": algorithm}
    if "auth" in qops:
        fields["response"] = h(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
        extra = f', qop=auth, nc=00000001, cnonce="{cnonce}"'
    elif not qops:
        fields["response"] = h(f"{ha1}:{nonce}:{ha2}")
        extra = ""
    else:
        return None  # auth-int only
    if params.get("opaque") is not None:
        fields["opaque"] = params["opaque"]
    quoted = ", ".join(f'{k}="{_quote(v)}"' if k != "algorithm" else f"{k}={v}"
                       for k, v in fields.items())
    return f"Digest {quoted}{extra}"


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


__all__ = [
    "JPEG_CONTENT_TYPES",
    "MAX_REDIRECTS",
    "MAX_SNAPSHOT_BYTES",
    "digest_authorization",
    "get_snapshot",
]
