"""Storage visibility: what each volume holds, how fast it fills, what protects it, and its history.

Owns the figures behind ``GET /api/v1/storage``, the storage page, ``vms storage status`` and the
``vms_storage_*`` metrics: per volume the bytes of the indexed segments on it (``used_bytes``), its
file system's size and free space, its cap, the write rate (bytes of the segments that ended in the
last 10 minutes, per second), the evidence holds that cover footage on it (and how many bytes), the
bytes freed by retention in the last 24 hours (from the ``retention.purge`` audit records) and the
next scheduled purge; per camera its bytes, the oldest footage kept and how many days that is.
It also samples every volume hourly into ``StorageSample`` (30 days kept) for the usage chart.

Database reads are plain functions for the gateway's reader threads; file-system calls
(``shutil.disk_usage``) run on this module's own small thread pool with a time limit, so a hung
mount neither blocks the event loop nor stalls the other volumes. Nothing here deletes anything.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import peewee as pw

from vms.auth import Principal
from vms.catalog import scope_cameras
from vms.clock import US_PER_S, Clock
from vms.config import Settings, Volume
from vms.db import models as m
from vms.db.gateway import Gateway

DAY_US = 86_400 * US_PER_S
WRITE_RATE_WINDOW_US = 600 * US_PER_S
"""The write rate is the bytes of segments that ended within this window, per second."""
FREED_WINDOW_US = DAY_US
""""Freed recently": retention purges audited within this window."""
HISTORY_KEEP_DAYS = 30
SAMPLE_INTERVAL_S = 3600
SAMPLE_MIN_GAP_US = 50 * 60 * US_PER_S
"""A volume sampled less than this long ago is not sampled again (a restart does not add a dense
run of samples)."""
FS_TIMEOUT_S = 5.0
PURGE_ACTION = "retention.purge"
"""The audit action of every retention purge; its detail is ``{"reason", "volume", "segments",
"bytes"}``."""
STORAGE_RIGHT = "manage_cameras"
"""Who sees volume-level figures (disks, holds on them, history): installers and administrators,
the people who decide where cameras record. Anyone with ``playback`` sees their own sites'
cameras' figures."""


@dataclass(frozen=True)
class FsUsage:
    """A volume's file system as ``shutil.disk_usage`` saw it, or why it could not be read."""

    total_bytes: int | None
    free_bytes: int | None
    error: str = ""


def _disk_usage(volume: Volume) -> FsUsage:
    if not volume.path.is_dir():
        return FsUsage(None, None, f"folder {volume.path} does not exist (disk not mounted?)")
    try:
        usage = shutil.disk_usage(volume.path)
    except OSError as exc:
        return FsUsage(None, None, f"cannot read the file system of {volume.path}: "
                                   f"{exc.strerror or exc}")
    return FsUsage(int(usage.total), int(usage.free))


class FsProbe:
    """``disk_usage`` of each volume on a small pool of its own threads, each call bounded by
    ``timeout_s``: a hung mount is reported as an error and leaves the other volumes readable."""

    def __init__(self, timeout_s: float = FS_TIMEOUT_S, workers: int = 4) -> None:
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="storage-fs")

    def _timed_out(self, volume: Volume) -> FsUsage:
        return FsUsage(None, None, f"the file system of {volume.path} did not answer within "
                                   f"{self.timeout_s:g} s")

    def usage_sync(self, volumes: Iterable[Volume]) -> dict[str, FsUsage]:
        """From any thread but the event loop's."""
        futures: list[tuple[Volume, Future[FsUsage]]] = [
            (v, self._pool.submit(_disk_usage, v)) for v in volumes]
        found: dict[str, FsUsage] = {}
        for volume, future in futures:
            try:
                found[volume.name] = future.result(timeout=self.timeout_s)
            except FutureTimeout:
                found[volume.name] = self._timed_out(volume)
        return found

    async def usage(self, volumes: Iterable[Volume]) -> dict[str, FsUsage]:
        loop = asyncio.get_running_loop()
        volumes = list(volumes)

        async def one(volume: Volume) -> FsUsage:
            try:
                return await asyncio.wait_for(
                    asyncio.wrap_future(self._pool.submit(_disk_usage, volume), loop=loop),
                    self.timeout_s)
            except TimeoutError:
                return self._timed_out(volume)

        results = await asyncio.gather(*(one(v) for v in volumes))
        return {v.name: r for v, r in zip(volumes, results, strict=True)}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


