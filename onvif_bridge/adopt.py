"""Onboarding: adopt cameras, re-bind them by MAC, and remove them.

This module owns the installer's flow from "an ONVIF address" (typed in, or found by a scan:
:mod:`onvif_bridge.scan`) to "a camera row with encrypted credentials, a main and a sub stream,
and an audit record". :class:`Onboarding` is the service the web layer, the CLI and the demo call.
Every method takes the asking :class:`~vms.auth.Principal` (``None`` only for the local command
line, which has the whole database anyway): a site the principal does not see does not exist for
it, and a camera already adopted into such a site is refused (never re-bound across sites).

Choices: main stream = highest-resolution H.264/H.265 profile with a stream URI, sub = the
smallest one; a camera whose MAC is known is re-bound (address, credentials, streams updated),
not duplicated. Stored RTSP URLs never carry credentials. What is done to a camera once adopted
(recording profile, name, NTP, clock, reboot) lives in :mod:`onvif_bridge.configure`;
:meth:`Onboarding.configure` and :meth:`Onboarding.set_clock` delegate to it. A camera without an
ONVIF snapshot URI (added by bare RTSP URL, or refusing GetSnapshotUri) or whose snapshot URL
fails (404, 501, …) gets its snapshot as one frame of its RTSP stream
(:mod:`onvif_bridge.rtsp_frame`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import peewee as pw

from onvif_bridge import ptz
from onvif_bridge.client import (
    DEFAULT_TIMEOUT_S,
    OnvifClient,
    device_xaddr,
    interrogate,
    redact_url,
)
from onvif_bridge.configure import (
    ConfigureRequest,
    configure_camera,
    move_camera,
    rename_camera,
    set_camera_clock,
)
from onvif_bridge.doors import store_relays
from onvif_bridge.errors import (
    OnvifError,
    OnvifFault,
    OnvifHttpStatusError,
    OnvifParseError,
    OnvifRefusedUrlError,
    OnvifUnreachableError,
)
from onvif_bridge.http import url_host
from onvif_bridge.models import DeviceReport, ProfileReport, Status
from onvif_bridge.onboarding_common import OnboardingError, StoredCamera, default_camera_name
from onvif_bridge.rtsp_frame import grab_jpeg
from onvif_bridge.scan import strip_credentials
from onvif_bridge.snapshot import get_snapshot
from vms import audit, catalog
from vms.auth import Principal
from vms.clock import Clock, SystemClock
from vms.db import models as m
from vms.db.gateway import Gateway
from vms.logs import register_secret
from vms.secrets import SecretBox

logger = logging.getLogger(__name__)

RECORDABLE_CODECS = ("H264", "H265")
SNAPSHOT_FALLBACK_STATUSES = frozenset({404, 405, 500, 501, 503})
"""HTTP statuses of a snapshot URL after which a frame of the RTSP stream is taken instead (404
and 501 also send that camera's later snapshots straight to RTSP)."""
DEFAULT_SITE_NAME = "Default site"

CameraChanged = Callable[[int], Awaitable[None]]


# --- stream choice ------------------------------------------------------------------------------

def _pixels(entry: ProfileReport) -> int:
    return (entry.profile.width or 0) * (entry.profile.height or 0)


def choose_streams(report: DeviceReport) -> tuple[ProfileReport, ProfileReport | None]:
    """(main, sub): highest- and lowest-resolution H.264/H.265 profiles with a stream URI.

    Without any H.264/H.265 profile, any profile with a stream is used (logged); sub is None when
    the camera has a single usable profile.
    """
    usable = [p for p in report.profiles if p.stream_uri]
    if not usable:
        raise OnboardingError(f"{report.message}: no media profile with an RTSP stream",
                              "camera", report=report)
    recordable = [p for p in usable if (p.profile.encoding or "").upper() in RECORDABLE_CODECS]
    if not recordable:
        logger.warning("camera %s: no H.264/H.265 profile; using %s", report.address,
                       usable[0].profile.encoding)
        recordable = usable

    def rank(entry: ProfileReport) -> tuple[int, float, int]:
        return (_pixels(entry), entry.profile.fps or 0.0, entry.profile.bitrate_kbps or 0)

    main = max(recordable, key=rank)
    sub = min(recordable, key=rank)
    return main, (sub if sub is not main else None)


# --- results ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AdoptResult:
    camera_id: int
    name: str
    site_id: int
    created: bool
    """False: a camera with this MAC was known and has been re-bound to the new address."""
    status: str
    message: str
    mac: str | None = None
    previous_url: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"camera_id": self.camera_id, "name": self.name, "site_id": self.site_id,
                "created": self.created, "rebound": not self.created, "status": self.status,
                "message": self.message, "mac": self.mac}


