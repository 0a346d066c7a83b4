"""WS-Discovery (2005/04) target service for one virtual camera.

Answers Probe datagrams with a unicast ProbeMatch to the sender's address and port, carrying the
camera's XAddrs, scopes and ``urn:uuid`` endpoint reference, RelatesTo the probe's MessageID.
By default it binds loopback on its own port and never touches multicast. Only with
``multicast=True`` (inside a test-made network namespace) does it join 239.255.255.250 on the given
interface address and send Hello on start and Bye on stop. Garbage datagrams are dropped with a
debug log line.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import uuid
import xml.etree.ElementTree as ET  # noqa: S405 - tree walking only; parsing is defused
from collections.abc import Callable

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from camsim.onvif.soap import x

logger = logging.getLogger(__name__)

MULTICAST_GROUP = "239.255.255.250"
WSD_PORT = 3702
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
DISCOVERY_TO = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"
DEFAULT_TYPES = ("dn:NetworkVideoTransmitter", "tds:Device")
MAX_DATAGRAM = 65_000

_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP12}" xmlns:wsa="{WSA}" xmlns:wsdd="{WSD}" '
    'xmlns:dn="http://www.onvif.org/ver10/network/wsdl" '
    'xmlns:tds="http://www.onvif.org/ver10/device/wsdl">'
)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(node: ET.Element | None, name: str) -> ET.Element | None:
    if node is None:
        return None
    return next((c for c in node if _local(c.tag) == name), None)


def scope_matches(ours: str, wanted: str) -> bool:
    """RFC 3986 prefix match (the WS-Discovery default): whole path segments only."""
    ours_n, wanted_n = ours.rstrip("/").lower(), wanted.rstrip("/").lower()
    return ours_n == wanted_n or ours_n.startswith(wanted_n + "/")


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, responder: DiscoveryResponder) -> None:
        self.responder = responder

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:  # type: ignore[override]
        self.responder.handle_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        logger.debug("%s: discovery socket error: %s", self.responder.name, exc)


class DiscoveryResponder:
    """One camera's WS-Discovery endpoint."""

    def __init__(
        self,
        *,
        name: str,
        endpoint_uuid: str,
        xaddrs: Callable[[], list[str]],
        scopes: Callable[[], list[str]],
        host: str = "127.0.0.1",
        port: int = 0,
        multicast: bool = False,
        interface: str | None = None,
        types: tuple[str, ...] = DEFAULT_TYPES,
        reply_style: Callable[[], str] = lambda: "normal",
    ) -> None:
        self.name = name
        self.reply_style = reply_style
        """``normal``; ``bare``: a ProbeMatch not wrapped in ProbeMatches (as some cameras send);
        ``garbled``: the ProbeMatch cut off half-way (a reply no client can read)."""
        self.endpoint = f"urn:uuid:{endpoint_uuid}"
        self._xaddrs = xaddrs
        self._scopes = scopes
        self.host = host
        self._requested_port = port
        self.multicast = multicast
        self.interface = interface or host
        self.types = types
        self.metadata_version = 1
        self.instance_id = 1
        self._message_number = 0
        self._transport: asyncio.DatagramTransport | None = None
        self.port = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        sock = self._make_socket()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        self._transport = transport
        self.port = int(sock.getsockname()[1])
        if self.multicast:
            self._send_multicast(self._hello_or_bye("Hello"))
        logger.debug("%s: WS-Discovery on %s (multicast %s)", self.name, self.address,
                     self.multicast)

    def _make_socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.multicast:
                # Only ever reached when a test asked for it, inside its own network namespace.
                sock.bind(("", self._requested_port or WSD_PORT))
                membership = struct.pack("4s4s", socket.inet_aton(MULTICAST_GROUP),
                                         socket.inet_aton(self.interface))
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                                socket.inet_aton(self.interface))
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            else:
                sock.bind((self.host, self._requested_port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    async def stop(self) -> None:
        if self._transport is None:
            return
        if self.multicast:
            self._send_multicast(self._hello_or_bye("Bye"))
        self._transport.close()
        self._transport = None

    async def move_to(self, host: str) -> None:
        """Re-bind on ``host``, keeping the port number when it is free."""
        keep_port = self.port
        await self.stop()
        self.host = host
        self._requested_port = keep_port
        try:
            await self.start()
        except OSError:
            self._requested_port = 0
            await self.start()
        self.metadata_version += 1

    def _send_multicast(self, payload: bytes) -> None:
        if self._transport is not None and self.multicast:
            self._transport.sendto(payload, (MULTICAST_GROUP, WSD_PORT))

    # -- messages --------------------------------------------------------------------------------

    def handle_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) > MAX_DATAGRAM:
            return
        try:
            root = DET.fromstring(data)
        except (ET.ParseError, DefusedXmlException, ValueError) as exc:
            logger.debug("%s: ignored non-XML datagram from %s: %s", self.name, addr, exc)
            return
        if _local(root.tag) != "Envelope":
            logger.debug("%s: ignored non-SOAP datagram from %s", self.name, addr)
            return
        header, body = _child(root, "Header"), _child(root, "Body")
        probe = _child(body, "Probe")
        if probe is None:
            logger.debug("%s: ignored non-Probe message from %s", self.name, addr)
            return
        message_id_el = _child(header, "MessageID")
        message_id = (message_id_el.text or "").strip() if message_id_el is not None else ""
        if not self._matches(probe):
            logger.debug("%s: probe from %s does not match", self.name, addr)
            return
        if self._transport is not None:
            self._transport.sendto(self._probe_match(message_id), addr)
            logger.debug("%s: ProbeMatch sent to %s", self.name, addr)

    def _matches(self, probe: ET.Element) -> bool:
        types_el = _child(probe, "Types")
        wanted_types = (types_el.text or "").split() if types_el is not None else []
        ours = {t.split(":")[-1] for t in self.types}
        if any(t.split(":")[-1] not in ours for t in wanted_types):
            return False
        scopes_el = _child(probe, "Scopes")
        wanted_scopes = (scopes_el.text or "").split() if scopes_el is not None else []
        if scopes_el is not None and scopes_el.get("MatchBy") not in (
            None, "", "http://schemas.xmlsoap.org/ws/2005/04/discovery/rfc3986",
        ):
            mine = set(self._scopes())
            return all(s in mine for s in wanted_scopes)
        return all(any(scope_matches(o, w) for o in self._scopes()) for w in wanted_scopes)

    def _app_sequence(self) -> str:
        self._message_number += 1
        return (f'<wsdd:AppSequence InstanceId="{self.instance_id}" '
                f'MessageNumber="{self._message_number}"/>')

    def _endpoint_body(self) -> str:
        return (
            f"<wsa:EndpointReference><wsa:Address>{x(self.endpoint)}</wsa:Address>"
            f"</wsa:EndpointReference><wsdd:Types>{x(' '.join(self.types))}</wsdd:Types>"
            f"<wsdd:Scopes>{x(' '.join(self._scopes()))}</wsdd:Scopes>"
            f"<wsdd:XAddrs>{x(' '.join(self._xaddrs()))}</wsdd:XAddrs>"
            f"<wsdd:MetadataVersion>{self.metadata_version}</wsdd:MetadataVersion>"
        )

    def _probe_match(self, relates_to: str) -> bytes:
        style = self.reply_style()
        opening, closing = ("<wsdd:ProbeMatch>", "</wsdd:ProbeMatch>") if style == "bare" else (
            "<wsdd:ProbeMatches><wsdd:ProbeMatch>", "</wsdd:ProbeMatch></wsdd:ProbeMatches>")
        reply = (
            _HEAD + "<SOAP-ENV:Header>"
            f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>"
            f"<wsa:RelatesTo>{x(relates_to)}</wsa:RelatesTo>"
            f"<wsa:To>{ANONYMOUS}</wsa:To>"
            f"<wsa:Action>{WSD}/ProbeMatches</wsa:Action>{self._app_sequence()}"
            f"</SOAP-ENV:Header><SOAP-ENV:Body>{opening}"
            + self._endpoint_body()
            + f"{closing}</SOAP-ENV:Body></SOAP-ENV:Envelope>"
        ).encode()
        return reply[: len(reply) // 2] if style == "garbled" else reply

    def _hello_or_bye(self, kind: str) -> bytes:
        body = (self._endpoint_body() if kind == "Hello" else
                f"<wsa:EndpointReference><wsa:Address>{x(self.endpoint)}</wsa:Address>"
                "</wsa:EndpointReference>")
        return (
            _HEAD + "<SOAP-ENV:Header>"
            f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>"
            f"<wsa:To>{DISCOVERY_TO}</wsa:To><wsa:Action>{WSD}/{kind}</wsa:Action>"
            f"{self._app_sequence()}</SOAP-ENV:Header><SOAP-ENV:Body>"
            f"<wsdd:{kind}>{body}</wsdd:{kind}></SOAP-ENV:Body></SOAP-ENV:Envelope>"
        ).encode()