# --- reads from the index (run on a gateway reader thread) -------------------------------------
#
# Bytes come from ``SegmentUsage`` (per camera, stream and volume; kept by triggers on ``segment``,
# migration 010), never from a scan of the segment table; the rest are range reads on the segment
# index ``(camera, stream, start_us, end_us, run, state, id)``, one camera-stream at a time.

_KEPT = m.Segment.state != "missing"
"""Segments whose file is on disk (a ``missing`` row occupies no space)."""


def _usage() -> list[tuple[int, str, str, int]]:
    """(camera id, stream, volume, bytes) of every camera-stream-volume that holds segments."""
    u = m.SegmentUsage
    return [(int(c), str(st), str(v), int(b)) for c, st, v, b in
            u.select(u.camera_id, u.stream, u.volume, u.bytes).where(u.segments > 0).tuples()]


def volume_index_bytes() -> dict[str, int]:
    """Bytes of the indexed segments per volume."""
    found: dict[str, int] = {}
    for _cam, _stream, volume, size in _usage():
        found[volume] = found.get(volume, 0) + size
    return found


def _streams(usage: list[tuple[int, str, str, int]]) -> dict[int, set[str]]:
    streams: dict[int, set[str]] = {}
    for cam, stream, _volume, _size in usage:
        streams.setdefault(cam, set()).add(stream)
    return streams


def _key(camera_id: int, stream: str) -> pw.Expression:
    return (m.Segment.camera == camera_id) & (m.Segment.stream == stream)


def _span(camera_id: int, stream: str) -> tuple[int | None, int | None]:
    """Start of the oldest and end of the newest kept segment of one camera-stream (segments of a
    stream never overlap: the newest ends last)."""
    key = _key(camera_id, stream) & _KEPT
    oldest = (m.Segment.select(m.Segment.start_us).where(key).order_by(m.Segment.start_us)
              .limit(1).scalar())
    newest = (m.Segment.select(m.Segment.end_us).where(key)
              .order_by(m.Segment.start_us.desc()).limit(1).scalar())
    return (int(oldest) if oldest is not None else None,
            int(newest) if newest is not None else None)


def _recent_bytes(since_us: int, lookback_us: int) -> dict[str, int]:
    """Per volume: bytes of the segments that ended after ``since_us`` (those that started up to
    ``lookback_us`` before it: longer than any segment)."""
    found: dict[str, int] = {}
    for cam, streams in _streams(_usage()).items():
        for stream in streams:
            query = (m.Segment.select(m.Segment.volume, pw.fn.SUM(m.Segment.size_bytes))
                     .where(_key(cam, stream) & _KEPT
                            & (m.Segment.start_us >= since_us - lookback_us)
                            & (m.Segment.end_us > since_us))
                     .group_by(m.Segment.volume).tuples())
            for volume, size in query:
                found[volume] = found.get(volume, 0) + int(size or 0)
    return found


def oldest_per_camera() -> dict[int, int]:
    """The start of each camera's oldest kept footage (cameras with none are left out)."""
    found: dict[int, int] = {}
    for cam, streams in _streams(_usage()).items():
        starts = [o for o in (_span(cam, st)[0] for st in streams) if o is not None]
        if starts:
            found[cam] = min(starts)
    return found


def _freed(since_us: int) -> dict[str, dict[str, Any]]:
    """Per volume: bytes and segments freed by retention purges audited since ``since_us``, and by
    which reasons."""
    freed: dict[str, dict[str, Any]] = {}
    rows = (m.AuditLog.select(m.AuditLog.detail)
            .where((m.AuditLog.action == PURGE_ACTION) & (m.AuditLog.at_us >= since_us)))
    for row in rows:
        try:
            detail = json.loads(row.detail or "{}")
        except ValueError:
            continue
        if not isinstance(detail, dict):
            continue
        volume = str(detail.get("volume", ""))
        entry = freed.setdefault(volume, {"bytes": 0, "segments": 0, "by_reason": {}})
        size = detail.get("bytes", 0)
        size = int(size) if isinstance(size, int) else 0
        count = detail.get("segments", 0)
        entry["bytes"] += size
        entry["segments"] += int(count) if isinstance(count, int) else 0
        reason = str(detail.get("reason", ""))
        entry["by_reason"][reason] = entry["by_reason"].get(reason, 0) + size
    return freed


