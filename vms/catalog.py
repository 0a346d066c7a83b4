"""Site-scoped reads of sites and cameras: every list or fetch takes the asking Principal.

Nothing outside this module (and the recorder's own index code) selects cameras without a scope;
a camera of a site the user may not see is reported as not found, never as forbidden, so ids of
other sites leak nothing.
"""

from __future__ import annotations

from typing import Any

import peewee as pw

from vms.auth import Principal
from vms.db import models as m


class NotFound(LookupError):
    """The thing does not exist, or the user may not know that it does."""


class Archived(NotFound):
    """The camera was removed: its recordings can be played and exported, but it has no live
    picture and takes no commands."""


def scope_cameras(query: pw.ModelSelect, principal: Principal) -> pw.ModelSelect:
    if principal.site_ids is None:
        return query
    return query.where(m.Camera.site.in_(list(principal.site_ids)))


def scope_sites(query: pw.ModelSelect, principal: Principal) -> pw.ModelSelect:
    if principal.site_ids is None:
        return query
    return query.where(m.Site.id.in_(list(principal.site_ids)))


def site_dict(site: m.Site) -> dict[str, Any]:
    return {"id": site.id, "name": site.name, "timezone": site.timezone,
            "created_us": site.created_us}


def camera_dict(camera: m.Camera, site: m.Site | None = None) -> dict[str, Any]:
    """The public view of a camera: never its password."""
    site = site or camera.site
    return {
        "id": camera.id, "name": camera.name,
        "site": {"id": site.id, "name": site.name, "timezone": site.timezone},
        "status": camera.status, "status_reason": camera.status_reason,
        "status_since_us": camera.status_since_us, "mac": camera.mac,
        "manufacturer": camera.manufacturer, "model": camera.model, "firmware": camera.firmware,
        "serial": camera.serial, "onvif_url": camera.onvif_url, "username": camera.username,
        "enabled": camera.enabled, "recording_mode": camera.recording_mode,
        "clock_offset_us": camera.clock_offset_us,
        "created_us": camera.created_us, "updated_us": camera.updated_us,
        "archived_us": camera.archived_us,
        "event_types": {"kept": _types(camera.event_types_kept),
                        "recorded": _types(camera.event_types_recorded)},
    }


def _types(text: str) -> list[str]:
    """A comma-separated list of event types as a list (Camera.event_types_*)."""
    return [t for t in (part.strip() for part in text.split(",")) if t]


def list_sites(principal: Principal) -> list[dict[str, Any]]:
    query = scope_sites(m.Site.select().order_by(m.Site.name), principal)
    return [site_dict(s) for s in query]


def get_site(principal: Principal, site_id: int) -> m.Site:
    site = scope_sites(m.Site.select().where(m.Site.id == site_id), principal).first()
    if site is None:
        raise NotFound(f"no site {site_id}")
    return site


def list_cameras(principal: Principal, site_id: int | None = None, *,
                 archived: bool | None = False) -> list[dict[str, Any]]:
    """Cameras the principal may see. ``archived``: False (default) only cameras in service,
    True only archived (removed) ones, None both — playback and export offer both."""
    query = (m.Camera.select(m.Camera, m.Site).join(m.Site)
             .order_by(m.Site.name, m.Camera.name, m.Camera.id))
    query = scope_cameras(query, principal)
    if site_id is not None:
        query = query.where(m.Camera.site == site_id)
    if archived is not None:
        query = query.where(m.Camera.archived_us.is_null(not archived))
    return [camera_dict(c, c.site) for c in query]


def get_camera(principal: Principal, camera_id: int, *, in_service: bool = False) -> m.Camera:
    """The camera if the principal may see it. Archived cameras are found (their recordings are
    still played and exported) unless ``in_service``: then they raise :class:`Archived`."""
    query = m.Camera.select(m.Camera, m.Site).join(m.Site).where(m.Camera.id == camera_id)
    camera = scope_cameras(query, principal).first()
    if camera is None:
        raise NotFound(f"no camera {camera_id}")
    if in_service and camera.archived_us is not None:
        raise Archived(f"camera {camera_id} ({camera.name!r}) was removed: its recordings can "
                       "still be played and exported, but it has no live view")
    return camera


def camera_detail(principal: Principal, camera_id: int) -> dict[str, Any]:
    camera = get_camera(principal, camera_id)
    data = camera_dict(camera, camera.site)
    data["volume"] = camera.volume
    data["streams"] = [
        {"kind": s.kind, "profile_token": s.profile_token, "rtsp_url": s.rtsp_url,
         "codec": s.codec, "width": s.width, "height": s.height, "fps": s.fps,
         "bitrate_kbps": s.bitrate_kbps, "record": s.record,
         # encoder drift (onvif_bridge/drift.py): what was applied, what differs now
         "applied": None if s.applied_us is None else {
             "width": s.applied_width, "height": s.applied_height, "fps": s.applied_fps,
             "bitrate_kbps": s.applied_bitrate_kbps, "gov_length": s.applied_gov_length,
             "applied_us": s.applied_us},
         "drift": s.drift, "checked_us": s.checked_us}
        for s in m.CameraStream.select().where(m.CameraStream.camera == camera)
        .order_by(m.CameraStream.kind)
    ]
    return data
