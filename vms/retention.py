"""Retention policies: how long each camera's recordings are kept, resolved camera → site → config.

A policy has three members: ``continuous_days`` (footage outside any event's keep window),
``event_days`` (footage inside one: segments of ``kind = "event"``; never kept shorter than
continuous footage) and ``max_bytes`` (a cap on the camera's recorded bytes; cameras only). Each is
stored nullable on the camera and the site (None: inherit); the ``[retention]`` section of
``vms.toml`` gives the defaults. A day count of 0 means no age limit (footage is then deleted only
for space or the byte cap). This module resolves policies, reads them for display (with where each
value came from) and changes them (audited); the purge that acts on them is recorder/retention.py.
Plain synchronous functions for the database gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vms import audit, catalog
from vms.auth import Principal
from vms.clock import Clock
from vms.config import RetentionSettings
from vms.db import models as m

US_PER_DAY = 86_400 * 1_000_000
MAX_DAYS = 36_500
"""A hundred years: the longest a policy may keep footage (longer is surely a typing error)."""
FIELDS = ("continuous_days", "event_days", "max_bytes")
SITE_FIELDS = ("continuous_days", "event_days")


class PolicyError(ValueError):
    """A bad policy value; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Policy:
    """A camera's effective retention policy."""

    continuous_days: int
    event_days: int
    max_bytes: int | None = None

    def continuous_cutoff_us(self, now_us: int) -> int | None:
        """Continuous footage ending at or before this instant has expired (None: never)."""
        return now_us - self.continuous_days * US_PER_DAY if self.continuous_days else None

    def event_cutoff_us(self, now_us: int) -> int | None:
        """Event footage ending at or before this instant has expired (None: never). Event
        footage is kept at least as long as continuous footage."""
        if not self.event_days or not self.continuous_days:
            return None
        return now_us - max(self.event_days, self.continuous_days) * US_PER_DAY


def resolve(defaults: RetentionSettings, site: tuple[int | None, int | None],
            camera: tuple[int | None, int | None, int | None]) -> tuple[Policy, dict[str, str]]:
    """The policy from the stored overrides (``site``: continuous, event days; ``camera``: the
    same and max_bytes) and the defaults; and where each member came from (camera, site,
    default)."""
    sources: dict[str, str] = {}

    def pick(name: str, cam: int | None, site_value: int | None, default: int | None) -> Any:
        if cam is not None:
            sources[name] = "camera"
            return cam
        if site_value is not None:
            sources[name] = "site"
            return site_value
        sources[name] = "default"
        return default

    policy = Policy(
        continuous_days=pick("continuous_days", camera[0], site[0], defaults.continuous_days),
        event_days=pick("event_days", camera[1], site[1], defaults.event_days),
        max_bytes=pick("max_bytes", camera[2], None, None),
    )
    return policy, sources


def all_policies(defaults: RetentionSettings) -> dict[int, Policy]:
    """Every camera's effective policy (archived cameras included: their footage ages too)."""
    rows = (m.Camera.select(m.Camera.id, m.Camera.retention_continuous_days,
                            m.Camera.retention_event_days, m.Camera.retention_max_bytes,
                            m.Site.retention_continuous_days, m.Site.retention_event_days)
            .join(m.Site).tuples())
    return {cid: resolve(defaults, (s_cont, s_ev), (c_cont, c_ev, c_max))[0]
            for cid, c_cont, c_ev, c_max, s_cont, s_ev in rows}