def _held_segments(camera_id: int, stream: str, start_us: int,
                   end_us: int) -> list[tuple[int, str, int]]:
    """(id, volume, bytes) of the kept segments of one camera-stream overlapping
    ``[start_us, end_us)``: from the last one starting before ``start_us`` on."""
    key = _key(camera_id, stream)
    before = (m.Segment.select(m.Segment.start_us).where(key & (m.Segment.start_us < start_us))
              .order_by(m.Segment.start_us.desc()).limit(1))
    query = (m.Segment.select(m.Segment.id, m.Segment.volume, m.Segment.size_bytes)
             .where(key & _KEPT & (m.Segment.start_us >= pw.fn.COALESCE(before, start_us))
                    & (m.Segment.start_us < end_us) & (m.Segment.end_us > start_us)).tuples())
    return [(int(i), str(v), int(b)) for i, v, b in query]


def _holds(principal: Principal) -> tuple[dict[str, int], dict[str, list[dict[str, Any]]]]:
    """Per volume: the bytes of segments some hold covers (every site: it is the volume's space;
    a segment under two holds counted once), and the holds of the principal's sites that cover
    footage there, with their bytes."""
    streams = _streams(_usage())
    visible = {c.id for c in scope_cameras(m.Camera.select(m.Camera.id), principal)}
    holds = (m.Hold.select(m.Hold, m.Camera.name).join(m.Camera)
             .order_by(m.Hold.start_us, m.Hold.id))
    held: dict[str, dict[int, int]] = {}
    per_volume: dict[str, list[dict[str, Any]]] = {}
    for h in holds.objects():
        covered: dict[str, list[int]] = {}
        for stream in sorted(streams.get(h.camera_id, ())):
            for seg_id, volume, size in _held_segments(h.camera_id, stream, h.start_us, h.end_us):
                held.setdefault(volume, {})[seg_id] = size
                covered.setdefault(volume, []).append(size)
        if h.camera_id not in visible:
            continue
        for volume, sizes in covered.items():
            per_volume.setdefault(volume, []).append({
                "id": h.id, "camera_id": h.camera_id, "camera_name": h.name,
                "start_us": h.start_us, "end_us": h.end_us, "reason": h.reason,
                "bytes": sum(sizes), "segments": len(sizes)})
    return {v: sum(sizes.values()) for v, sizes in held.items()}, per_volume


def camera_usage(principal: Principal, now_us: int) -> list[dict[str, Any]]:
    """Every camera the principal may see (removed ones too: their footage is kept), with the
    bytes of its footage, the oldest footage kept (``retained_from_us``, null with none), the
    newest, and the days from the oldest to now (``retained_days``)."""
    usage = _usage()
    used: dict[int, int] = {}
    for cam_id, _stream, _volume, size in usage:
        used[cam_id] = used.get(cam_id, 0) + size
    streams = _streams(usage)
    cameras = scope_cameras(m.Camera.select(m.Camera, m.Site).join(m.Site), principal)
    out = []
    for cam in cameras.order_by(m.Site.name, m.Camera.name, m.Camera.id):
        spans = [_span(cam.id, stream) for stream in sorted(streams.get(cam.id, ()))]
        starts = [a for a, _ in spans if a is not None]
        ends = [b for _, b in spans if b is not None]
        oldest = min(starts) if starts else None
        out.append({
            "id": cam.id, "name": cam.name, "site": {"id": cam.site.id, "name": cam.site.name},
            "archived": cam.archived_us is not None,
            "used_bytes": used.get(cam.id, 0),
            "retained_from_us": oldest,
            "newest_us": max(ends) if ends else None,
            "retained_days": round(max(0, now_us - oldest) / DAY_US, 3) if oldest is not None
            else 0.0,
        })
    return out