# --- the service --------------------------------------------------------------------------------

class Onboarding:
    """Adopt, re-bind, configure and remove cameras. One instance per server (or CLI run).

    ``on_change`` is awaited with a camera id after every change (the recorder supervisor's
    ``camera_changed``); its failures are logged, never raised into the caller. ``ffmpeg_exe``
    grabs snapshots from the RTSP stream of cameras that have no ONVIF snapshot URI.
    ``snapshot_hosts_allowed``: hosts besides each camera's own that its snapshot URL may name
    (setting ``cameras.snapshot_hosts_allowed``; :mod:`onvif_bridge.snapshot`).
    """

    def __init__(self, gateway: Gateway, secrets: SecretBox, clock: Clock | None = None, *,
                 timeout_s: float = DEFAULT_TIMEOUT_S, on_change: CameraChanged | None = None,
                 default_recording_mode: str = "continuous",
                 ffmpeg_exe: Callable[[], str] | None = None,
                 snapshot_hosts_allowed: Iterable[str] = ()) -> None:
        self.gateway = gateway
        self.snapshot_hosts_allowed = tuple(snapshot_hosts_allowed)
        self.ffmpeg_exe = ffmpeg_exe
        """Finds ffmpeg (``Settings.ffmpeg_exe``) for snapshots of streams without an ONVIF
        snapshot URI (None: those answer 404)."""
        self.secrets = secrets
        self.clock = clock or SystemClock()
        self.timeout_s = timeout_s
        self.on_change = on_change
        self.default_recording_mode = default_recording_mode
        self._snapshot_uris: dict[tuple[int, str], str] = {}

    # --- helpers ---

    async def _changed(self, camera_id: int) -> None:
        if self.on_change is None:
            return
        try:
            await self.on_change(camera_id)
        except Exception:  # the recorder must not turn a completed adoption into an error
            logger.exception("camera %s: recorder did not take the change", camera_id)

    def _site_for(self, principal: Principal | None, site_id: int | None) -> m.Site:
        """The site to adopt into (runs inside a transaction)."""
        if site_id is not None:
            if principal is None:
                site = m.Site.get_or_none(m.Site.id == site_id)
                if site is None:
                    raise OnboardingError(f"no site {site_id}", "not_found")
                return site
            try:
                return catalog.get_site(principal, site_id)
            except catalog.NotFound:
                raise OnboardingError(f"no site {site_id}", "not_found") from None
        query = m.Site.select().order_by(m.Site.id)
        if principal is not None:
            query = catalog.scope_sites(query, principal)
        sites = list(query.limit(2))
        if len(sites) == 1:
            return sites[0]
        if not sites and (principal is None or principal.site_ids is None):
            return m.Site.create(name=DEFAULT_SITE_NAME, timezone="UTC",
                                 created_us=self.clock.now_us())
        raise OnboardingError("site_id is required: you see several sites (or none)")

    async def load_camera(self, principal: Principal | None, camera_id: int) -> StoredCamera:
        """The camera (with its streams and clear password) if the principal sees it."""

        def read() -> StoredCamera:
            if principal is None:
                camera = m.Camera.get_or_none(m.Camera.id == camera_id)
                if camera is None:
                    raise OnboardingError(f"no camera {camera_id}", "not_found")
            else:
                try:
                    camera = catalog.get_camera(principal, camera_id)
                except catalog.NotFound:
                    raise OnboardingError(f"no camera {camera_id}", "not_found") from None
            if camera.archived_us is not None:
                raise OnboardingError(f"camera {camera.name!r} was removed (archived): it takes "
                                      "no commands; its recordings can still be played",
                                      "conflict")
            streams = {s.kind: s for s in
                       m.CameraStream.select().where(m.CameraStream.camera == camera.id)}
            return StoredCamera(camera.id, camera.name, camera.site_id, camera.onvif_url,
                                camera.username, camera.password_enc, streams)

        cam = await self.gateway.read(read)
        cam.password = self.secrets.decrypt(cam.password)
        register_secret(cam.password)
        return cam

    def onvif_client(self, cam: StoredCamera) -> OnvifClient:
        """A client for the camera's ONVIF address (refused for cameras added by RTSP URL)."""
        if not cam.onvif_url:
            raise OnboardingError(f"camera {cam.name!r} was added by RTSP URL and has no ONVIF "
                                  "address", "invalid")
        return OnvifClient(cam.onvif_url, cam.username, cam.password, clock=self.clock,
                           timeout_s=self.timeout_s, name=cam.name)

    # --- adopt ---

    async def interrogate(self, onvif_url: str, username: str, password: str, *,
                          name: str | None = None) -> DeviceReport:
        register_secret(password, transient=True)
        return await interrogate(onvif_url, username, password, clock=self.clock,
                                 timeout_s=self.timeout_s, name=name)

    async def adopt(self, principal: Principal | None, onvif_url: str, username: str,
                    password: str, *, site_id: int | None = None, name: str | None = None,
                    set_clock: bool = False, actor: str = "", address: str = "") -> AdoptResult:
        """Interrogate the camera at ``onvif_url`` and store it (or re-bind it by MAC).

        ``set_clock``: when the camera's clock is too far off, set it to ours and go on (otherwise
        that is refused with the report, for the installer to decide).
        """
        xaddr = device_xaddr(onvif_url)
        if urlsplit(xaddr).scheme not in ("http", "https") or not urlsplit(xaddr).hostname:
            raise OnboardingError(f"onvif_url {onvif_url!r}: expected http://host[:port]/… or "
                                  "host[:port]")
        # Refuse a site the principal cannot see before touching the network.
        await self.gateway.read(self._check_site, principal, site_id)
        report = await self.interrogate(xaddr, username, password, name=name)
        if report.status == Status.CLOCK_SKEW and set_clock:
            async with OnvifClient(xaddr, username, password, clock=self.clock,
                                   timeout_s=self.timeout_s, name=name) as client:
                try:
                    await client.measure_clock()
                    await client.set_system_clock()
                except OnvifError as exc:
                    raise OnboardingError(f"setting the clock failed: {exc}", "camera",
                                          report=report) from None
            report = await self.interrogate(xaddr, username, password, name=name)
        if report.status != Status.OK:
            raise OnboardingError(report.message, "camera", report=report)
        main, sub = choose_streams(report)
        ptz_caps = await self._ptz_caps(xaddr, username, password, name, report, main)
        info = report.device_info
        default_name = name or default_camera_name(report)

        def store() -> AdoptResult:
            now = self.clock.now_us()
            # archived cameras are never re-bound: their footage stays with the old identity
            in_service = m.Camera.archived_us.is_null()
            existing = (m.Camera.get_or_none(m.Camera.mac == report.mac, in_service)
                        if report.mac else
                        m.Camera.get_or_none(m.Camera.onvif_url == report.xaddr, in_service))
            # A re-bound camera stays in its site unless a site is named.
            site = (existing.site if existing is not None and site_id is None
                    else self._site_for(principal, site_id))
            fields: dict[str, Any] = dict(
                onvif_url=report.xaddr, username=username,
                password_enc=self.secrets.encrypt(password),
                manufacturer=info.manufacturer if info else "", model=info.model if info else "",
                firmware=info.firmware_version if info else "",
                serial=info.serial_number if info else "",
                clock_offset_us=report.clock_offset_us or 0, updated_us=now,
            )
            if ptz_caps:
                fields["ptz_caps"] = ptz_caps
            previous = ""
            if existing is not None:
                if principal is not None and not principal.sees_site(existing.site_id):
                    raise OnboardingError(
                        "this camera is already adopted into a site you do not manage; ask an "
                        "administrator to move or remove it", "conflict")
                previous = existing.onvif_url
                camera = existing
                for key, value in fields.items():
                    setattr(camera, key, value)
                if name:
                    camera.name = name
                if site_id is not None:
                    camera.site = site
                camera.save()
                created = False
            else:
                camera = m.Camera.create(
                    site=site, name=default_name[:200], mac=report.mac,
                    recording_mode=self.default_recording_mode, status="new",
                    status_reason="adopted", status_since_us=now, created_us=now, **fields)
                created = True
            self._store_streams(camera, main, sub)
            store_relays(camera.id, report.relays, now)  # door locks (onvif_bridge/doors.py)
            audit.record(self.clock, "camera_adopt", principal=principal, username=actor,
                         target=f"{camera.name} ({report.address})", site_id=camera.site_id,
                         address=address,
                         detail={"camera_id": camera.id, "mac": report.mac,
                                 "rebound": not created, "previous_url": previous,
                                 "onvif_url": report.xaddr})
            return AdoptResult(camera.id, camera.name, camera.site_id, created, camera.status,
                               report.message if created else
                               f"camera {camera.name!r} re-bound to {report.address}",
                               report.mac, previous)

        try:
            result = await self.gateway.write(store)
        except pw.IntegrityError as exc:
            raise OnboardingError(f"camera could not be stored: {exc}", "conflict") from None
        logger.info("camera %s: %s at %s into site %s", result.name,
                    "adopted" if result.created else "re-bound", report.address, result.site_id)
        await self._changed(result.camera_id)
        return result

    async def _ptz_caps(self, xaddr: str, username: str, password: str, name: str | None,
                        report: DeviceReport, main: ProfileReport) -> str:
        """The camera's PTZ capabilities as stored (``ptz.caps_json``); "" when they could not be
        read — adoption goes on, and they can be refreshed later."""
        try:
            async with OnvifClient(xaddr, username, password, clock=self.clock,
                                   timeout_s=self.timeout_s, name=name) as client:
                await client.measure_clock()
                caps = await ptz.probe_capabilities(
                    client, tuple(p.profile for p in report.profiles), main.profile.token)
        except OnvifError as exc:
            logger.warning("camera %s: PTZ capabilities not read (%s)", report.address, exc)
            return ""
        return ptz.caps_json(caps)

    def _check_site(self, principal: Principal | None, site_id: int | None) -> None:
        if site_id is None or principal is None:
            return
        try:
            catalog.get_site(principal, site_id)
        except catalog.NotFound:
            raise OnboardingError(f"no site {site_id}", "not_found") from None

    @staticmethod
    def _store_streams(camera: m.Camera, main: ProfileReport,
                       sub: ProfileReport | None) -> None:
        m.CameraStream.delete().where(m.CameraStream.camera == camera.id).execute()
        for kind, entry in (("main", main), ("sub", sub)):
            if entry is None or entry.stream_uri is None:
                continue
            p = entry.profile
            m.CameraStream.create(
                camera=camera, kind=kind, profile_token=p.token,
                rtsp_url=strip_credentials(entry.stream_uri)[:1000],
                codec=(p.encoding or "")[:16], width=p.width or 0, height=p.height or 0,
                fps=round(p.fps or 0), bitrate_kbps=p.bitrate_kbps or 0, record=kind == "main")

    async def adopt_rtsp(self, principal: Principal | None, rtsp_url: str, username: str,
                         password: str, *, site_id: int | None = None, name: str | None = None,
                         actor: str = "", address: str = "") -> AdoptResult:
        """Add a camera without ONVIF by its RTSP URL (credentials may be in the URL or apart)."""
        parts = urlsplit(rtsp_url)
        if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
            raise OnboardingError(f"rtsp_url {redact_url(rtsp_url)!r}: expected "
                                  "rtsp://host[:port]/path")
        username = username or (parts.username or "")
        password = password or (parts.password or "")
        register_secret(password, transient=True)
        clean = strip_credentials(rtsp_url)
        label = name or f"{parts.hostname}{parts.path}"

        def store() -> AdoptResult:
            site = self._site_for(principal, site_id)
            now = self.clock.now_us()
            camera = m.Camera.create(
                site=site, name=label[:200], mac=None, onvif_url="", username=username,
                password_enc=self.secrets.encrypt(password),
                recording_mode=self.default_recording_mode, status="new",
                status_reason="added by RTSP URL", status_since_us=now, created_us=now,
                updated_us=now)
            m.CameraStream.create(camera=camera, kind="main", rtsp_url=clean[:1000], record=True)
            audit.record(self.clock, "camera_adopt", principal=principal, username=actor,
                         target=f"{camera.name} ({parts.hostname})", site_id=site.id,
                         address=address, detail={"camera_id": camera.id, "rtsp_url": clean})
            return AdoptResult(camera.id, camera.name, site.id, True, camera.status,
                               f"camera {camera.name!r} added by RTSP URL")

        result = await self.gateway.write(store)
        await self._changed(result.camera_id)
        return result

    async def adopt_many(self, principal: Principal | None, xaddrs: Sequence[str], username: str,
                         password: str, *, site_id: int | None, concurrency: int = 8,
                         set_clock: bool = False, actor: str = "",
                         address: str = "") -> list[dict[str, Any]]:
        """Adopt every address with the same credentials; one result (or error) per address.

        Interrogation runs concurrently; storing is serialised by the database writer.
        """
        await self.gateway.read(self._check_site, principal, site_id)
        limit = asyncio.Semaphore(max(1, concurrency))

        async def one(xaddr: str) -> dict[str, Any]:
            async with limit:
                try:
                    result = await self.adopt(principal, xaddr, username, password,
                                              site_id=site_id, set_clock=set_clock, actor=actor,
                                              address=address)
                except OnboardingError as exc:
                    row: dict[str, Any] = {"xaddr": xaddr, "ok": False, "error": str(exc)}
                    if exc.report is not None:
                        row["status"] = str(exc.report.status)
                    return row
                return {"xaddr": xaddr, "ok": True, **result.as_dict()}

        return list(await asyncio.gather(*(one(x) for x in dict.fromkeys(xaddrs))))

    # --- known cameras ---

    def known_cameras(self, principal: Principal | None, macs: Iterable[str]) -> dict[str, int]:
        """MAC → camera id among cameras the principal sees (sync; run through gateway.read)."""
        wanted = [mac for mac in set(macs) if mac]
        if not wanted:
            return {}
        query = m.Camera.select(m.Camera.id, m.Camera.mac).where(m.Camera.mac.in_(wanted))
        if principal is not None:
            query = catalog.scope_cameras(query, principal)
        return {c.mac: c.id for c in query}

    # --- configure ---

    async def configure(self, principal: Principal | None, camera_id: int,
                        request: ConfigureRequest, *, actor: str = "",
                        address: str = "") -> dict[str, Any]:
        """Apply what ``request`` asks over ONVIF; returns what the camera accepted
        (:func:`onvif_bridge.configure.configure_camera`)."""
        result = await configure_camera(self, principal, camera_id, request, actor=actor,
                                        address=address)
        await self._changed(result["camera_id"])
        return result

    async def set_clock(self, principal: Principal | None, camera_id: int, *, actor: str = "",
                        address: str = "") -> dict[str, Any]:
        """Set the camera's clock to ours; returns the offset before and after (µs)
        (:func:`onvif_bridge.configure.set_camera_clock`)."""
        return await set_camera_clock(self, principal, camera_id, actor=actor, address=address)

    async def rename(self, principal: Principal | None, camera_id: int, name: str, *,
                     actor: str = "", address: str = "") -> dict[str, Any]:
        """Rename the camera here only (:func:`onvif_bridge.configure.rename_camera`)."""
        result = await rename_camera(self, principal, camera_id, name, actor=actor,
                                     address=address)
        await self._changed(camera_id)
        return result

    async def move(self, principal: Principal | None, camera_id: int, site_id: int, *,
                   actor: str = "", address: str = "") -> dict[str, Any]:
        """Move the camera to another site (:func:`onvif_bridge.configure.move_camera`)."""
        result = await move_camera(self, principal, camera_id, site_id, actor=actor,
                                   address=address)
        await self._changed(camera_id)
        return result

    async def remove(self, principal: Principal | None, camera_id: int, *, actor: str = "",
                     address: str = "") -> dict[str, Any]:
        """Archive the camera: it stops recording (the recorder is told and has stopped when this
        returns) and streaming, leaves the live lists and frees its MAC address for a new
        adoption, but keeps its identity and recordings, playable and exportable by those who
        see its site until retention takes them. Deleting the recordings too is a separate,
        explicit step (``recorder.purge``). Removing an archived camera again changes nothing."""

        def archive() -> dict[str, Any]:
            if principal is None:
                camera = m.Camera.get_or_none(m.Camera.id == camera_id)
            else:
                try:
                    camera = catalog.get_camera(principal, camera_id)
                except catalog.NotFound:
                    camera = None
            if camera is None:
                raise OnboardingError(f"no camera {camera_id}", "not_found")
            result = {"camera_id": camera.id, "name": camera.name, "removed": True,
                      "archived": True}
            if camera.archived_us is not None:
                return {**result, "archived_us": camera.archived_us}
            now = self.clock.now_us()
            m.Camera.update(archived_us=now, mac=None, status="archived",
                            status_reason="removed; recordings kept until retention",
                            status_since_us=now, updated_us=now).where(
                m.Camera.id == camera.id).execute()
            audit.record(self.clock, "camera_remove", principal=principal, username=actor,
                         target=camera.name, site_id=camera.site_id, address=address,
                         detail={"camera_id": camera.id, "mac": camera.mac, "archived": True,
                                 "uuid": camera.uuid})
            return {**result, "archived_us": now}

        result = await self.gateway.write(archive)
        self._snapshot_uris = {k: v for k, v in self._snapshot_uris.items() if k[0] != camera_id}
        await self._changed(camera_id)
        return result

    # --- snapshots ---

    async def snapshot(self, principal: Principal | None, camera_id: int,
                       stream: str = "sub") -> bytes:
        """A fresh JPEG from the camera: ONVIF GetSnapshotUri then HTTP (only from the camera's
        own host, :mod:`onvif_bridge.snapshot`); for a camera without ONVIF (or without a
        snapshot URI), one frame of its RTSP stream."""
        cam = await self.load_camera(principal, camera_id)
        entry = cam.streams.get(stream) or cam.streams.get("main") or cam.streams.get("sub")
        if entry is None:
            raise OnboardingError(f"camera {cam.name!r} has no stream", "not_found")
        key = (cam.id, entry.profile_token)
        try:
            uri = self._snapshot_uris.get(key) if cam.onvif_url and entry.profile_token else ""
            if uri is None:
                uri = await self._snapshot_uri(cam, entry.profile_token)
                self._snapshot_uris[key] = uri
            if not uri:
                return await self._rtsp_snapshot(cam, entry)
            try:
                return await get_snapshot(uri, cam.username, cam.password,
                                          camera_host=url_host(device_xaddr(cam.onvif_url)),
                                          allowed_hosts=self.snapshot_hosts_allowed,
                                          timeout_s=self.timeout_s)
            except OnvifHttpStatusError as exc:
                if exc.status not in SNAPSHOT_FALLBACK_STATUSES or self.ffmpeg_exe is None:
                    raise
                logger.info("camera %s: %s; using a frame of its RTSP stream", cam.name, exc)
                if exc.status in (404, 501):  # the URL is not there: go to RTSP from now on
                    self._snapshot_uris[key] = ""
                return await self._rtsp_snapshot(cam, entry)
        except OnvifRefusedUrlError as exc:
            logger.warning("camera %s: %s", cam.name, exc)
            raise OnboardingError(f"camera {cam.name!r}: {exc}", "camera") from None
        except OnvifUnreachableError as exc:
            self._snapshot_uris.pop(key, None)
            raise OnboardingError(str(exc), "camera") from None
        except OnvifError as exc:
            raise OnboardingError(str(exc), "camera") from None

    async def _snapshot_uri(self, cam: StoredCamera, profile_token: str) -> str:
        """The profile's snapshot URI; "" when the camera refuses GetSnapshotUri for it."""
        async with self.onvif_client(cam) as client:
            await client.measure_clock()
            await client.capabilities()
            try:
                return await client.snapshot_uri(profile_token)
            except (OnvifFault, OnvifParseError) as exc:
                logger.info("camera %s: no ONVIF snapshot URI (%s); using its RTSP stream",
                            cam.name, exc)
                return ""

    async def _rtsp_snapshot(self, cam: StoredCamera, entry: m.CameraStream) -> bytes:
        if self.ffmpeg_exe is None:
            raise OnboardingError(f"camera {cam.name!r} offers no ONVIF snapshot", "not_found")
        try:
            ffmpeg = self.ffmpeg_exe()
        except (ImportError, RuntimeError, OSError) as exc:
            raise OnboardingError(f"camera {cam.name!r}: no ffmpeg for a snapshot from its RTSP "
                                  f"stream ({exc})", "camera") from None
        return await grab_jpeg(ffmpeg, entry.rtsp_url, cam.username, cam.password,
                               label=cam.name, timeout_s=self.timeout_s)


async def snapshot_of(report: DeviceReport, username: str, password: str, *,
                      allowed_hosts: Iterable[str] = (),
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> bytes:
    """A JPEG of a not-yet-adopted device from its interrogation report (smallest profile),
    only from the host it was interrogated at (or ``allowed_hosts``)."""
    candidates = [p for p in report.profiles if p.snapshot_uri]
    if not candidates:
        raise OnboardingError(f"{report.address}: no snapshot URI", "not_found")
    entry = min(candidates, key=_pixels)
    assert entry.snapshot_uri is not None
    try:
        return await get_snapshot(entry.snapshot_uri, username, password,
                                  camera_host=url_host(report.xaddr or device_xaddr(report.address)),
                                  allowed_hosts=allowed_hosts, timeout_s=timeout_s)
    except OnvifError as exc:
        raise OnboardingError(str(exc), "camera") from None


__all__ = [
    "AdoptResult",
    "Onboarding",
    "choose_streams",
    "snapshot_of",
]
