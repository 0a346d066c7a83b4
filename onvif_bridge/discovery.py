"""WS-Discovery client on asyncio: multicast and directed unicast Probes, Hello/Bye listening.

:func:`discover` sends a Probe for ``dn:NetworkVideoTransmitter`` to the WS-Discovery multicast
group (239.255.255.250:3702) on the chosen interfaces, and straight to each unicast target
(``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or a CIDR range of at most 65,536 addresses). Every
Probe is sent ``repeats`` times with growing gaps (SOAP-over-UDP retransmission; the same
MessageID each time), replies are collected for ``timeout_s`` seconds and yielded as they
arrive, de-duplicated by EndpointReference address. Replies go to the probe's source port, so
each socket is read (the ``wsdiscovery`` package's bug). A hostile or garbled datagram is
logged with its sender and reason; a sender none of whose replies could be read is yielded once,
when the window is over, as an ``Unparsed`` device carrying the reason — never dropped silently.

Multicast policy: with ``interfaces=None`` (default) multicast goes out on every non-loopback
IPv4 interface *only when no unicast target is given* — the "scan my LAN" case of a person at a
terminal. With targets and no ``interfaces``, nothing is multicast. Tests and the demo give
loopback targets and never multicast.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import logging
import socket
import struct
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass

from onvif_bridge.errors import DiscoveryTargetError, OnvifError
from onvif_bridge.models import DiscoveredDevice
from onvif_bridge.wsd import DEFAULT_TYPES, build_probe, new_message_id, parse_discovery
from vms.clock import Clock, SystemClock

logger = logging.getLogger(__name__)

MULTICAST_GROUP = "239.255.255.250"
DISCOVERY_PORT = 3702
MAX_RANGE_ADDRESSES = 65_536
"""Largest CIDR range probed (an IPv4 /16)."""
MAX_DATAGRAM_BYTES = 65_535
_RETRANSMIT_FIRST_S = 0.1
_RETRANSMIT_MAX_S = 0.5
_SEND_BATCH = 32
_SEND_PAUSE_S = 0.002
"""Pacing for many targets (~16,000 probes/s): the replies to a burst must fit in the socket's
receive buffer, since asyncio reads one datagram per socket per loop turn. A /16 sweep takes
about 4 s per round; give it a longer ``timeout_s``."""
_RCVBUF_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int = DISCOVERY_PORT


def parse_targets(specs: Iterable[str]) -> list[Target]:
    """Targets from ``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or CIDR (``10.0.3.0/24``) strings.

    Raises DiscoveryTargetError for bad syntax or a range larger than a /16 (65,536 addresses).
    Host names are kept as given and resolved when sending.
    """
    targets: list[Target] = []
    for raw in specs:
        spec = raw.strip()
        if not spec:
            raise DiscoveryTargetError("empty discovery target")
        if "/" in spec:
            try:
                network = ipaddress.ip_network(spec, strict=False)
            except ValueError as exc:
                raise DiscoveryTargetError(f"discovery target {spec!r}: {exc}") from None
            if network.num_addresses > MAX_RANGE_ADDRESSES:
                raise DiscoveryTargetError(
                    f"discovery range {spec} has {network.num_addresses} addresses; the limit is "
                    f"{MAX_RANGE_ADDRESSES} (an IPv4 /16): split it into smaller ranges"
                )
            hosts = list(network.hosts()) if network.num_addresses > 2 else list(network)
            targets.extend(Target(str(address)) for address in hosts)
            continue
        host, port = spec, DISCOVERY_PORT
        if spec.startswith("["):
            end = spec.find("]")
            if end < 0:
                raise DiscoveryTargetError(f"discovery target {spec!r}: missing ']'")
            host, rest = spec[1:end], spec[end + 1 :]
            if rest:
                if not rest.startswith(":"):
                    raise DiscoveryTargetError(f"discovery target {spec!r}: bad port")
                port = _port(spec, rest[1:])
        elif spec.count(":") == 1:
            host, port_text = spec.split(":")
            port = _port(spec, port_text)
        if not host:
            raise DiscoveryTargetError(f"discovery target {spec!r}: no host")
        targets.append(Target(host, port))
    return targets


def _port(spec: str, text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise DiscoveryTargetError(
            f"discovery target {spec!r}: port {text!r} is not a number"
        ) from None
    if not 0 < port < 65536:
        raise DiscoveryTargetError(f"discovery target {spec!r}: port {port} out of range")
    return port


def local_ipv4_addresses() -> list[str]:
    """IPv4 addresses of the non-loopback interfaces that are up (Linux ioctl)."""
    found: list[str] = []
    siocgifaddr = 0x8915
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _index, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(sock.fileno(), siocgifaddr,
                                     struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue
            address = socket.inet_ntoa(packed[20:24])
            if not ipaddress.IPv4Address(address).is_loopback and address not in found:
                found.append(address)
    return found


def local_ipv4_networks() -> list[str]:
    """The server's own IPv4 subnets (non-loopback interfaces that are up) as CIDR strings, the
    ranges a person scanning "this subnet" means; one wider than a /24 is given as the /24 around
    the server's address (a /16 is 65,536 probes: type it on purpose)."""
    found: list[str] = []
    siocgifaddr, siocgifnetmask = 0x8915, 0x891B
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _index, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                address = socket.inet_ntoa(fcntl.ioctl(sock.fileno(), siocgifaddr, request)[20:24])
                mask = socket.inet_ntoa(fcntl.ioctl(sock.fileno(), siocgifnetmask, request)[20:24])
            except OSError:
                continue
            if ipaddress.IPv4Address(address).is_loopback:
                continue
            network = ipaddress.IPv4Network(f"{address}/{mask}", strict=False)
            if network.prefixlen < 24:
                network = ipaddress.IPv4Network(f"{address}/24", strict=False)
            if str(network) not in found:
                found.append(str(network))
    return found


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, queue: asyncio.Queue[tuple[bytes, tuple[str, int]]], label: str) -> None:
        self.queue = queue
        self.label = label

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:  # type: ignore[override]
        self.queue.put_nowait((data, (str(addr[0]), int(addr[1]))))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a unicast target that runs no discovery: normal.
        logger.debug("discovery socket %s: %s", self.label, exc)