@dataclass(frozen=True)
class IndexFigures:
    used: dict[str, int]
    recent: dict[str, int]
    freed: dict[str, dict[str, Any]]
    held: dict[str, int]
    holds: dict[str, list[dict[str, Any]]]
    cameras: list[dict[str, Any]]


def index_figures(principal: Principal, now_us: int, volumes: bool,
                  lookback_us: int = 3600 * US_PER_S) -> IndexFigures:
    """One reader-thread visit for everything the storage answer takes from the database.
    ``lookback_us``: longer than any segment (for the write rate)."""
    cameras = camera_usage(principal, now_us)
    if not volumes:
        return IndexFigures({}, {}, {}, {}, {}, cameras)
    held, holds = _holds(principal)
    return IndexFigures(volume_index_bytes(),
                        _recent_bytes(now_us - WRITE_RATE_WINDOW_US, lookback_us),
                        _freed(now_us - FREED_WINDOW_US), held, holds, cameras)


def _seconds_to_full(volume: Volume, used: int, fs: FsUsage, rate: float) -> int | None:
    """At the current write rate, seconds until the volume reaches its cap or its free-space floor
    (null when nothing is being written or the file system cannot be read)."""
    if rate <= 0 or fs.free_bytes is None:
        return None
    room = fs.free_bytes - volume.min_free_bytes
    if volume.max_bytes:
        room = min(room, volume.max_bytes - used)
    return max(0, int(room / rate))


def volume_report(volume: Volume, fs: FsUsage, figures: IndexFigures,
                  next_purge_us: int | None,
                  health: tuple[str, str] | None = None) -> dict[str, Any]:
    """One volume's figures; ``health`` (state, message) from the recorder when it runs: a volume
    not ``ok`` (unmarked, foreign, unreadable, unresponsive) is recorded to by no camera, and its
    ``error`` says why."""
    used = figures.used.get(volume.name, 0)
    rate = figures.recent.get(volume.name, 0) / (WRITE_RATE_WINDOW_US / US_PER_S)
    freed = figures.freed.get(volume.name, {"bytes": 0, "segments": 0, "by_reason": {}})
    return {
        "name": volume.name, "path": str(volume.path),
        "used_bytes": used, "free_bytes": fs.free_bytes, "total_bytes": fs.total_bytes,
        "max_bytes": volume.max_bytes, "min_free_bytes": volume.min_free_bytes,
        "state": health[0] if health else ("ok" if not fs.error else "unreadable"),
        "error": fs.error or (health[1] if health and health[0] != "ok" else ""),
        "write_bytes_per_s": round(rate, 1),
        "seconds_to_full": _seconds_to_full(volume, used, fs, rate),
        "held_bytes": figures.held.get(volume.name, 0),
        "holds": figures.holds.get(volume.name, []),
        "freed_bytes_24h": freed["bytes"], "freed_segments_24h": freed["segments"],
        "freed_by_reason_24h": freed["by_reason"],
        "next_purge_us": next_purge_us,
    }


# --- history ----------------------------------------------------------------------------------

def store_samples(at_us: int, samples: dict[str, tuple[int, int, int]]) -> int:
    """Write ``{volume: (used, free, total)}`` at ``at_us`` (skipping a volume sampled less than
    :data:`SAMPLE_MIN_GAP_US` ago) and forget samples older than the history keeps. Returns the
    number of rows written. Run it on the gateway's writer."""
    written = 0
    for volume, (used, free, total) in samples.items():
        last = (m.StorageSample.select(pw.fn.MAX(m.StorageSample.at_us))
                .where(m.StorageSample.volume == volume).scalar())
        if last is not None and at_us - int(last) < SAMPLE_MIN_GAP_US:
            continue
        m.StorageSample.create(volume=volume, at_us=at_us, used_bytes=used, free_bytes=free,
                               total_bytes=total)
        written += 1
    (m.StorageSample.delete()
     .where(m.StorageSample.at_us < at_us - HISTORY_KEEP_DAYS * DAY_US).execute())
    return written


