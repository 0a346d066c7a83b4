"""Configuring an adopted camera: over ONVIF its recording profile, host name, NTP, clock, reboot;
here its name and site (:func:`rename_camera`, :func:`move_camera`).

This module owns what is done to a camera once it has been adopted (:mod:`onvif_bridge.adopt`).
:func:`configure_camera` applies a :class:`ConfigureRequest` and answers with what the camera
actually accepted and what it clamped; a recording profile keeps the keyframe interval at or below
:data:`MAX_GOP_S` so segments and seeks cut cleanly, and what was accepted is stored on the stream
(:func:`applied_columns`) so :mod:`onvif_bridge.drift` can flag a later change made behind our
back. :func:`set_camera_clock` sets the camera's clock to ours. Both reach the camera and the
database through :class:`CameraAccess`, which :class:`onvif_bridge.adopt.Onboarding` satisfies and
whose ``configure`` and ``set_clock`` methods delegate here; every change is audited.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from onvif_bridge.client import OnvifClient
from onvif_bridge.errors import OnvifAuthError, OnvifError
from onvif_bridge.onboarding_common import OnboardingError, StoredCamera
from vms import audit
from vms.auth import Principal
from vms.clock import Clock
from vms.db import models as m
from vms.db.gateway import Gateway

logger = logging.getLogger(__name__)

MAX_GOP_S = 2.0
"""Longest keyframe interval a recording profile may ask for."""
_HOSTNAME_RE = re.compile(r"[^A-Za-z0-9-]+")


@dataclass(frozen=True, slots=True)
class RecordingProfile:
    """What an installer asks a camera to encode (None: leave as it is)."""

    width: int | None = None
    height: int | None = None
    fps: float | None = None
    bitrate_kbps: int | None = None
    gop_s: float = 1.0
    """Keyframe interval in seconds; at most :data:`MAX_GOP_S`."""

    def __post_init__(self) -> None:
        if not 0 < self.gop_s <= MAX_GOP_S:
            raise OnboardingError(f"gop_s must be in (0, {MAX_GOP_S:g}] seconds so recordings cut "
                                  f"cleanly, not {self.gop_s:g}")
        if (self.width is None) != (self.height is None):
            raise OnboardingError("give both width and height, or neither")
        for name in ("width", "height", "bitrate_kbps"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise OnboardingError(f"{name} must be positive")
        if self.fps is not None and not 0 < self.fps <= 120:
            raise OnboardingError("fps must be in (0, 120]")


@dataclass
class ConfigureRequest:
    stream: str = "main"
    profile: RecordingProfile | None = None
    name: str | None = None
    set_clock: bool = False
    ntp_servers: list[str] = field(default_factory=list)
    reboot: bool = False


def applied_columns(accepted: dict[str, Any], now_us: int) -> dict[str, Any]:
    """CameraStream columns recording what the camera accepted (drift cleared, checked now)."""
    fps = accepted.get("fps")
    return {"applied_width": accepted.get("width"), "applied_height": accepted.get("height"),
            "applied_fps": round(fps) if fps is not None else None,
            "applied_bitrate_kbps": accepted.get("bitrate_kbps"),
            "applied_gov_length": accepted.get("gov_length"), "applied_us": now_us, "drift": "",
            "checked_us": now_us}


class CameraAccess(Protocol):
    """What these operations need of the onboarding service (:class:`onvif_bridge.adopt.Onboarding`
    satisfies it): the database, the clock, a camera read with its credentials, an ONVIF client."""

    @property
    def gateway(self) -> Gateway: ...

    @property
    def clock(self) -> Clock: ...

    async def load_camera(self, principal: Principal | None, camera_id: int) -> StoredCamera: ...

    def onvif_client(self, cam: StoredCamera) -> OnvifClient: ...


async def configure_camera(access: CameraAccess, principal: Principal | None, camera_id: int,
                           request: ConfigureRequest, *, actor: str = "",
                           address: str = "") -> dict[str, Any]:
    """Apply what ``request`` asks over ONVIF; returns what the camera accepted."""
    if request.stream not in ("main", "sub"):
        raise OnboardingError("stream must be 'main' or 'sub'")
    cam = await access.load_camera(principal, camera_id)
    result: dict[str, Any] = {"camera_id": cam.id, "requested": {}, "accepted": {},
                              "clamped": []}
    stream = cam.streams.get(request.stream)
    try:
        async with access.onvif_client(cam) as client:
            await client.measure_clock()
            if request.set_clock:
                await client.set_system_clock()
                result["clock_offset_us"] = client.clock_offset_us
            if request.ntp_servers:
                await client.set_ntp(request.ntp_servers)
                result["ntp_servers"] = request.ntp_servers
            if request.name:
                hostname = _HOSTNAME_RE.sub("-", request.name).strip("-")[:63] or "camera"
                result["hostname"] = (await client.set_hostname(hostname)).name
            if request.profile is not None:
                await client.capabilities()  # learn the media service's address
                if stream is None or not stream.profile_token:
                    raise OnboardingError(f"camera {cam.name!r} has no ONVIF profile for its "
                                          f"{request.stream} stream")
                result.update(await _apply_profile(client, stream, request.profile))
            if request.reboot:
                await client.reboot()
                result["rebooting"] = True
    except OnvifAuthError as exc:
        raise OnboardingError(f"{exc}; update the camera's credentials", "camera") from None
    except OnvifError as exc:
        raise OnboardingError(str(exc), "camera") from None

    accepted = result["accepted"]

    def save() -> None:
        fields: dict[str, Any] = {"updated_us": access.clock.now_us()}
        if request.name:
            fields["name"] = request.name[:200]
        if "clock_offset_us" in result:
            fields["clock_offset_us"] = result["clock_offset_us"] or 0
        m.Camera.update(**fields).where(m.Camera.id == cam.id).execute()
        if stream is not None and accepted:
            m.CameraStream.update(
                width=accepted.get("width") or stream.width,
                height=accepted.get("height") or stream.height,
                fps=round(accepted.get("fps") or stream.fps),
                bitrate_kbps=accepted.get("bitrate_kbps") or stream.bitrate_kbps,
                **applied_columns(accepted, fields["updated_us"]),
            ).where(m.CameraStream.id == stream.id).execute()
        audit.record(access.clock, "camera_change", principal=principal, username=actor,
                     target=request.name or cam.name, site_id=cam.site_id, address=address,
                     detail={"camera_id": cam.id, "requested": result["requested"],
                             "accepted": accepted, "clamped": result["clamped"],
                             "set_clock": request.set_clock, "reboot": request.reboot,
                             "name": request.name})

    await access.gateway.write(save)
    return result


async def _apply_profile(client: OnvifClient, stream: m.CameraStream,
                         profile: RecordingProfile) -> dict[str, Any]:
    fps = profile.fps or float(stream.fps or 0) or 25.0
    gov_length = max(1, math.floor(fps * profile.gop_s))
    requested: dict[str, Any] = {"width": profile.width, "height": profile.height,
                                 "fps": profile.fps, "bitrate_kbps": profile.bitrate_kbps,
                                 "gov_length": gov_length, "gop_s": profile.gop_s}
    config = await client.set_video_encoder(
        stream.profile_token, width=profile.width, height=profile.height, fps=profile.fps,
        bitrate_kbps=profile.bitrate_kbps, gov_length=gov_length)
    accepted_fps = config.fps or fps
    accepted: dict[str, Any] = {
        "width": config.width, "height": config.height, "fps": config.fps,
        "bitrate_kbps": config.bitrate_kbps, "gov_length": config.gov_length,
        "gop_s": round(config.gov_length / accepted_fps, 3) if config.gov_length else None,
        "codec": config.encoding,
    }
    clamped = [key for key in ("width", "height", "fps", "bitrate_kbps", "gov_length")
               if requested[key] is not None and accepted[key] is not None
               and float(requested[key]) != float(accepted[key])]
    if accepted["gop_s"] is not None and accepted["gop_s"] > MAX_GOP_S:
        clamped.append("gop_s")
    if clamped:
        logger.warning("camera %s: encoder clamped %s", client.label, ", ".join(clamped))
    return {"requested": requested, "accepted": accepted, "clamped": clamped}


async def set_camera_clock(access: CameraAccess, principal: Principal | None, camera_id: int, *,
                           actor: str = "", address: str = "") -> dict[str, Any]:
    """Set the camera's clock to ours; returns the offset before and after (µs)."""
    cam = await access.load_camera(principal, camera_id)
    try:
        async with access.onvif_client(cam) as client:
            await client.measure_clock()
            before = client.clock_offset_us
            await client.set_system_clock()
            after = client.clock_offset_us
    except OnvifError as exc:
        raise OnboardingError(str(exc), "camera") from None

    def save() -> None:
        m.Camera.update(clock_offset_us=after or 0, updated_us=access.clock.now_us()).where(
            m.Camera.id == cam.id).execute()
        audit.record(access.clock, "camera_change", principal=principal, username=actor,
                     target=cam.name, site_id=cam.site_id, address=address,
                     detail={"camera_id": cam.id, "clock_set": True,
                             "offset_before_us": before, "offset_after_us": after})

    await access.gateway.write(save)
    return {"camera_id": cam.id, "offset_before_us": before, "clock_offset_us": after}


