"""Encoder drift: has a camera's video encoder moved away from the recording profile we applied?

When an installer applies a recording profile (:meth:`onvif_bridge.adopt.Onboarding.configure`),
what the camera accepted is stored on the stream (``applied_*`` columns). Later, someone changes
the encoder on the camera's own web page, or a firmware reset puts factory values back, and the
recordings silently change size, rate or keyframe interval. :class:`DriftChecker` re-reads the
profiles of such cameras over ONVIF (GetProfiles: one request gives every encoder) and stores, per
stream, a one-line description of what differs (``drift``; empty when nothing does) and when it
last looked (``checked_us``). Applying the profile again clears it.

It runs for one camera on request (``POST /api/v1/cameras/{id}/check-config``) and for every
camera with an applied profile from an APScheduler job wired by the composition root, every
:data:`DRIFT_CHECK_INTERVAL_S`. A camera that does not answer is logged and left as it was: drift
is only what a camera said, never a guess.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from onvif_bridge.adopt import Onboarding
from onvif_bridge.errors import OnvifAuthError, OnvifError
from onvif_bridge.models import MediaProfile
from onvif_bridge.onboarding_common import OnboardingError, StoredCamera
from vms.auth import Principal
from vms.db import models as m

logger = logging.getLogger(__name__)

DRIFT_CHECK_INTERVAL_S = 15 * 60
"""How often the scheduler re-reads every applied camera's encoders."""
DEFAULT_CHECK_CONCURRENCY = 4
FIELDS = ("width", "height", "fps", "bitrate_kbps", "gov_length")
"""Encoder settings compared with what was applied (``applied_<name>`` on CameraStream)."""


@dataclass(frozen=True, slots=True)
class Difference:
    field: str
    applied: int | None
    current: int | None

    def __str__(self) -> str:
        return f"{self.field} {_text(self.applied)} → {_text(self.current)}"


def _text(value: int | None) -> str:
    return "?" if value is None else str(value)


def applied_of(stream: m.CameraStream) -> dict[str, int | None] | None:
    """What was applied to ``stream`` (None: no recording profile applied yet)."""
    if stream.applied_us is None:
        return None
    return {name: getattr(stream, f"applied_{name}") for name in FIELDS}


def current_of(profile: MediaProfile) -> dict[str, int | None]:
    """The profile's encoder settings as the camera reports them now (fps rounded, as stored)."""
    encoder = profile.encoder
    fps = encoder.fps if encoder is not None else profile.fps
    return {
        "width": encoder.width if encoder is not None else profile.width,
        "height": encoder.height if encoder is not None else profile.height,
        "fps": round(fps) if fps is not None else None,
        "bitrate_kbps": encoder.bitrate_kbps if encoder is not None else profile.bitrate_kbps,
        "gov_length": encoder.gov_length if encoder is not None else profile.gov_length,
    }


def differences(applied: dict[str, int | None],
                current: dict[str, int | None]) -> list[Difference]:
    """Settings that differ; one the camera does not report now is not counted as drift."""
    return [Difference(name, applied[name], current[name]) for name in FIELDS
            if applied[name] is not None and current[name] is not None
            and applied[name] != current[name]]


def describe(diffs: list[Difference]) -> str:
    """``"bitrate_kbps 2048 → 4096; gov_length 40 → 100"`` ('' when nothing differs)."""
    return "; ".join(str(d) for d in diffs)