def read_history(volume: str, since_us: int) -> list[dict[str, int]]:
    query = (m.StorageSample.select().where((m.StorageSample.volume == volume)
                                           & (m.StorageSample.at_us >= since_us))
             .order_by(m.StorageSample.at_us))
    return [{"at_us": s.at_us, "used_bytes": s.used_bytes, "free_bytes": s.free_bytes,
             "total_bytes": s.total_bytes} for s in query]


class UnknownVolume(LookupError):
    pass


# --- the service ------------------------------------------------------------------------------

class StorageService:
    """The storage figures for the API, the page, the CLI and the metrics.

    ``next_purge_us`` tells when the scheduled purge runs next (the composition root reads the
    APScheduler job ``retention``; None when there is no such job)."""

    def __init__(self, gateway: Gateway, settings: Settings, clock: Clock, *,
                 next_purge_us: Callable[[], int | None] = lambda: None,
                 volume_health: Callable[[], Awaitable[dict[str, tuple[str, str]]]] | None = None,
                 fs_timeout_s: float = FS_TIMEOUT_S) -> None:
        self.gateway = gateway
        self.settings = settings
        self.clock = clock
        self.next_purge_us = next_purge_us
        self.volume_health = volume_health
        """``{volume name: (state, message)}`` from the recorder (marker files, a hung mount);
        None when no recorder runs: then only the file system's own errors are reported."""
        self.fs = FsProbe(fs_timeout_s, workers=max(2, len(settings.volumes)))

    def close(self) -> None:
        self.fs.close()

    def _lookback_us(self) -> int:
        """Longer than any segment: how far before the write-rate window a segment ending in it
        may have started."""
        return (2 * self.settings.recording.segment_seconds + 60) * US_PER_S

    @staticmethod
    def sees_volumes(principal: Principal) -> bool:
        return principal.can(STORAGE_RIGHT)

    async def report(self, principal: Principal) -> dict[str, Any]:
        """The answer of ``GET /api/v1/storage`` for ``principal``: ``volumes`` (empty without
        :data:`STORAGE_RIGHT`) and ``cameras`` of their sites."""
        now_us = self.clock.now_us()
        with_volumes = self.sees_volumes(principal)
        figures = await self.gateway.read(index_figures, principal, now_us, with_volumes,
                                          self._lookback_us())
        volumes: list[dict[str, Any]] = []
        if with_volumes:
            fs = await self.fs.usage(self.settings.volumes)
            next_purge = self.next_purge_us()
            health = await self.volume_health() if self.volume_health is not None else {}
            volumes = [volume_report(v, fs[v.name], figures, next_purge, health.get(v.name))
                       for v in self.settings.volumes]
        return {"at_us": now_us, "volumes": volumes, "cameras": figures.cameras}

    def report_sync(self, principal: Principal,
                    health: dict[str, tuple[str, str]] | None = None) -> dict[str, Any]:
        """The same as :meth:`report`, from a thread (the CLI, which passes each volume's
        ``health`` as it checked it)."""
        now_us = self.clock.now_us()
        figures = self.gateway.read_sync(index_figures, principal, now_us, True,
                                         self._lookback_us())
        fs = self.fs.usage_sync(self.settings.volumes)
        next_purge = self.next_purge_us()
        health = health or {}
        return {"at_us": now_us, "cameras": figures.cameras,
                "volumes": [volume_report(v, fs[v.name], figures, next_purge, health.get(v.name))
                            for v in self.settings.volumes]}

    async def sample(self) -> int:
        """Sample every readable volume into the history (the hourly ``storage_history`` job)."""
        now_us = self.clock.now_us()
        used = await self.gateway.read(volume_index_bytes)
        fs = await self.fs.usage(self.settings.volumes)
        samples = {v.name: (used.get(v.name, 0), fs[v.name].free_bytes or 0,
                            fs[v.name].total_bytes or 0)
                   for v in self.settings.volumes if fs[v.name].total_bytes is not None}
        return await self.gateway.write(store_samples, now_us, samples)

    async def history(self, volume: str, days: int) -> list[dict[str, int]]:
        if volume not in {v.name for v in self.settings.volumes}:
            raise UnknownVolume(volume)
        since_us = self.clock.now_us() - days * DAY_US
        return await self.gateway.read(read_history, volume, since_us)
