"""Evidence export: recorded segments of one or more cameras over a time range → MP4 + manifest.

This module owns the export job from request to finished file: planning from the segment index
(which files, which gaps), the copy — normally recorder/clip.py, which copies the recorded samples
into a faststart MP4 and hashes it while writing; ``ffmpeg -f concat -c copy -moov_size N`` per
camera when the segments cannot be read that way or ``export.muxer = "ffmpeg"`` (never a
transcode either way) — progress (bytes copied, or ffmpeg's ``out_time_us``, against the
expected span), a queue worked by a fixed number of workers (the concurrency limit), cancellation,
recovery of unfinished jobs at start-up, the manifest (cameras, requested and actual ranges, the
ranges the clip really covers and the gaps with their reasons — from the frames written, never
from the index alone — codecs, SHA-256, who and when, server version) and the audit records of
the creation and of every download. The web layer and the CLI call :class:`ExportService`; see
docs/design/export.md for the decisions.

Files live in ``<data_dir>/exports/``: ``export-<id>.mp4`` for one camera, ``export-<id>.zip``
(stored, one MP4 per camera) for several, and ``export-<id>.manifest.json`` beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from recorder.clip import Clip, ClipCancelled, HashingWriter, write_all, write_clip, write_clip_to
from recorder.export_coverage import describe
from recorder.export_ffmpeg import MOOV_TOO_SMALL, concat_list, export_argv, moov_reserve_bytes
from recorder.export_plan import (
    CameraPlan,
    ExportError,
    load_plan,
    prepare_plan,
    space_problem,
)
from recorder.mp4 import Mp4Error
from vms import audit, catalog
from vms.auth import Principal
from vms.clock import Clock, format_iso
from vms.config import Settings
from vms.coverage import MediaProbeError, probe_video, total
from vms.db import models as m
from vms.db.gateway import Gateway
from vms.proc import ChildProcess
from vms.signing import ManifestSigner, sha256_file

log = logging.getLogger(__name__)

STATES = ("queued", "running", "done", "failed", "cancelled", "expired")
FINAL_STATES = frozenset({"done", "failed", "cancelled", "expired"})
"""``expired``: a finished export whose file and manifest retention deleted (``exports_days``)."""
MAX_RANGE_US = 24 * 3600 * 1_000_000
"""Longest range one export may cover (24 h)."""
MAX_CAMERAS = 16
PROGRESS_WRITE_INTERVAL_S = 0.5
STOP_TIMEOUT_S = 5.0


class ExportNotFound(LookupError):
    """No such export, or the asking user may not see it."""


def server_version() -> str:
    try:
        return metadata.version("vms")
    except metadata.PackageNotFoundError:  # pragma: no cover - always installed here
        return "unknown"


def _copy_into_zip(zf: zipfile.ZipFile, name: str, path: Path) -> tuple[str, int]:
    """Copy the file ``path`` into a new member of ``zf``; (its SHA-256, its size)."""
    digest = hashlib.sha256()
    size = 0
    with zf.open(name, "w", force_zip64=True) as member, path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            member.write(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


# ------------------------------------------------------------------------------------- running


class _Cancelled(Exception):
    pass


@dataclass
class _Job:
    export_id: int
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    proc: ChildProcess | None = None


def _iso_pair(from_us: int, to_us: int, tz: str) -> dict[str, Any]:
    return {"from_us": from_us, "to_us": to_us, "from_iso": format_iso(from_us, tz),
            "to_iso": format_iso(to_us, tz)}


def export_dict(row: m.Export) -> dict[str, Any]:
    manifest = json.loads(row.manifest or "{}")
    done = row.state == "done"
    return {
        "id": row.id, "state": row.state, "progress": round(row.progress, 4), "error": row.error,
        "camera_ids": json.loads(row.camera_ids or "[]"), "from_us": row.from_us,
        "to_us": row.to_us, "created_us": row.created_us, "finished_us": row.finished_us,
        "user_id": row.user_id, "username": manifest.get("exported_by", {}).get("username", ""),
        "file_name": Path(row.path).name if done and row.path else "",
        "size_bytes": manifest.get("file", {}).get("size_bytes") if done else None,
        "sha256": row.sha256 if done else "",
        "cameras": [{"id": c["id"], "name": c["name"]} for c in manifest.get("cameras", [])],
    }


class ExportService:
    """Creates, runs, lists and cancels exports. ``start()`` recovers and starts the workers."""

    def __init__(self, gateway: Gateway, settings: Settings, clock: Clock, *,
                 concurrency: int | None = None, ffmpeg_exe: str | None = None,
                 signer: ManifestSigner | None = None) -> None:
        self.gw = gateway
        self.signer = signer or ManifestSigner.for_data_dir(settings.data_dir)
        self.settings = settings
        self.clock = clock
        self.concurrency = max(1, concurrency or settings.export.concurrency)
        self.ffmpeg_exe = ffmpeg_exe or settings.ffmpeg_exe()
        self.folder = settings.data_dir / "exports"
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._jobs: dict[int, _Job] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self.listeners: list[Callable[[int, str], None]] = []
        """Called with (export id, state) when a job reaches a final state (tests, metrics)."""

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        await self.recover()
        self._workers = [asyncio.create_task(self._worker(), name=f"export-worker-{i}")
                         for i in range(self.concurrency)]

    async def stop(self) -> None:
        """Stop the workers; a job interrupted here goes back to ``queued`` for the next start."""
        self._stopping = True
        for job in list(self._jobs.values()):
            job.cancel.set()
            await self._terminate(job)
        if self._jobs:  # let them record 'queued' and clean up
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), STOP_TIMEOUT_S)
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    async def recover(self) -> list[int]:
        """Re-queue exports left ``queued`` or ``running`` (by a crash or a stop); returns them.

        A ``running`` export starts again from the beginning (its partial files are removed); if it
        can no longer be made (a camera or its recordings are gone) the job fails with that reason.
        """
        def load() -> list[tuple[int, str]]:
            rows = (m.Export.select(m.Export.id, m.Export.state)
                    .where(m.Export.state.in_(["queued", "running"])).order_by(m.Export.id))
            ids = [(r.id, r.state) for r in rows]
            for export_id, state in ids:
                if state == "running":
                    m.Export.update(state="queued", progress=0.0,
                                    error="").where(m.Export.id == export_id).execute()
            return ids

        found = await self.gw.write(load)
        for export_id, state in found:
            if state == "running":
                log.warning("export %s was interrupted (server stopped); starting it again",
                            export_id)
                self._remove_outputs(export_id)
            self._queue.put_nowait(export_id)
        return [i for i, _ in found]

    # -- requests -------------------------------------------------------------------------------

    async def create(self, principal: Principal | None, camera_ids: list[int], from_us: int,
                     to_us: int, *, address: str = "", username: str = "") -> int:
        """Queue an export; every camera must be visible to ``principal`` (None: local CLI).

        Raises :class:`vms.catalog.NotFound` for a camera the user may not see and
        :class:`ExportError` for a request that cannot be made.
        """
        ids = list(dict.fromkeys(camera_ids))
        if not ids:
            raise ExportError("choose at least one camera")
        if len(ids) > MAX_CAMERAS:
            raise ExportError(f"at most {MAX_CAMERAS} cameras per export")
        if to_us <= from_us:
            raise ExportError("the end of the range must be after its start")
        if to_us - from_us > MAX_RANGE_US:
            raise ExportError("a range of at most 24 hours can be exported at once")
        now = self.clock.now_us()

        def write() -> int:
            sites = []
            for cid in ids:
                if principal is None:
                    cam = m.Camera.get_or_none(m.Camera.id == cid)
                    if cam is None:
                        raise catalog.NotFound(f"no camera {cid}")
                else:
                    cam = catalog.get_camera(principal, cid)
                sites.append(cam.site_id)
            row = m.Export.create(user=principal.user_id if principal else None, state="queued",
                                  progress=0.0, camera_ids=json.dumps(ids), from_us=from_us,
                                  to_us=to_us, created_us=now,
                                  manifest=json.dumps({"exported_by": {
                                      "username": principal.username if principal else username,
                                      "user_id": principal.user_id if principal else None,
                                      "role": principal.role if principal else "local"}}))
            audit.record(self.clock, "export_create", principal=principal, username=username,
                         target=f"export {row.id}", site_id=sites[0], address=address,
                         detail={"export_id": row.id, "camera_ids": ids, "from_us": from_us,
                                 "to_us": to_us})
            return int(row.id)

        export_id = await self.gw.write(write)
        log.info("export %s queued: cameras %s, %s .. %s", export_id, ids, format_iso(from_us),
                 format_iso(to_us))
        self._queue.put_nowait(export_id)
        return export_id

    @staticmethod
    def _visible_row(principal: Principal | None, export_id: int) -> m.Export:
        row = m.Export.get_or_none(m.Export.id == export_id)
        if row is None:
            raise ExportNotFound(f"no export {export_id}")
        if principal is None or principal.role == "admin":
            return row
        if row.user_id != principal.user_id:
            raise ExportNotFound(f"no export {export_id}")
        for cid in json.loads(row.camera_ids or "[]"):
            try:
                catalog.get_camera(principal, int(cid))
            except catalog.NotFound:
                raise ExportNotFound(f"no export {export_id}") from None
        return row

    async def get(self, principal: Principal | None, export_id: int) -> dict[str, Any]:
        row = await self.gw.read(self._visible_row, principal, export_id)
        return export_dict(row)

    async def list_exports(self, principal: Principal | None, limit: int = 100) -> list[dict[str, Any]]:
        def load() -> list[dict[str, Any]]:
            query = m.Export.select().order_by(m.Export.id.desc())
            if principal is not None and principal.role != "admin":
                query = query.where(m.Export.user == principal.user_id)
            out = []
            for row in query.limit(limit * 2):
                try:
                    out.append(export_dict(self._visible_row(principal, row.id)))
                except ExportNotFound:
                    continue
                if len(out) >= limit:
                    break
            return out

        return await self.gw.read(load)

    async def manifest(self, principal: Principal | None, export_id: int) -> dict[str, Any]:
        row = await self.gw.read(self._visible_row, principal, export_id)
        if row.state != "done":
            raise ExportError(f"export {export_id} is {row.state}, not done")
        value: dict[str, Any] = json.loads(row.manifest)
        return value

    async def file_for_download(self, principal: Principal | None, export_id: int, *,
                                address: str = "", record: bool = True,
                                username: str = "", byte_range: str = "") -> tuple[Path, str]:
        """The finished file (path, download name); writes an ``export_download`` audit record
        (with ``byte_range``, the HTTP Range asked for; empty: the whole file)."""
        def check() -> tuple[Path, str]:
            row = self._visible_row(principal, export_id)
            if row.state != "done" or not row.path:
                raise ExportError(f"export {export_id} is {row.state}, not done")
            path = Path(row.path)
            if not path.is_file():
                raise ExportError(f"the file of export {export_id} is gone from the server")
            if record:
                ids = json.loads(row.camera_ids or "[]")
                cam = m.Camera.get_or_none(m.Camera.id == ids[0]) if ids else None
                audit.record(self.clock, "export_download", principal=principal,
                             username=username, target=f"export {export_id}",
                             site_id=cam.site_id if cam else None,
                             address=address, detail={"export_id": export_id,
                                                      "sha256": row.sha256,
                                                      "range": byte_range[:100] or None})
            return path, path.name

        return await self.gw.write(check)

    async def cancel(self, principal: Principal | None, export_id: int) -> dict[str, Any]:
        def mark() -> m.Export:
            row = self._visible_row(principal, export_id)
            if row.state == "queued":
                m.Export.update(state="cancelled", finished_us=self.clock.now_us(),
                                error="cancelled by the user").where(
                    m.Export.id == export_id).execute()
            return m.Export.get_by_id(export_id)

        row = await self.gw.write(mark)
        job = self._jobs.get(export_id)
        if job is not None:
            job.cancel.set()
            await self._terminate(job)
        return export_dict(row)

    async def wait(self, export_id: int, timeout_s: float = 60.0) -> dict[str, Any]:
        """Wait until the export reaches a final state (for the CLI and tests)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            row = await self.gw.read(lambda: m.Export.get_by_id(export_id))
            if row.state in FINAL_STATES:
                return export_dict(row)
            if loop.time() > deadline:
                raise TimeoutError(f"export {export_id} still {row.state} after {timeout_s}s")
            await asyncio.sleep(0.1)

    # -- workers --------------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            export_id = await self._queue.get()
            try:
                await self._run(export_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not kill the worker: fail the job, keep serving
                log.exception("export %s: unexpected error", export_id)
                await self._finish(export_id, "failed", error="internal error; see the server log")
            finally:
                self._queue.task_done()

    async def _set(self, export_id: int, **values: Any) -> None:
        await self.gw.write(lambda: m.Export.update(**values).where(
            m.Export.id == export_id).execute())

    async def _finish(self, export_id: int, state: str, *, error: str = "") -> None:
        await self._set(export_id, state=state, error=error, finished_us=self.clock.now_us())
        self._remove_outputs(export_id, keep_final=False)
        log.info("export %s %s%s", export_id, state, f": {error}" if error else "")
        for listener in self.listeners:
            listener(export_id, state)

    def _outputs(self, export_id: int) -> list[Path]:
        return [self.folder / f"export-{export_id}.{ext}"
                for ext in ("mp4", "zip", "manifest.json")] + [self.folder / f"tmp-{export_id}"]

    def _remove_outputs(self, export_id: int, keep_final: bool = False) -> None:
        for path in self._outputs(export_id):
            if keep_final and not path.name.startswith("tmp-"):
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    async def _run(self, export_id: int) -> None:
        row = await self.gw.read(lambda: m.Export.get_or_none(m.Export.id == export_id))
        if row is None or row.state != "queued":
            return
        started = await self.gw.write(lambda: m.Export.update(state="running", progress=0.0).where(
            (m.Export.id == export_id) & (m.Export.state == "queued")).execute())
        if not started:
            return  # cancelled meanwhile
        job = _Job(export_id)
        self._jobs[export_id] = job
        self._idle.clear()
        tmp = self.folder / f"tmp-{export_id}"
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            camera_ids = [int(c) for c in json.loads(row.camera_ids)]
            plans: list[tuple[CameraPlan, Clip | None]] = []
            for cid in camera_ids:
                plan = await self.gw.read(load_plan, self.settings, cid, row.from_us, row.to_us)
                clip = await asyncio.to_thread(prepare_plan, plan, row.from_us, row.to_us,
                                               direct=self.settings.export.muxer == "auto")
                if clip is not None:  # ffmpeg's part is described once it is written
                    await asyncio.to_thread(describe, plan, clip.video, clip.actual_from_us)
                plans.append((plan, clip))
            zipped = len(plans) > 1
            need = sum(clip.payload_size if clip is not None  # ffmpeg's file is then copied
                       else sum(seg.size_bytes for seg in plan.segments) * (1 + zipped)
                       for plan, clip in plans)
            problem = await asyncio.to_thread(space_problem, self.settings, self.folder, need)
            if problem:
                raise ExportError(problem)
            total_us = sum(p.expected_us for p, _ in plans)
            if zipped:
                final, file_digest, outputs = await self._zip(job, plans, tmp, total_us)
            else:
                plan, clip = plans[0]
                out = tmp / self._camera_file_name(plan, 0)
                if clip is not None:
                    file_digest, size = await self._copy(
                        job, plan, clip.payload_size, total_us, 0,
                        lambda progress, cancel: write_clip(
                            clip, out, progress=progress, cancel=cancel,
                            max_bytes_per_s=self._rate()))
                else:
                    await self._ffmpeg(job, plan, tmp / "list-0.txt", out, 0, total_us)
                    file_digest = await asyncio.to_thread(sha256_file, out)
                    size = out.stat().st_size
                outputs = [(plan, Path(out.name), file_digest, size)]
                final = self.folder / f"export-{export_id}.mp4"
                os.replace(out, final)
            manifest = self.signer.sign(await self._manifest(row, outputs, final, file_digest))
            manifest_path = self.folder / f"export-{export_id}.manifest.json"
            manifest_text = json.dumps(manifest, indent=2, ensure_ascii=False)
            await asyncio.to_thread(manifest_path.write_text, manifest_text, "utf-8")
            shutil.rmtree(tmp, ignore_errors=True)
            if job.cancel.is_set():
                raise _Cancelled
            await self._set(export_id, state="done", progress=1.0, path=str(final),
                            sha256=file_digest, manifest=json.dumps(manifest, ensure_ascii=False),
                            finished_us=manifest["finished_us"], error="")
            log.info("export %s done: %s (%s bytes)", export_id, final.name,
                     manifest["file"]["size_bytes"])
            for listener in self.listeners:
                listener(export_id, "done")
        except _Cancelled:
            if self._stopping:
                await self._set(export_id, state="queued", progress=0.0)
                self._remove_outputs(export_id)
            else:
                await self._finish(export_id, "cancelled", error="cancelled by the user")
        except ExportError as exc:
            await self._finish(export_id, "failed", error=str(exc))
        except OSError as exc:
            await self._finish(export_id, "failed", error=f"file error: {exc}")
        finally:
            self._jobs.pop(export_id, None)
            if not self._jobs:
                self._idle.set()

    @staticmethod
    def _camera_file_name(plan: CameraPlan, index: int) -> str:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in plan.camera_name)[:60]
        return f"{index + 1:02d}-camera{plan.camera_id}-{safe or 'camera'}.mp4"

    def _rate(self) -> int:
        return self.settings.export.max_kb_per_s * 1000

    async def _zip(self, job: _Job, plans: list[tuple[CameraPlan, Clip | None]], tmp: Path,
                   total_us: int) -> tuple[Path, str, list[tuple[CameraPlan, Path, str, int]]]:
        """Several cameras: one stored ZIP written in one pass, each MP4 copied straight into
        its member; the ZIP and every member are hashed as they are written."""
        partial = tmp / "package.zip"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        sink = HashingWriter(lambda data: write_all(fd, data))
        outputs: list[tuple[CameraPlan, Path, str, int]] = []
        try:
            # no tell() on the sink: zipfile streams, with data descriptors
            zf = zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
            done_us = 0
            for i, (plan, clip) in enumerate(plans):
                name = self._camera_file_name(plan, i)
                if clip is not None:
                    def member(progress: Callable[[int], None], cancel: threading.Event,
                               clip: Clip = clip, name: str = name) -> tuple[str, int]:
                        with zf.open(name, "w", force_zip64=True) as fh:
                            return write_clip_to(clip, fh.write, progress=progress, cancel=cancel,
                                                 max_bytes_per_s=self._rate())
                    digest, size = await self._copy(job, plan, clip.payload_size, total_us,
                                                    done_us, member)
                else:
                    out = tmp / name
                    await self._ffmpeg(job, plan, tmp / f"list-{i}.txt", out, done_us, total_us)
                    digest, size = await asyncio.to_thread(_copy_into_zip, zf, name, out)
                    out.unlink()
                done_us += plan.expected_us
                outputs.append((plan, Path(name), digest, size))
            await asyncio.to_thread(zf.close)
        finally:
            file_digest = await asyncio.to_thread(sink.finish)
            os.close(fd)
        final = self.folder / f"export-{job.export_id}.zip"
        os.replace(partial, final)
        return final, file_digest, outputs

    async def _manifest(self, row: m.Export, outputs: list[tuple[CameraPlan, Path, str, int]],
                        final: Path, file_digest: str) -> dict[str, Any]:
        exported_by = json.loads(row.manifest or "{}").get("exported_by", {})
        if row.user_id is not None:
            user = await self.gw.read(lambda: m.User.get_or_none(m.User.id == row.user_id))
            if user is not None:
                exported_by = {"user_id": user.id, "username": user.username, "role": user.role}
        finished = self.clock.now_us()
        cameras = []
        for plan, path, digest, size in outputs:
            tz = plan.timezone
            cameras.append({
                "id": plan.camera_id, "name": plan.camera_name,
                "site": {"id": plan.site_id, "name": plan.site_name, "timezone": tz},
                "file": path.name, "size_bytes": size, "sha256": digest,
                "requested": _iso_pair(row.from_us, row.to_us, tz),
                "actual": _iso_pair(plan.actual_from_us, plan.actual_to_us, tz),
                "media_time_zero_us": plan.actual_from_us,
                "covered": [{"start_us": a, "end_us": b, "start_iso": format_iso(a, tz),
                             "end_iso": format_iso(b, tz)} for a, b in plan.covered],
                "covered_us": total(plan.covered),
                "gaps": [{"start_us": g.start_us, "end_us": g.end_us,
                          "start_iso": format_iso(g.start_us, tz),
                          "end_iso": format_iso(g.end_us, tz), "reason": g.reason}
                         for g in plan.gaps],
                "codecs": {"video": plan.video_codec, "audio": plan.audio_codec,
                           "width": plan.width, "height": plan.height},
                "segments": len(plan.segments),
            })
        tz0 = outputs[0][0].timezone
        size_bytes = (await asyncio.to_thread(final.stat)).st_size
        return {
            "format": "vms-export-manifest/1",
            "export_id": row.id,
            "server": {"name": "vms", "version": server_version()},
            "exported_by": exported_by,
            "created_us": row.created_us, "created_iso": format_iso(row.created_us, tz0),
            "finished_us": finished, "finished_iso": format_iso(finished, tz0),
            "requested": _iso_pair(row.from_us, row.to_us, tz0),
            "file": {"name": final.name, "container": final.suffix.lstrip("."),
                     "size_bytes": size_bytes, "sha256": file_digest},
            "cameras": cameras,
            "notes": ("Stream copy, no transcoding. Each MP4 starts at the keyframe at or before "
                      "the requested start; media time t is the wall instant "
                      "media_time_zero_us + t (gaps keep their length: the last frame before "
                      "a gap is held). 'covered' lists the wall ranges the MP4 holds video "
                      "for, read from the frames written; every other part of the requested "
                      "range is a gap with its reason."),
        }

    async def _copy(self, job: _Job, plan: CameraPlan, payload_bytes: int, total_us: int,
                    done_us: int,
                    copy: Callable[[Callable[[int], None], threading.Event], tuple[str, int]]
                    ) -> tuple[str, int]:
        """Run ``copy(progress, cancel)`` (a direct clip copy) on a thread; progress by bytes."""
        if job.cancel.is_set():
            raise _Cancelled
        stop = threading.Event()
        copied = [0]

        def progress(written: int) -> None:
            copied[0] = written

        watcher = asyncio.create_task(job.cancel.wait())
        watcher.add_done_callback(lambda _task: stop.set())
        writer = asyncio.ensure_future(asyncio.to_thread(copy, progress, stop))
        try:
            while not writer.done():
                await asyncio.wait({writer}, timeout=PROGRESS_WRITE_INTERVAL_S)
                share = min(1.0, copied[0] / max(1, payload_bytes))
                await self._set(job.export_id, progress=min(
                    0.99, (done_us + share * plan.expected_us) / total_us))
            return writer.result()
        except ClipCancelled:
            raise _Cancelled from None
        except Mp4Error as exc:
            raise ExportError(f"camera {plan.camera_name!r}: {exc}") from None
        finally:
            stop.set()  # also ends the thread when this task itself is cancelled
            watcher.cancel()

    async def _ffmpeg(self, job: _Job, plan: CameraPlan, list_path: Path, out: Path,
                      done_us: int, total_us: int) -> None:
        if job.cancel.is_set():
            raise _Cancelled
        await asyncio.to_thread(list_path.write_text, concat_list(plan.files), "utf-8")
        try:
            await self._run_ffmpeg(job, plan, list_path, out, done_us, total_us,
                                   moov_reserve_bytes(plan.expected_us))
        except ExportError as exc:
            if MOOV_TOO_SMALL not in str(exc):
                raise
            log.warning("export %s: camera %r: moov reserve too small, writing with +faststart",
                        job.export_id, plan.camera_name)
            await self._run_ffmpeg(job, plan, list_path, out, done_us, total_us, None)
        # ffmpeg decides what it copies (it skips what it cannot read, and still exits 0): the
        # manifest describes the frames read back from its output
        try:
            times = await asyncio.to_thread(probe_video, out)
        except MediaProbeError as exc:
            raise ExportError(f"camera {plan.camera_name!r}: ffmpeg wrote no readable video: "
                              f"{exc}") from None
        await asyncio.to_thread(describe, plan, times, plan.actual_from_us)

    async def _run_ffmpeg(self, job: _Job, plan: CameraPlan, list_path: Path, out: Path,
                          done_us: int, total_us: int, moov_reserve: int | None) -> None:
        argv = export_argv(self.ffmpeg_exe, list_path, out, audio=bool(plan.audio_codec),
                           moov_reserve=moov_reserve)
        proc = ChildProcess(argv, name=f"export {job.export_id}: ffmpeg",
                            stop_timeout_s=STOP_TIMEOUT_S)
        loop = asyncio.get_running_loop()
        last_write = 0.0

        async def read_progress() -> None:
            nonlocal last_write
            async for raw in proc.stdout:
                key, _, value = raw.decode(errors="replace").strip().partition("=")
                if key != "out_time_us" or not value.lstrip("-").isdigit():
                    continue
                fraction = (done_us + min(max(int(value), 0), plan.expected_us)) / total_us
                now = loop.time()
                if now - last_write >= PROGRESS_WRITE_INTERVAL_S:
                    last_write = now
                    await self._set(job.export_id, progress=min(0.99, fraction))

        async with proc:
            job.proc = proc
            try:
                await read_progress()
                rc = await proc.wait()
            finally:
                job.proc = None
        tail = list(proc.tail)
        if job.cancel.is_set():
            raise _Cancelled
        if rc != 0:
            # the line naming the cause, when it is the reserve, is what _ffmpeg retries on
            message = next((line for line in tail if MOOV_TOO_SMALL in line),
                           tail[-1] if tail else f"exit code {rc}")
            raise ExportError(f"camera {plan.camera_name!r}: ffmpeg failed: {message}")

    @staticmethod
    async def _terminate(job: _Job) -> None:
        if job.proc is not None:
            await job.proc.stop()