async def rename_camera(access: CameraAccess, principal: Principal | None, camera_id: int,
                        name: str, *, actor: str = "", address: str = "") -> dict[str, Any]:
    """Rename the camera here (the camera itself is not asked: this works for cameras added by
    RTSP URL and for cameras that are down); audited."""
    name = name.strip()
    if not name or len(name) > 200:
        raise OnboardingError("a camera name is 1 to 200 characters")
    cam = await access.load_camera(principal, camera_id)

    def save() -> None:
        m.Camera.update(name=name, updated_us=access.clock.now_us()).where(
            m.Camera.id == cam.id).execute()
        audit.record(access.clock, "camera_change", principal=principal, username=actor,
                     target=name, site_id=cam.site_id, address=address,
                     detail={"camera_id": cam.id, "name": name, "previous_name": cam.name})

    await access.gateway.write(save)
    return {"camera_id": cam.id, "name": name, "previous_name": cam.name}


async def move_camera(access: CameraAccess, principal: Principal | None, camera_id: int,
                      site_id: int, *, actor: str = "", address: str = "") -> dict[str, Any]:
    """Move the camera to another site the principal sees; its recordings go with it (they are
    the camera's), so they are seen by the new site's users and no longer by the old one's.
    Audited in both sites."""
    cam = await access.load_camera(principal, camera_id)

    def save() -> dict[str, Any]:
        site = m.Site.get_or_none(m.Site.id == site_id)
        if site is None or (principal is not None and not principal.sees_site(site.id)):
            raise OnboardingError(f"no site {site_id}", "not_found")
        result = {"camera_id": cam.id, "name": cam.name, "site_id": site.id,
                  "site_name": site.name, "previous_site_id": cam.site_id}
        if site.id == cam.site_id:
            return result
        m.Camera.update(site=site.id, updated_us=access.clock.now_us()).where(
            m.Camera.id == cam.id).execute()
        for audited_site in (cam.site_id, site.id):
            audit.record(access.clock, "camera_move", principal=principal, username=actor,
                         target=cam.name, site_id=audited_site, address=address,
                         detail={"camera_id": cam.id, "from_site_id": cam.site_id,
                                 "to_site_id": site.id})
        return result

    return await access.gateway.write(save)


__all__ = [
    "MAX_GOP_S",
    "CameraAccess",
    "ConfigureRequest",
    "RecordingProfile",
    "applied_columns",
    "configure_camera",
    "move_camera",
    "rename_camera",
    "set_camera_clock",
]