def _check(field: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(field, f"expected an integer or null, got {value!r}")
    if field == "max_bytes":
        if value < 1:
            raise PolicyError(field, f"must be at least 1 byte (null: no cap), got {value}")
        return value
    if not 0 <= value <= MAX_DAYS:
        raise PolicyError(field, f"must be 0..{MAX_DAYS} days (0: no age limit; null: "
                                 f"inherit), got {value}")
    return value


def parse_change(raw: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, int | None]:
    """A change (members of ``allowed``, each an integer or null = inherit); PolicyError names
    the first bad member."""
    change: dict[str, int | None] = {}
    for key, value in raw.items():
        if key not in allowed:
            raise PolicyError(key, f"unknown member (known: {', '.join(allowed)})")
        change[key] = _check(key, value)
    return change


def camera_policy_view(principal: Principal | None, camera_id: int,
                       defaults: RetentionSettings) -> dict[str, Any]:
    """A camera's stored overrides, its site's, the defaults and the effective policy with the
    source of each member. ``principal`` None: no site scope (the CLI)."""
    camera = _camera(principal, camera_id)
    site = camera.site
    policy, sources = resolve(defaults,
                              (site.retention_continuous_days, site.retention_event_days),
                              (camera.retention_continuous_days, camera.retention_event_days,
                               camera.retention_max_bytes))
    return {
        "camera_id": camera.id, "name": camera.name, "site_id": site.id,
        "camera": {"continuous_days": camera.retention_continuous_days,
                   "event_days": camera.retention_event_days,
                   "max_bytes": camera.retention_max_bytes},
        "site": {"continuous_days": site.retention_continuous_days,
                 "event_days": site.retention_event_days},
        "defaults": {"continuous_days": defaults.continuous_days,
                     "event_days": defaults.event_days},
        "effective": {"continuous_days": policy.continuous_days, "event_days": policy.event_days,
                      "max_bytes": policy.max_bytes},
        "sources": sources,
    }


def site_policy_view(principal: Principal | None, site_id: int,
                     defaults: RetentionSettings) -> dict[str, Any]:
    site = _site(principal, site_id)
    policy, sources = resolve(defaults,
                              (site.retention_continuous_days, site.retention_event_days),
                              (None, None, None))
    return {
        "site_id": site.id, "name": site.name,
        "site": {"continuous_days": site.retention_continuous_days,
                 "event_days": site.retention_event_days},
        "defaults": {"continuous_days": defaults.continuous_days,
                     "event_days": defaults.event_days},
        "effective": {"continuous_days": policy.continuous_days,
                      "event_days": policy.event_days},
        "sources": {k: v for k, v in sources.items() if k in SITE_FIELDS},
    }


def set_camera_policy(principal: Principal | None, camera_id: int, change: dict[str, int | None],
                      clock: Clock, defaults: RetentionSettings, *, username: str = "",
                      address: str = "") -> dict[str, Any]:
    """Apply a parsed change to a camera's overrides; audited (``retention_change``) when it
    changes anything. Returns the new view with ``changed``."""
    camera = _camera(principal, camera_id)
    diff = _apply(camera, change)
    if diff:
        audit.record(clock, "retention_change", principal=principal, username=username,
                     target=camera.name, site_id=camera.site_id, address=address,
                     detail={"camera_id": camera.id, "changes": diff})
    view = camera_policy_view(principal, camera_id, defaults)
    view["changed"] = sorted(diff)
    return view


def set_site_policy(principal: Principal | None, site_id: int, change: dict[str, int | None],
                    clock: Clock, defaults: RetentionSettings, *, username: str = "",
                    address: str = "") -> dict[str, Any]:
    site = _site(principal, site_id)
    diff = _apply(site, change)
    if diff:
        audit.record(clock, "retention_change", principal=principal, username=username,
                     target=site.name, site_id=site.id, address=address,
                     detail={"site_id": site.id, "changes": diff})
    view = site_policy_view(principal, site_id, defaults)
    view["changed"] = sorted(diff)
    return view


def _apply(row: m.Camera | m.Site, change: dict[str, int | None]) -> dict[str, list[int | None]]:
    """Set the ``retention_*`` columns of ``row`` that ``change`` changes and save only those;
    ``{key: [old, new]}`` of what changed."""
    diff: dict[str, list[int | None]] = {}
    for key, value in change.items():
        old = getattr(row, f"retention_{key}")
        if old != value:
            diff[key] = [old, value]
            setattr(row, f"retention_{key}", value)
    if diff:
        model = type(row)
        row.save(only=[getattr(model, f"retention_{k}") for k in diff])
    return diff


def _camera(principal: Principal | None, camera_id: int) -> m.Camera:
    if principal is not None:
        return catalog.get_camera(principal, camera_id)
    camera = (m.Camera.select(m.Camera, m.Site).join(m.Site)
              .where(m.Camera.id == camera_id).first())
    if camera is None:
        raise catalog.NotFound(f"no camera {camera_id}")
    return camera


def _site(principal: Principal | None, site_id: int) -> m.Site:
    site = m.Site.get_or_none(m.Site.id == site_id)
    if site is None or (principal is not None and principal.site_ids is not None
                        and site_id not in principal.site_ids):
        raise catalog.NotFound(f"no site {site_id}")
    return site
