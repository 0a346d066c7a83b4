"""What adoption and the operations on an adopted camera share: their error and the stored camera.

:class:`OnboardingError` is the one refusal every onboarding operation raises (adopt, configure,
clock, remove, snapshot, drift check), its ``kind`` telling the web layer which HTTP status to
answer. :class:`StoredCamera` is a camera row read in one go with its streams and clear password,
as :meth:`onvif_bridge.adopt.Onboarding.load_camera` returns it. :func:`default_camera_name` names
a camera adopted without a name given. They live apart from
:mod:`onvif_bridge.adopt` so that :mod:`onvif_bridge.configure` can use them without importing
the service that delegates to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from onvif_bridge.models import DeviceReport
from vms.db import models as m

GENERIC_HOSTNAMES = frozenset({
    "localhost", "localhost.localdomain", "localdomain", "ipcam", "ipcamera", "ip-camera",
    "camera", "ipc", "nvr", "dvr", "onvif", "default", "device", "host", "hostname", "none",
    "(none)", "unknown", "admin", "test", "linux", "busybox", "embedded"})
"""Host names that cameras answer by the dozen (five real cameras all said ``localhost``): a name
made of one of them tells nothing apart."""


class OnboardingError(Exception):
    """A request that cannot be carried out; the message is for the person who asked.

    ``kind`` maps to an HTTP status in the web layer: ``invalid`` (400), ``not_found`` (404),
    ``conflict`` (409), ``camera`` (424: the camera refused or did not answer).
    """

    def __init__(self, message: str, kind: str = "invalid", *,
                 report: DeviceReport | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.report = report


@dataclass
class StoredCamera:
    """What a camera operation needs, read in one go (clear password only in memory)."""

    id: int
    name: str
    site_id: int
    onvif_url: str
    username: str
    password: str
    streams: dict[str, m.CameraStream]


def default_camera_name(report: DeviceReport) -> str:
    """A new camera's name when the installer gave none: its host name when that means something,
    else its model and the last three bytes of its MAC (``CS-2100 5e:00:01``), else its model and
    address, else its address."""
    hostname = (report.hostname or "").strip()
    if hostname and hostname.lower() not in GENERIC_HOSTNAMES:
        return hostname
    model = report.device_info.model.strip() if report.device_info else ""
    if model and report.mac:
        return f"{model} {report.mac[-8:]}"
    if model:
        return f"{model} {report.address}"
    return report.address


__all__ = ["GENERIC_HOSTNAMES", "OnboardingError", "StoredCamera", "default_camera_name"]
