"""The real client behind a reverse proxy: ``X-Forwarded-For`` and ``X-Forwarded-Proto``, believed
only when the direct peer is one of ``server.trusted_proxies``.

Anyone can send those headers, so they are read only from a listed proxy, and only as far back as
the chain stays inside the list: the client is the rightmost address in ``X-Forwarded-For`` that is
not itself a trusted proxy (addresses to its left were written by the client and prove nothing).
The scheme is the last value of ``X-Forwarded-Proto`` (the one the nearest proxy set). The request is
then cloned with that ``remote`` and ``scheme``, so everything after this middleware — login
throttling, audit records, session addresses, the ``Secure`` cookie flag — sees the real client.
With no trusted proxies (the default) the middleware is not installed and the headers are ignored.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(text: str) -> Address | None:
    """An IP address from a header entry or a peer (``[::1]:443`` and ``1.2.3.4:80`` allowed; an
    IPv4-mapped IPv6 address becomes the IPv4 one), or None when it is not an address."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1:text.index("]")]
    elif text.count(":") == 1 and "." in text:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, networks: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def forwarded_client(forwarded_for: Sequence[str], networks: Sequence[Network]) -> str | None:
    """The client's address from the ``X-Forwarded-For`` header values ``forwarded_for`` (in
    order) of a request that came from a trusted proxy, or None when the header names nobody (then
    the proxy itself is the client)."""
    hops = [part for value in forwarded_for for part in value.split(",") if part.strip()]
    client: Address | None = None
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:  # not an address: trust stops here, the last good hop is the client
            break
        client = address
        if not _trusted(address, networks):
            break
    return None if client is None else str(client)


def forwarded_scheme(forwarded_proto: Sequence[str]) -> str | None:
    """``http`` or ``https`` from the last ``X-Forwarded-Proto`` value, else None."""
    values = [part.strip().lower() for value in forwarded_proto for part in value.split(",")]
    values = [v for v in values if v]
    if values and values[-1] in ("http", "https"):
        return values[-1]
    return None


def forwarded_middleware(trusted_proxies: Sequence[str]) -> Middleware:
    """The middleware for ``server.trusted_proxies`` (already validated CIDRs, see vms.config)."""
    networks = [ipaddress.ip_network(cidr, strict=False) for cidr in trusted_proxies]

    @web.middleware
    async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer_address = parse_address(request.remote or "")
        if peer_address is None or not _trusted(peer_address, networks):
            return await handler(request)
        client = forwarded_client(request.headers.getall("X-Forwarded-For", []), networks)
        scheme = forwarded_scheme(request.headers.getall("X-Forwarded-Proto", []))
        changes: dict[str, str] = {}
        if client is not None and client != request.remote:
            changes["remote"] = client
        if scheme is not None and scheme != request.scheme:
            changes["scheme"] = scheme
        if not changes:
            return await handler(request)
        return await handler(request.clone(**changes))  # type: ignore[arg-type]

    return forwarded
