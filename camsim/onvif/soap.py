"""SOAP 1.2 (and 1.1) envelopes, faults and operation dispatch for the virtual camera.

Requests are parsed with defusedxml (a camera must not trust its clients); answers are written as
text with every prefix declared on the envelope, the way gSOAP-based cameras (Hikvision, DVC) do.
A :class:`Service` maps operation names to handlers; :func:`handle_soap` turns an HTTP body into
an answer or a fault.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET  # noqa: S405 - only for types and tree walking; parsing is defused
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

logger = logging.getLogger(__name__)

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"

NS: dict[str, str] = {
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "xsd": "http://www.w3.org/2001/XMLSchema",
    "wsa5": "http://www.w3.org/2005/08/addressing",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
    "tt": "http://www.onvif.org/ver10/schema",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tptz": "http://www.onvif.org/ver20/ptz/wsdl",
    "tev": "http://www.onvif.org/ver10/events/wsdl",
    "tmd": "http://www.onvif.org/ver10/deviceIO/wsdl",
    "wsnt": "http://docs.oasis-open.org/wsn/b-2",
    "wstop": "http://docs.oasis-open.org/wsn/t-1",
    "wsrf-bf": "http://docs.oasis-open.org/wsrf/bf-2",
    "tns1": "http://www.onvif.org/ver10/topics",
    "ter": "http://www.onvif.org/ver10/error",
}

_NSDECL = " ".join(f"xmlns:{prefix}={quoteattr(uri)}" for prefix, uri in NS.items())


class SoapFault(Exception):
    """An ONVIF fault: ``code`` is Sender/Receiver, ``subcodes`` e.g. ``("ter:NotAuthorized",)``."""

    def __init__(
        self,
        reason: str,
        *,
        code: str = "Sender",
        subcodes: tuple[str, ...] = (),
        http_status: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.subcodes = subcodes
        self.http_status = http_status if http_status is not None else (
            400 if code == "Sender" else 500
        )


def invalid_arg(reason: str, subcode: str = "ter:InvalidArgVal") -> SoapFault:
    """The usual ``env:Sender / ter:InvalidArgVal / <detail>`` fault."""
    return SoapFault(reason, subcodes=("ter:InvalidArgVal", subcode) if subcode != "ter:InvalidArgVal"
                     else ("ter:InvalidArgVal",))


def action_not_supported(op: str) -> SoapFault:
    return SoapFault(
        f"Optional Action Not Implemented: {op}",
        code="Receiver",
        subcodes=("ter:ActionNotSupported",),
    )


def x(text: object) -> str:
    """XML-escape a value for element text."""
    if isinstance(text, bool):
        return "true" if text else "false"
    return escape(str(text))


def qa(value: object) -> str:
    """A quoted, escaped attribute value."""
    if isinstance(value, bool):
        return '"true"' if value else '"false"'
    return quoteattr(str(value))


def envelope(body: str, *, version: str = SOAP12, header: str = "") -> str:
    """A whole envelope around ``body`` (already XML text using the prefixes in :data:`NS`)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<env:Envelope xmlns:env="{version}" {_NSDECL}>'
        f"<env:Header>{header}</env:Header>"
        f"<env:Body>{body}</env:Body></env:Envelope>"
    )


def fault_body(fault: SoapFault, version: str = SOAP12) -> str:
    if version == SOAP11:
        code = "env:Client" if fault.code == "Sender" else "env:Server"
        detail = "".join(f"<ter:Subcode>{x(s)}</ter:Subcode>" for s in fault.subcodes)
        return (
            f"<env:Fault><faultcode>{code}</faultcode><faultstring>{x(fault.reason)}</faultstring>"
            + (f"<detail>{detail}</detail>" if detail else "")
            + "</env:Fault>"
        )
    sub = ""
    for subcode in reversed(fault.subcodes):
        sub = f"<env:Subcode><env:Value>{x(subcode)}</env:Value>{sub}</env:Subcode>"
    return (
        f"<env:Fault><env:Code><env:Value>env:{fault.code}</env:Value>{sub}</env:Code>"
        f'<env:Reason><env:Text xml:lang="en">{x(fault.reason)}</env:Text></env:Reason>'
        "</env:Fault>"
    )