def _receiver_factory(
    queue: asyncio.Queue[tuple[bytes, tuple[str, int]]], label: str
) -> Callable[[], _Receiver]:
    return lambda: _Receiver(queue, label)


def _grow_receive_buffer(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # The kernel caps this at net.core.rmem_max; a larger buffer only helps.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF_BYTES)


def _multicast_socket(interface: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF_BYTES)
    sock.bind((interface, 0))
    return sock


def _announcement_socket(port: int, interfaces: Sequence[str]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with contextlib.suppress(AttributeError, OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    # Without multicast interfaces only loopback announcements (tests) are heard.
    sock.bind(("0.0.0.0" if interfaces else "127.0.0.1", port))  # noqa: S104
    for interface in interfaces:
        membership = socket.inet_aton(MULTICAST_GROUP) + socket.inet_aton(interface)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    return sock


async def _resolve(loop: asyncio.AbstractEventLoop, target: Target) -> tuple[int, tuple[str, int]]:
    try:
        address = ipaddress.ip_address(target.host)
    except ValueError:
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_DGRAM)
        family, _, _, _, sockaddr = infos[0]
        return int(family), (str(sockaddr[0]), int(sockaddr[1]))
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    return int(family), (str(address), target.port)


async def discover(
    targets: Iterable[str] = (),
    *,
    interfaces: Sequence[str] | None = None,
    timeout_s: float = 3.0,
    repeats: int = 3,
    types: str = DEFAULT_TYPES,
    listen_announcements: bool = False,
    announcement_port: int = DISCOVERY_PORT,
    clock: Clock | None = None,
) -> AsyncIterator[DiscoveredDevice]:
    """Yield devices as their ProbeMatches (and, if asked, Hello/Bye) arrive.

    ``targets``: unicast ``HOST``/``HOST:PORT``/CIDR strings (DiscoveryTargetError on bad ones,
    raised before anything is sent). ``interfaces``: IPv4 addresses of the interfaces to multicast
    on; see the module docstring for the default. ``timeout_s``: how long to listen after the
    first Probe. A device is yielded once per endpoint (a Bye is always yielded); a sender whose
    replies could not be read, once at the end (``message == "Unparsed"``, ``error``).
    """
    clock = clock or SystemClock()
    parsed_targets = parse_targets(targets)
    if interfaces is None:
        interfaces = [] if parsed_targets else local_ipv4_addresses()
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
    transports: list[asyncio.DatagramTransport] = []
    message_id = new_message_id()
    probe = build_probe(message_id, types)
    sender_task: asyncio.Task[None] | None = None
    try:
        multicast: list[asyncio.DatagramTransport] = []
        for interface in interfaces:
            transport, _ = await loop.create_datagram_endpoint(
                _receiver_factory(queue, interface), sock=_multicast_socket(interface))
            multicast.append(transport)
        transports.extend(multicast)

        resolved: list[tuple[int, tuple[str, int]]] = []
        for target in parsed_targets:
            try:
                resolved.append(await _resolve(loop, target))
            except (OSError, IndexError) as exc:
                logger.warning("discovery target %s: cannot resolve (%s), skipped",
                               target.host, exc)
        unicast: dict[int, asyncio.DatagramTransport] = {}
        for family in sorted({family for family, _ in resolved}):
            loopback_only = all(ipaddress.ip_address(addr[0]).is_loopback
                                for fam, addr in resolved if fam == family)
            if family == socket.AF_INET6:
                local_addr = ("::1" if loopback_only else "::", 0)
            else:
                local_addr = ("127.0.0.1" if loopback_only else "0.0.0.0", 0)  # noqa: S104
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Receiver(queue, "unicast"), local_addr=local_addr, family=family)
            _grow_receive_buffer(transport)
            unicast[family] = transport
        transports.extend(unicast.values())

        if listen_announcements:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Receiver(queue, "announcements"),
                sock=_announcement_socket(announcement_port, interfaces))
            transports.append(transport)

        async def send_probes() -> None:
            gap_s = _RETRANSMIT_FIRST_S
            for attempt in range(max(1, repeats)):
                if attempt:
                    await clock.sleep(gap_s)
                    gap_s = min(gap_s * 2, _RETRANSMIT_MAX_S)
                for transport in multicast:
                    transport.sendto(probe, (MULTICAST_GROUP, DISCOVERY_PORT))
                for count, (family, address) in enumerate(resolved, 1):
                    unicast[family].sendto(probe, address)
                    if count % _SEND_BATCH == 0:
                        await asyncio.sleep(_SEND_PAUSE_S)

        sender_task = asyncio.create_task(send_probes(), name="wsd-probe")
        deadline_us = clock.monotonic_us() + round(timeout_s * 1_000_000)
        seen: set[str] = set()
        understood: set[str] = set()  # senders with at least one reply we could read
        unreadable: dict[str, str] = {}  # sender -> why its first unreadable reply was refused
        while True:
            remaining_s = (deadline_us - clock.monotonic_us()) / 1_000_000
            if remaining_s <= 0:
                break
            try:
                data, addr = await asyncio.wait_for(queue.get(), remaining_s)
            except TimeoutError:
                break
            sender = f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"
            if data == probe:
                continue  # our own multicast Probe looped back
            try:
                devices = parse_discovery(data[:MAX_DATAGRAM_BYTES], sender)
            except OnvifError as exc:
                logger.warning("discovery reply from %s ignored: %s", sender, exc)
                unreadable.setdefault(sender, str(exc))
                continue
            understood.add(sender)
            for device in devices:
                if device.message == "Bye":
                    seen.discard(device.endpoint)
                    yield device
                    continue
                if device.endpoint in seen:
                    logger.debug("discovery: %s from %s again, skipped", device.endpoint, sender)
                    continue
                seen.add(device.endpoint)
                yield device
        # A device is never dropped silently: a sender none of whose replies could be read is
        # reported (once, with the first reason) when the window is over.
        for sender, reason in unreadable.items():
            if sender not in understood:
                yield DiscoveredDevice(endpoint=f"unparsed:{sender}", xaddrs=(), types=(),
                                       scopes=(), sender=sender, message="Unparsed",
                                       error=reason)
    finally:
        if sender_task is not None:
            sender_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender_task
        for transport in transports:
            transport.close()


async def discover_all(targets: Iterable[str] = (), **kwargs: object) -> list[DiscoveredDevice]:
    """Everything :func:`discover` yields, as a list (for scripts and the CLI)."""
    return [device async for device in discover(targets, **kwargs)]  # type: ignore[arg-type]


def preferred_xaddr(device: DiscoveredDevice) -> str | None:
    """The device-service address to use: plain-HTTP IPv4 first, then any HTTP(S) address."""
    def rank(xaddr: str) -> tuple[int, int]:
        host = xaddr.split("//", 1)[-1]
        return (0 if xaddr.startswith("http://") else 1, 1 if host.startswith("[") else 0)
    candidates = [x for x in device.xaddrs if x.startswith(("http://", "https://"))]
    return min(candidates, key=rank) if candidates else None
