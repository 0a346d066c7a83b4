"""Scanning: find devices on the network and interrogate each one, before anything is adopted.

:func:`scan` pairs WS-Discovery (:func:`onvif_bridge.discovery.discover`) with bounded concurrent
interrogation (:func:`onvif_bridge.client.interrogate`): it yields a :class:`ScanUpdate` when a
device answers a Probe and another when its report is in, so an installer's page fills in its rows
as answers arrive. :func:`report_dict` is the public, JSON-ready view of a report; like every URL
we show or store (:func:`strip_credentials`), it never carries a credential. Nothing here touches
the database: adopting what a scan found is :mod:`onvif_bridge.adopt`'s job.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from onvif_bridge.client import interrogate
from onvif_bridge.discovery import discover, preferred_xaddr
from onvif_bridge.models import DeviceReport, DiscoveredDevice, ProfileReport, Status
from vms.clock import Clock
from vms.logs import register_secret

DEFAULT_SCAN_CONCURRENCY = 16


@dataclass(frozen=True, slots=True)
class ScanUpdate:
    """One step of a scan: a device was ``found``, or its interrogation ``report`` is in."""

    kind: str  # found | report | bye
    device: DiscoveredDevice
    report: DeviceReport | None = None


async def scan(
    targets: Iterable[str],
    username: str,
    password: str,
    *,
    interfaces: Sequence[str] | None = None,
    timeout_s: float = 3.0,
    concurrency: int = DEFAULT_SCAN_CONCURRENCY,
    interrogate_timeout_s: float = 5.0,
    clock: Clock | None = None,
) -> AsyncIterator[ScanUpdate]:
    """Discover devices and interrogate each one as soon as it answers (at most ``concurrency``
    at a time); yields updates as they happen and ends when the discovery window is over and
    every interrogation finished. Raises DiscoveryTargetError for bad targets before sending.
    """
    queue: asyncio.Queue[ScanUpdate | None] = asyncio.Queue()
    limit = asyncio.Semaphore(max(1, concurrency))
    tasks: set[asyncio.Task[None]] = set()
    if password:
        register_secret(password, transient=True)

    async def examine(device: DiscoveredDevice) -> None:
        xaddr = preferred_xaddr(device)
        if device.message == "Unparsed":
            report = unparsed_report(device)
        elif xaddr is None:
            report = DeviceReport(address=device.sender, name=device.name,
                                  status=Status.BAD_RESPONSE,
                                  message=f"device {device.sender}: no HTTP device address in its "
                                          "ProbeMatch")
        else:
            async with limit:
                report = await interrogate(xaddr, username, password, clock=clock,
                                           timeout_s=interrogate_timeout_s, name=device.name)
        await queue.put(ScanUpdate("report", device, report))

    async def produce() -> None:
        try:
            async for device in discover(targets, interfaces=interfaces, timeout_s=timeout_s,
                                         clock=clock):
                if device.message == "Bye":
                    await queue.put(ScanUpdate("bye", device))
                    continue
                await queue.put(ScanUpdate("found", device))
                task = asyncio.create_task(examine(device), name=f"interrogate {device.sender}")
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            while tasks:
                await asyncio.gather(*list(tasks), return_exceptions=True)
        finally:
            await queue.put(None)

    producer = asyncio.create_task(produce(), name="scan")
    try:
        while True:
            update = await queue.get()
            if update is None:
                break
            yield update
        await producer  # re-raise a discovery error (bad target)
    finally:
        for task in (producer, *tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(producer, *tasks, return_exceptions=True)


def unparsed_report(device: DiscoveredDevice) -> DeviceReport:
    """The report of a sender whose discovery replies could not be read: shown, not dropped."""
    return DeviceReport(address=device.sender, status=Status.BAD_RESPONSE,
                        message=f"device {device.sender}: its discovery reply could not be read "
                                f"({device.error})")


def report_dict(report: DeviceReport) -> dict[str, Any]:
    """The public view of an interrogation (JSON-ready; never a credential). ``address`` is a
    plain ``host:port``; the device's name is ``name``."""
    info = report.device_info
    return {
        "address": report.address,
        "name": report.name,
        "xaddr": report.xaddr,
        "status": str(report.status),
        "message": report.message,
        "mac": report.mac,
        "manufacturer": info.manufacturer if info else "",
        "model": info.model if info else "",
        "firmware": info.firmware_version if info else "",
        "serial": info.serial_number if info else "",
        "hostname": report.hostname,
        "clock_offset_us": report.clock_offset_us,
        "warnings": list(report.warnings),
        "profiles": [_profile_dict(p) for p in report.profiles],
    }


def _profile_dict(entry: ProfileReport) -> dict[str, Any]:
    p = entry.profile
    return {
        "token": p.token, "name": p.name, "codec": p.encoding or "", "width": p.width,
        "height": p.height, "fps": p.fps, "bitrate_kbps": p.bitrate_kbps,
        "gov_length": p.gov_length,
        "stream_uri": strip_credentials(entry.stream_uri) if entry.stream_uri else None,
        "snapshot": bool(entry.snapshot_uri), "error": entry.error,
    }


def strip_credentials(url: str) -> str:
    """The URL without ``user:password@`` (what we store; credentials live encrypted apart)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[1], parts.path, parts.query,
                       parts.fragment))


__all__ = [
    "DEFAULT_SCAN_CONCURRENCY",
    "ScanUpdate",
    "report_dict",
    "scan",
    "strip_credentials",
    "unparsed_report",
]
