"""The SOAP the event pump speaks: hand-made envelopes, bounded answers, a redacted exchange log.

The pump (:mod:`onvif_bridge.event_pump`) needs few operations — GetSystemDateAndTime,
GetServices/GetCapabilities, CreatePullPointSubscription, SetSynchronizationPoint, PullMessages,
Renew — but full control over each request: the WS-Addressing ``To``/``Action`` headers and the
subscription reference's ``ReferenceParameters`` echoed back (Axis identifies a pull point by
them, not by its address), a WS-Security ``Created`` stamp shifted by the camera's measured clock
offset, and a time limit per request that depends on the long-poll timeout. Envelopes are
written here as text; answers are read with the byte limit of :func:`onvif_bridge.http.read_body`
and parsed by :mod:`onvif_bridge.parsers` (defused XML), so every failure is one of our typed
errors: :class:`OnvifAuthError` (wrong login: don't retry), :class:`OnvifUnreachableError`
(no answer in time, connection refused or reset), :class:`OnvifFault`, :class:`OnvifParseError`.

:class:`SoapLog` is the per-camera raw-SOAP switch for diagnosing a vendor: when enabled it keeps
the last :data:`SOAP_LOG_ENTRIES` exchanges in memory (each side cut at
:data:`SOAP_LOG_BODY_BYTES`) and logs them at DEBUG. The WS-Security header is never recorded: the
logged request carries ``[redacted]`` in its place, so neither the user name, the password digest
nor the nonce leaves the process.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import uuid
import xml.etree.ElementTree as ET  # noqa: S405 (serialising our own parsed elements only)
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

import aiohttp

from onvif_bridge.errors import (
    OnvifAuthError,
    OnvifFault,
    OnvifHttpStatusError,
    OnvifParseError,
    OnvifTooLargeError,
    OnvifUnreachableError,
)
from onvif_bridge.http import read_body
from onvif_bridge.parsers import parse_operation
from onvif_bridge.xml import MAX_XML_BYTES, parse_xml, soap_body
from vms.clock import Clock

logger = logging.getLogger(__name__)

SOAP_LOG_ENTRIES = 50
SOAP_LOG_BODY_BYTES = 16 * 1024
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_DIGEST_TYPE = ("http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-"
                "profile-1.0#PasswordDigest")
_BASE64 = ("http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0"
           "#Base64Binary")
_NS = {
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "tev": "http://www.onvif.org/ver10/events/wsdl",
    "wsnt": "http://docs.oasis-open.org/wsn/b-2",
}
_ACTIONS = {
    "GetSystemDateAndTime": "http://www.onvif.org/ver10/device/wsdl/GetSystemDateAndTime",
    "GetServices": "http://www.onvif.org/ver10/device/wsdl/GetServices",
    "GetCapabilities": "http://www.onvif.org/ver10/device/wsdl/GetCapabilities",
    "CreatePullPointSubscription": "http://www.onvif.org/ver10/events/wsdl/EventPortType/"
                                   "CreatePullPointSubscriptionRequest",
    "PullMessages": "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription/"
                    "PullMessagesRequest",
    "SetSynchronizationPoint": "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription/"
                               "SetSynchronizationPointRequest",
    "Renew": "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/RenewRequest",
}


@dataclass(frozen=True)
class Exchange:
    """One request and its answer as the SOAP log keeps them (credentials never included)."""

    at_us: int
    operation: str
    url: str
    request: str
    status: int | None
    response: str
    duration_ms: int
    error: str

    def as_dict(self) -> dict[str, Any]:
        return {"at_us": self.at_us, "operation": self.operation, "url": self.url,
                "request": self.request, "status": self.status, "response": self.response,
                "duration_ms": self.duration_ms, "error": self.error}


class SoapLog:
    """The raw-SOAP switch of one camera: off by default; when on, the last exchanges."""

    def __init__(self, label: str, entries: int = SOAP_LOG_ENTRIES) -> None:
        self.label = label
        self.enabled = False
        self.exchanges: deque[Exchange] = deque(maxlen=entries)

    def set(self, enabled: bool) -> None:
        self.enabled = enabled
        if not enabled:
            self.exchanges.clear()

    def add(self, exchange: Exchange) -> None:
        if not self.enabled:
            return
        self.exchanges.append(exchange)
        logger.debug("camera %s: SOAP %s %s -> %s (%d ms)%s\n>>> %s\n<<< %s", self.label,
                     exchange.operation, exchange.url, exchange.status, exchange.duration_ms,
                     f" error: {exchange.error}" if exchange.error else "", exchange.request,
                     exchange.response)

    def entries(self) -> list[dict[str, Any]]:
        return [e.as_dict() for e in self.exchanges]


def _cut(data: bytes | str) -> str:
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    text = raw[:SOAP_LOG_BODY_BYTES].decode("utf-8", "replace")
    if len(raw) > SOAP_LOG_BODY_BYTES:
        text += f"… [{len(raw) - SOAP_LOG_BODY_BYTES} more bytes]"
    return text


def xs_datetime(instant_us: int) -> str:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=instant_us)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Endpoint:
    """Where a request goes: an address and the ``ReferenceParameters`` to echo as headers."""

    address: str
    reference_parameters: tuple[str, ...] = ()


def reference_parameters(element: ET.Element | None) -> tuple[str, ...]:
    """The children of a ``wsa:ReferenceParameters`` as XML text (with their namespaces)."""
    if element is None:
        return ()
    return tuple(ET.tostring(child, encoding="unicode") for child in element
                 if isinstance(child.tag, str))


class EventSoap:
    """One camera's SOAP for the pump: login, clock shift, limits, the SOAP log."""

    def __init__(self, session: aiohttp.ClientSession, label: str, username: str, password: str,
                 clock: Clock, log: SoapLog, *, timeout_s: float,
                 max_answer_bytes: int = MAX_XML_BYTES) -> None:
        self._session = session
        self.label = label
        self._username = username
        self._password = password
        self._clock = clock
        self.log = log
        self.timeout_s = timeout_s
        self._max_bytes = max_answer_bytes
        self.camera_offset_us = 0
        """Camera clock − ours: the WS-Security ``Created`` is stamped in the camera's time."""
        self.requests = 0

    def _security(self) -> str:
        nonce = os.urandom(16)
        created = xs_datetime(self._clock.now_us() + self.camera_offset_us)
        digest = base64.b64encode(hashlib.sha1(
            nonce + created.encode() + self._password.encode(),
            usedforsecurity=False).digest()).decode()
        return (
            f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}" s:mustUnderstand="true">'
            f"<wsse:UsernameToken><wsse:Username>{escape(self._username)}</wsse:Username>"
            f'<wsse:Password Type="{_DIGEST_TYPE}">{digest}</wsse:Password>'
            f'<wsse:Nonce EncodingType="{_BASE64}">{base64.b64encode(nonce).decode()}'
            f"</wsse:Nonce><wsu:Created>{created}</wsu:Created></wsse:UsernameToken>"
            "</wsse:Security>"
        )

    def _envelope(self, operation: str, body: str, endpoint: Endpoint, security: str) -> str:
        headers = (
            f'<wsa:Action s:mustUnderstand="1">{_ACTIONS[operation]}</wsa:Action>'
            f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>"
            f'<wsa:To s:mustUnderstand="1">{escape(endpoint.address)}</wsa:To>'
            + "".join(endpoint.reference_parameters) + security
        )
        ns = " ".join(f'xmlns:{p}="{u}"' for p, u in _NS.items())
        return (f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP12}" '
                f'xmlns:wsa="{WSA}" {ns}><s:Header>{headers}</s:Header>'
                f"<s:Body>{body}</s:Body></s:Envelope>")

    async def call(self, operation: str, body: str, endpoint: Endpoint, *, auth: bool = True,
                   timeout_s: float | None = None) -> Any:
        """Send one request; ``(parsed, root)``: the answer as
        :func:`onvif_bridge.parsers.parse_operation` reads it, and the envelope's root element."""
        security = self._security() if auth else ""
        envelope = self._envelope(operation, body, endpoint, security)
        limit_s = timeout_s if timeout_s is not None else self.timeout_s
        started_us = self._clock.monotonic_us()
        status: int | None = None
        content = b""
        error = ""
        self.requests += 1
        try:
            try:
                async with asyncio.timeout(limit_s):
                    async with self._session.post(
                        endpoint.address, data=envelope.encode("utf-8"), allow_redirects=False,
                        headers={"Content-Type": "application/soap+xml; charset=utf-8; "
                                                 f'action="{_ACTIONS[operation]}"'},
                    ) as response:
                        status = response.status
                        content = await read_body(response, self._max_bytes,
                                                  f"camera {self.label}: {operation}")
            except TimeoutError:
                error = f"no answer to {operation} within {limit_s:g} s"
                raise OnvifUnreachableError(f"camera {self.label}: {error}") from None
            except OnvifTooLargeError as exc:
                error = exc.reason
                raise
            except (aiohttp.ClientError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                raise OnvifUnreachableError(
                    f"camera {self.label}: {operation} failed ({error})") from None
            return self._read(operation, status, content)
        except (OnvifFault, OnvifParseError, OnvifAuthError) as exc:
            error = error or str(exc)
            raise
        finally:
            if self.log.enabled:
                logged = self._envelope(operation, body, endpoint,
                                        "<wsse:Security>[redacted]</wsse:Security>" if auth else "")
                self.log.add(Exchange(
                    at_us=self._clock.now_us(), operation=operation, url=endpoint.address,
                    request=_cut(logged), status=status, response=_cut(content),
                    duration_ms=(self._clock.monotonic_us() - started_us) // 1000, error=error))

    def _read(self, operation: str, status: int, content: bytes) -> Any:
        if status in (401, 403):
            raise OnvifAuthError(
                f"camera {self.label}: wrong user name or password (HTTP {status} to {operation})")
        try:
            root = parse_xml(content)
            operation_element = next((e for e in soap_body(root) if isinstance(e.tag, str)), None)
            if operation_element is None:
                raise OnvifParseError("empty SOAP Body")
            parsed = parse_operation(operation_element)
        except OnvifFault as fault:
            if fault.is_auth:
                raise OnvifAuthError(
                    f"camera {self.label}: wrong user name or password (ONVIF "
                    f"{'/'.join(fault.subcodes) or fault.code}: {fault.reason})") from None
            raise
        except OnvifParseError as exc:
            if status >= 300:
                raise OnvifHttpStatusError(
                    f"camera {self.label}: HTTP {status} to {operation} (not SOAP)",
                    status) from None
            raise OnvifParseError(
                f"camera {self.label}: unreadable answer to {operation}: {exc.reason}") from None
        if status >= 300:
            raise OnvifHttpStatusError(f"camera {self.label}: HTTP {status} to {operation}",
                                       status)
        return parsed, root


__all__ = ["Endpoint", "EventSoap", "Exchange", "SoapLog", "reference_parameters",
           "xs_datetime"]