@dataclass
class Request:
    """One parsed SOAP request."""

    version: str
    operation: str
    operation_ns: str
    body: ET.Element
    header: ET.Element | None
    path: str
    username: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def find(self, path: str) -> ET.Element | None:
        """Find under the operation element; ``path`` uses prefixes from :data:`NS` or ``*``."""
        return self.body.find(path, NS)

    def text(self, path: str, default: str | None = None) -> str | None:
        node = self.body.find(path, NS)
        if node is None or node.text is None:
            return default
        return node.text.strip()

    def child_text_any(self, local: str, default: str | None = None) -> str | None:
        """Text of the first direct child named ``local`` in any namespace (clients vary)."""
        for child in self.body:
            if local_name(child.tag) == local:
                return (child.text or "").strip()
        return default


Handler = Callable[[Request], Awaitable[str]]


def local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if "}" in tag else tag


def namespace_of(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def find_local(node: ET.Element, *names: str) -> ET.Element | None:
    """Walk down by local names, ignoring namespaces (for tolerant request parsing)."""
    current: ET.Element | None = node
    for name in names:
        if current is None:
            return None
        current = next((c for c in current if local_name(c.tag) == name), None)
    return current


def text_local(node: ET.Element, *names: str, default: str | None = None) -> str | None:
    found = find_local(node, *names)
    if found is None or found.text is None:
        return default
    return found.text.strip()


class Service:
    """A named set of operations at one path; ``public`` ones need no credentials."""

    def __init__(self, name: str, namespace: str) -> None:
        self.name = name
        self.namespace = namespace
        self.handlers: dict[str, Handler] = {}
        self.public: set[str] = set()

    def op(self, name: str, handler: Handler, *, public: bool = False) -> None:
        self.handlers[name] = handler
        if public:
            self.public.add(name)


class BadRequest(Exception):
    """The body was not a SOAP envelope at all."""


def parse_request(data: bytes, path: str) -> Request:
    try:
        root = DET.fromstring(data)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise BadRequest(f"not XML: {exc}") from exc
    version = namespace_of(root.tag)
    if local_name(root.tag) != "Envelope" or version not in (SOAP12, SOAP11):
        raise BadRequest("not a SOAP envelope")
    header = root.find(f"{{{version}}}Header")
    body = root.find(f"{{{version}}}Body")
    if body is None or len(body) == 0:
        raise BadRequest("empty SOAP body")
    op_el = body[0]
    return Request(
        version=version,
        operation=local_name(op_el.tag),
        operation_ns=namespace_of(op_el.tag),
        body=op_el,
        header=header,
        path=path,
    )


def iso_z(instant_us: int, *, millis: bool = False) -> str:
    """xs:dateTime in UTC with ``Z``, as cameras write it."""
    from datetime import UTC, datetime, timedelta

    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=instant_us)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_duration_s(text: str) -> float:
    """An xs:duration such as ``PT10S``, ``PT1M30S`` or ``P1DT2H`` in seconds (ValueError if not)."""
    import re

    match = re.fullmatch(
        r"(-)?P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?",
        text.strip(),
    )
    if not match or text.strip() in ("P", "PT"):
        raise ValueError(f"not an xs:duration: {text!r}")
    sign, years, months, days, hours, minutes, seconds = match.groups()
    total = (
        int(years or 0) * 365 * 86400 + int(months or 0) * 30 * 86400 + int(days or 0) * 86400
        + int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)
    )
    return -total if sign else total


def parse_datetime_us(text: str) -> int:
    """An xs:dateTime with a zone (``Z`` or offset) in UTC microseconds (ValueError if not)."""
    from datetime import datetime

    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"dateTime without a zone: {text!r}")
    return int(parsed.timestamp() * 1_000_000)


def parse_time_spec_us(text: str, now_us: int) -> int:
    """An ``AbsoluteOrRelativeTimeType``: a duration from ``now_us`` or an absolute dateTime."""
    value = text.strip()
    if value.startswith(("P", "-P")):
        return now_us + int(parse_duration_s(value) * 1_000_000)
    return parse_datetime_us(value)
