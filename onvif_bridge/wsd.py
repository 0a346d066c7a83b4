"""WS-Discovery messages (2005/04 draft, the one ONVIF uses): build a Probe, read the answers.

Only message text lives here; sockets and timing are in :mod:`onvif_bridge.discovery`. A
ProbeMatch (wrapped in ``<ProbeMatches>`` or bare, as some cameras send it), Hello or Bye is read
into :class:`DiscoveredDevice` values; another client's Probe is no answer (none). Anything else —
hostile XML, a SOAP fault, a stray packet — raises one of our typed errors.
"""

from __future__ import annotations

import uuid
from urllib.parse import unquote
from xml.sax.saxutils import escape

from onvif_bridge.errors import OnvifParseError
from onvif_bridge.models import DiscoveredDevice
from onvif_bridge.xml import Element, child, children, local, parse_xml, soap_body, text

NS_WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
NS_WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
ACTION_PROBE = f"{NS_WSD}/Probe"
DISCOVERY_TO = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"
DEFAULT_TYPES = "dn:NetworkVideoTransmitter"

_SCOPE_PREFIX = "onvif://www.onvif.org/"


def new_message_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def build_probe(message_id: str, types: str = DEFAULT_TYPES) -> bytes:
    """A Probe for ``types`` (``dn:NetworkVideoTransmitter`` by default; "" probes for all)."""
    types_xml = f"<d:Types>{escape(types)}</d:Types>" if types else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"'
        f' xmlns:a="{NS_WSA}" xmlns:d="{NS_WSD}"'
        ' xmlns:dn="http://www.onvif.org/ver10/network/wsdl"'
        ' xmlns:tds="http://www.onvif.org/ver10/device/wsdl">'
        "<s:Header>"
        f"<a:MessageID>{escape(message_id)}</a:MessageID>"
        f"<a:To>{DISCOVERY_TO}</a:To>"
        f"<a:Action>{ACTION_PROBE}</a:Action>"
        "</s:Header>"
        f"<s:Body><d:Probe>{types_xml}</d:Probe></s:Body>"
        "</s:Envelope>"
    ).encode()


def _split(value: str) -> tuple[str, ...]:
    return tuple(value.split())


def _scope_value(scopes: tuple[str, ...], key: str) -> str | None:
    prefix = f"{_SCOPE_PREFIX}{key}/"
    for scope in scopes:
        if scope.lower().startswith(prefix):
            value = unquote(scope[len(prefix) :]).strip()
            if value:
                return value
    return None


def _device_from(element: Element, sender: str, message: str) -> DiscoveredDevice | None:
    endpoint = text(element, "EndpointReference", "Address")
    if not endpoint:
        return None
    scopes = _split(text(element, "Scopes"))
    version_text = text(element, "MetadataVersion")
    try:
        metadata_version: int | None = int(version_text) if version_text else None
    except ValueError:
        metadata_version = None
    return DiscoveredDevice(
        endpoint=endpoint,
        xaddrs=_split(text(element, "XAddrs")),
        types=_split(text(element, "Types")),
        scopes=scopes,
        sender=sender,
        metadata_version=metadata_version,
        name=_scope_value(scopes, "name"),
        hardware=_scope_value(scopes, "hardware"),
        location=_scope_value(scopes, "location"),
        message=message,
    )


def relates_to(root: Element) -> str:
    """The ``wsa:RelatesTo`` of a message ("" when absent)."""
    return text(child(root, "Header"), "RelatesTo")


def parse_discovery_element(root: Element, sender: str = "") -> tuple[DiscoveredDevice, ...]:
    """Devices in a parsed ProbeMatches/Hello/Bye envelope (see :func:`parse_discovery`)."""
    body = soap_body(root)
    operation = next(iter(body), None)
    if operation is None:
        raise OnvifParseError("discovery message with an empty Body")
    name = local(operation.tag)
    if name in ("ProbeMatches", "ProbeMatch"):
        found = []
        # Some cameras send a bare <ProbeMatch> as the Body's child, without the <ProbeMatches>
        # wrapper the specification asks for: read it the same way.
        matches = list(children(operation, "ProbeMatch")) if name == "ProbeMatches" else [operation]
        for match in matches:
            device = _device_from(match, sender, "ProbeMatch")
            if device is not None:
                found.append(device)
        if matches and not found:
            raise OnvifParseError("ProbeMatch without an EndpointReference address")
        return tuple(found)
    if name in ("Hello", "Bye"):
        device = _device_from(operation, sender, name)
        if device is None:
            raise OnvifParseError(f"{name} without an EndpointReference address")
        return (device,)
    if name in ("Probe", "Resolve"):
        return ()  # another client's request on a shared socket: nothing to report
    if name == "Fault":
        raise OnvifParseError("discovery answered with a SOAP fault")
    raise OnvifParseError(f"not a discovery message (<{name}>)")


def parse_discovery(data: bytes, sender: str = "") -> tuple[DiscoveredDevice, ...]:
    """Devices in a ProbeMatches, Hello or Bye datagram (none for an empty ProbeMatches)."""
    return parse_discovery_element(parse_xml(data), sender)