class DriftChecker:
    """Re-reads encoder configurations and flags drift; one per server."""

    def __init__(self, onboarding: Onboarding, *,
                 concurrency: int = DEFAULT_CHECK_CONCURRENCY) -> None:
        self.onboarding = onboarding
        self.concurrency = max(1, concurrency)
        self._task: asyncio.Task[dict[str, int]] | None = None

    async def check(self, principal: Principal | None, camera_id: int) -> dict[str, Any]:
        """Check one camera now. Raises OnboardingError (``camera`` when it does not answer)."""
        cam = await self.onboarding.load_camera(principal, camera_id)
        applied = {kind: s for kind, s in cam.streams.items()
                   if s.applied_us is not None and s.profile_token}
        result: dict[str, Any] = {"camera_id": cam.id, "name": cam.name, "streams": []}
        if not applied:
            result["message"] = "no recording profile has been applied to this camera"
            return result
        if not cam.onvif_url:
            raise OnboardingError(f"camera {cam.name!r} was added by RTSP URL and has no ONVIF "
                                  "address")
        try:
            profiles = await self._profiles(cam)
        except OnvifAuthError as exc:
            raise OnboardingError(f"{exc}; update the camera's credentials", "camera") from None
        except OnvifError as exc:
            raise OnboardingError(str(exc), "camera") from None
        now_us = self.onboarding.clock.now_us()
        updates: dict[int, str] = {}
        for kind, stream in sorted(applied.items()):
            before = applied_of(stream)
            assert before is not None
            profile = profiles.get(stream.profile_token)
            if profile is None:
                current: dict[str, int | None] | None = None
                drift = f"profile {stream.profile_token!r} is gone from the camera"
                diffs: list[Difference] = []
            else:
                current = current_of(profile)
                diffs = differences(before, current)
                drift = describe(diffs)
            updates[stream.id] = drift
            if drift and drift != stream.drift:
                logger.warning("camera %s: %s stream encoder drifted from the applied profile: "
                               "%s", cam.name, kind, drift)
            elif not drift and stream.drift:
                logger.info("camera %s: %s stream encoder matches the applied profile again",
                            cam.name, kind)
            result["streams"].append({
                "kind": kind, "drift": drift, "applied": before, "current": current,
                "differences": [{"field": d.field, "applied": d.applied, "current": d.current}
                                for d in diffs],
                "checked_us": now_us})

        def save() -> None:
            for stream_id, drift in updates.items():
                m.CameraStream.update(drift=drift[:2000], checked_us=now_us).where(
                    m.CameraStream.id == stream_id).execute()

        await self.onboarding.gateway.write(save)
        result["checked_us"] = now_us
        return result

    async def _profiles(self, cam: StoredCamera) -> dict[str, MediaProfile]:
        async with self.onboarding.onvif_client(cam) as client:
            await client.measure_clock()
            await client.capabilities()
            return {p.token: p for p in await client.profiles()}

    async def check_all(self) -> dict[str, int]:
        """Check every camera with an applied profile (bounded concurrency); never raises for a
        camera's failure. Returns counts: checked, drifted, failed."""

        def ids() -> list[int]:
            query = (m.CameraStream.select(m.CameraStream.camera).distinct()
                     .join(m.Camera)
                     .where(m.CameraStream.applied_us.is_null(False),
                            m.Camera.onvif_url != "", m.Camera.enabled == True))  # noqa: E712
            return sorted(s.camera_id for s in query)

        camera_ids = await self.onboarding.gateway.read(ids)
        limit = asyncio.Semaphore(self.concurrency)
        counts = {"checked": 0, "drifted": 0, "failed": 0}

        async def one(camera_id: int) -> None:
            async with limit:
                try:
                    result = await self.check(None, camera_id)
                except OnboardingError as exc:
                    counts["failed"] += 1
                    logger.info("camera %s: encoder drift not checked: %s", camera_id, exc)
                    return
            counts["checked"] += 1
            if any(s["drift"] for s in result["streams"]):
                counts["drifted"] += 1

        await asyncio.gather(*(one(i) for i in camera_ids))
        if camera_ids:
            logger.info("encoder drift check: %(checked)d checked, %(drifted)d drifted, "
                        "%(failed)d did not answer", counts)
        return counts

    async def run_scheduled(self) -> None:
        """The scheduler's job: one pass at a time, in a task :meth:`stop` cancels and awaits."""
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.create_task(self.check_all(), name="encoder drift check")
        try:
            await self._task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this job itself is being cancelled, not only the pass (stop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


__all__ = [
    "DRIFT_CHECK_INTERVAL_S",
    "Difference",
    "DriftChecker",
    "applied_of",
    "current_of",
    "describe",
    "differences",
]
