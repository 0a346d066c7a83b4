"""Benchmark: unicast WS-Discovery of N loopback responders; prints one JSON document.

``python bench/discovery.py --devices 200 --timeout 2`` starts N UDP responders on 127.0.0.1
(answering each Probe with a ProbeMatch), probes them all and reports how long until each was
found. Loopback only; nothing is multicast.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time

from onvif_bridge.discovery import discover

MATCH = (
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"><s:Header>'
    "<a:RelatesTo>{relates}</a:RelatesTo></s:Header><s:Body><d:ProbeMatches><d:ProbeMatch>"
    "<a:EndpointReference><a:Address>urn:uuid:bench-{index}</a:Address></a:EndpointReference>"
    "<d:Types>dn:NetworkVideoTransmitter</d:Types>"
    "<d:Scopes>onvif://www.onvif.org/name/bench-{index}</d:Scopes>"
    "<d:XAddrs>http://127.0.0.1:80/onvif/device_service</d:XAddrs>"
    "<d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>"
)


class Responder(asyncio.DatagramProtocol):
    def __init__(self, index: int) -> None:
        self.index = index
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        found = re.search(rb"MessageID>([^<]+)<", data)
        relates = found.group(1).decode() if found else ""
        assert self.transport is not None
        self.transport.sendto(MATCH.format(relates=relates, index=self.index).encode(), addr)


async def run(devices: int, timeout_s: float) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    transports = []
    targets = []
    for index in range(devices):
        transport, _ = await loop.create_datagram_endpoint(
            lambda i=index: Responder(i), local_addr=("127.0.0.1", 0))
        transports.append(transport)
        targets.append(f"127.0.0.1:{transport.get_extra_info('sockname')[1]}")
    started = time.monotonic()
    arrivals = []
    try:
        async for _device in discover(targets=targets, interfaces=[], timeout_s=timeout_s):
            arrivals.append(time.monotonic() - started)
    finally:
        for transport in transports:
            transport.close()
    return {
        "devices": devices,
        "found": len(arrivals),
        "first_s": round(arrivals[0], 4) if arrivals else None,
        "all_found_s": round(arrivals[-1], 4) if arrivals else None,
        "window_s": timeout_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.devices, args.timeout))))


if __name__ == "__main__":
    main()
