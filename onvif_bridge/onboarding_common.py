"""What adoption and the operations on an adopted camera share: their error and the stored camera.

:class:`OnboardingError` is the one refusal every onboarding operation raises (adopt, configure,
clock, remove, snapshot, drift check), its ``kind`` telling the web layer which HTTP status to
answer. :class:`StoredCamera` is a camera row read in one go with its streams and clear password,
as :meth:`onvif_bridge.adopt.Onboarding.load_camera` returns it. They live apart from
:mod:`onvif_bridge.adopt` so that :mod:`onvif_bridge.configure` can use them without importing
the service that delegates to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from onvif_bridge.models import DeviceReport
from vms.db import models as m


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


__all__ = ["OnboardingError", "StoredCamera"]
