"""The HTTP side of the ONVIF services: SOAP dispatch by path, fault rendering, HTTP auth.

:class:`SoapApp` owns the per-path :class:`~camsim.onvif.soap.Service` table and the failure modes
a test can switch on (slow answers, malformed XML, unavailable while rebooting). The snapshot
endpoint wants HTTP Digest (or Basic) credentials, like real cameras; :class:`HttpAuth` checks
them with server nonces.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from camsim.onvif.soap import (
    SOAP11,
    SOAP12,
    BadRequest,
    Request,
    Service,
    SoapFault,
    action_not_supported,
    envelope,
    fault_body,
    parse_request,
)
from camsim.onvif.wsse import UsernameTokenChecker

logger = logging.getLogger(__name__)

MALFORMED_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<env:Envelope xmlns:env="http://www.w3.org/2003/05/'
    'soap-envelope"><env:Body><tds:GetDeviceInformationResponse><tds:Manufacturer>CamSim'
    "</tds:Model></env:Body"
)


def content_type(version: str) -> str:
    return "application/soap+xml" if version == SOAP12 else "text/xml"


class SoapApp:
    """Dispatches POSTed envelopes to services by URL path."""

    def __init__(
        self,
        name: str,
        checker: UsernameTokenChecker,
        *,
        monotonic_us: Callable[[], int],
        after_request: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self.checker = checker
        self.services: dict[str, Service] = {}
        self.prefix_services: dict[str, Service] = {}
        self.soap_delay_s = 0.0
        self.bad_xml_until_us = 0
        self.available = True
        self.requests: dict[str, int] = {}
        """SOAP requests answered, by operation (a test counts a client's retries)."""
        self._monotonic_us = monotonic_us
        self._after_request = after_request

    def mount(self, path: str, service: Service, *, prefix: bool = False) -> None:
        (self.prefix_services if prefix else self.services)[path] = service

    def _service_for(self, path: str) -> Service | None:
        service = self.services.get(path.rstrip("/"))
        if service is not None:
            return service
        for prefix, svc in self.prefix_services.items():
            if path.startswith(prefix + "/"):
                return svc
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not self.available:
            # Rebooting: a real camera's TCP stack is gone; cut the connection without an answer.
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable()
        data = await request.read()
        if self.soap_delay_s > 0:
            await asyncio.sleep(self.soap_delay_s)
        if self._monotonic_us() < self.bad_xml_until_us:
            return web.Response(body=MALFORMED_XML.encode(), content_type="application/soap+xml",
                                charset="utf-8")
        try:
            req = parse_request(data, request.path)
            self.requests[req.operation] = self.requests.get(req.operation, 0) + 1
        except BadRequest as exc:
            logger.debug("%s: unparsable SOAP request to %s: %s", self.name, request.path, exc)
            fault = SoapFault("Malformed SOAP request", subcodes=("ter:WellFormed",))
            return self._fault(fault, SOAP12)
        service = self._service_for(request.path)
        handler = service.handlers.get(req.operation) if service is not None else None
        if service is None or handler is None:
            logger.debug("%s: %s not supported at %s", self.name, req.operation, request.path)
            return self._fault(action_not_supported(req.operation), req.version)
        try:
            if req.operation not in service.public:
                req.username = self.checker.check(req.header)
            body = await handler(req)
        except SoapFault as fault:
            logger.debug("%s: %s -> fault %s (%s)", self.name, req.operation, fault.subcodes,
                         fault.reason)
            return self._fault(fault, req.version)
        finally:
            self._after_request()
        return web.Response(
            body=envelope(body, version=req.version).encode(),
            content_type=content_type(req.version),
            charset="utf-8",
        )

    def _fault(self, fault: SoapFault, version: str) -> web.Response:
        return web.Response(
            status=fault.http_status,
            body=envelope(fault_body(fault, version), version=version).encode(),
            content_type=content_type(version if version in (SOAP11, SOAP12) else SOAP12),
            charset="utf-8",
        )


_DIGEST_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')


class HttpAuth:
    """HTTP Digest (MD5, qop=auth) and Basic checking for the camera's plain HTTP endpoints."""

    realm = "camsim"

    def __init__(self, name: str, username: Callable[[], str], password: Callable[[], str]) -> None:
        self.name = name
        self._username = username
        self._password = password
        self._nonces: set[str] = set()

    def challenge(self) -> web.HTTPUnauthorized:
        nonce = secrets.token_hex(16)
        self._nonces.add(nonce)
        if len(self._nonces) > 1000:
            self._nonces.pop()
        return web.HTTPUnauthorized(
            headers={"WWW-Authenticate": f'Digest realm="{self.realm}", qop="auth", '
                     f'nonce="{nonce}", algorithm=MD5'}
        )

    def check(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, rest = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(rest.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            return hmac.compare_digest(user, self._username()) and hmac.compare_digest(
                password, self._password())
        if scheme.lower() != "digest":
            return False
        params = {m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
                  for m in _DIGEST_PARAM.finditer(rest)}
        if params.get("username") != self._username() or params.get("nonce") not in self._nonces:
            return False

        def md5(text: str) -> str:
            return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

        ha1 = md5(f"{self._username()}:{self.realm}:{self._password()}")
        ha2 = md5(f"{request.method}:{params.get('uri', '')}")
        if params.get("qop"):
            expected = md5(f"{ha1}:{params['nonce']}:{params.get('nc', '')}:"
                           f"{params.get('cnonce', '')}:{params['qop']}:{ha2}")
        else:
            expected = md5(f"{ha1}:{params['nonce']}:{ha2}")
        return hmac.compare_digest(expected, params.get("response", ""))

    def protect(
        self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            if not self.check(request):
                logger.debug("%s: HTTP %s without valid credentials", self.name, request.path)
                raise self.challenge()
            return await handler(request)

        return wrapped


__all__ = ["HttpAuth", "Request", "SoapApp"]
