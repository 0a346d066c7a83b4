"""Evidence export: recorded segments of one or more cameras over a time range → MP4 + manifest.

This module owns the export job from request to finished file: the requests (create, list, get,
cancel, download — each checked against what the user may see), a queue worked by a fixed number
of workers (the concurrency limit), recovery of unfinished jobs at start-up, and the job itself:
planning from the segment index (which files, which gaps: :mod:`recorder.export_plan`), the copy
(:mod:`recorder.export_writer`: the direct clip copy or ffmpeg, the ZIP of several cameras,
progress, cancellation), the signed manifest (:mod:`recorder.export_manifest`) and the audit
records of the creation and of every download. Rows and files: :mod:`recorder.export_store`. The
web layer and the CLI call :class:`ExportService`; see docs/design/export.md for the decisions.

Files live in ``<data_dir>/exports/``: ``export-<id>.mp4`` for one camera, ``export-<id>.zip``
(stored, one MP4 per camera) for several, and ``export-<id>.manifest.json`` beside it.

In a cluster each export row names the node that makes it (``export.node``): that node's workers run
it and keep its file; a restart recovers only the node's own exports; :meth:`ExportService.adopt`
moves the unfinished exports of a node that stopped heart-beating to this one (the job starts
again), and a job whose export was moved away meanwhile never marks it done.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import peewee as pw

from recorder import export_store as store
from recorder.clip import Clip
from recorder.export_coverage import describe
from recorder.export_manifest import build_manifest, server_version
from recorder.export_plan import (
    CameraPlan,
    ExportError,
    load_plan,
    prepare_plan,
    space_problem,
)
from recorder.export_store import FINAL_STATES, STATES, ExportNotFound, export_dict
from recorder.export_writer import STOP_TIMEOUT_S, ExportCancelled, ExportJob, ExportWriter, terminate
from recorder.stats import ExportStats
from vms import audit, catalog
from vms.auth import Principal
from vms.clock import Clock, format_iso
from vms.config import Settings
from vms.db import models as m
from vms.db.gateway import Gateway
from vms.signing import ManifestSigner

log = logging.getLogger(__name__)

__all__ = ["FINAL_STATES", "MAX_CAMERAS", "MAX_RANGE_US", "STATES", "ExportError",
           "ExportNotFound", "ExportService", "export_dict", "server_version"]

MAX_RANGE_US = 24 * 3600 * 1_000_000
"""Longest range one export may cover (24 h)."""
MAX_CAMERAS = 16


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
        self.node = settings.node_name if settings.clustered else ""
        """The node whose exports these workers make ('' for a single server)."""
        self.fetch_remote: Callable[[int, int, Path], Awaitable[None]] | None = None
        """In a cluster: copies a segment kept on another node (camera id, segment id, dest)."""
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._jobs: dict[int, ExportJob] = {}
        self.writer = ExportWriter(gateway, settings, self.ffmpeg_exe, self.folder)
        self.stats = ExportStats()
        """Counters for /metrics."""
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._adopter: asyncio.Task[None] | None = None
        self.listeners: list[Callable[[int, str], None]] = []
        """Called with (export id, state) when a job reaches a final state (tests, metrics)."""

    # -- lifecycle ------------------------------------------------------------------------------

    def queued_count(self) -> int:
        """Jobs waiting for a worker (a job cancelled while queued leaves when one takes it)."""
        return self._queue.qsize()

    def running_count(self) -> int:
        return len(self._jobs)

    async def start(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        await self.recover()
        self._workers = [asyncio.create_task(self._worker(), name=f"export-worker-{i}")
                         for i in range(self.concurrency)]

    async def stop(self) -> None:
        """Stop the workers; a job interrupted here goes back to ``queued`` for the next start."""
        self._stopping = True
        if self._adopter is not None:
            self._adopter.cancel()
            await asyncio.gather(self._adopter, return_exceptions=True)
            self._adopter = None
        for job in list(self._jobs.values()):
            job.cancel.set()
            await terminate(job)
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
                    .where(m.Export.state.in_(["queued", "running"]) & self._mine())
                    .order_by(m.Export.id))
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
                store.remove_outputs(self.folder, export_id)
            self._queue.put_nowait(export_id)
        return [i for i, _ in found]

    def _mine(self) -> Any:
        """The exports this service makes: in a cluster, its node's, and those of no node yet
        (made before migration 016; a worker's claim then makes them its node's)."""
        return m.Export.node.in_([self.node, ""]) if self.settings.clustered else pw.SQL("1 = 1")

    def adopt_every(self, lease_s: float) -> None:
        """In a cluster: every ``lease_s / 2``, take over the unfinished exports of dead nodes."""
        async def loop() -> None:
            while True:
                await asyncio.sleep(lease_s / 2)
                try:
                    await self.adopt(lease_s)
                except pw.DatabaseError as exc:
                    log.warning("exports of dead nodes not checked: database unavailable (%s)",
                                exc)

        self._adopter = asyncio.create_task(loop(), name="export-adopt")

    async def adopt(self, lease_s: float) -> list[int]:
        """Move the queued or running exports of nodes whose heartbeat lapsed (database clock)
        to this node and queue them (a running one starts again: its partial files are on the
        dead node). One UPDATE per export, conditional on its node: two nodes adopting at once
        each get a different export or none. Nothing while this node itself is not alive."""
        from vms.cluster import dead_nodes

        def take() -> list[tuple[int, str]]:
            dead = dead_nodes(lease_s)
            registered = m.Node.select().where(m.Node.name == self.node).exists()
            if not dead or self.node in dead or not registered:  # only an alive node adopts
                return []
            taken = []
            for export_id, node in (m.Export.select(m.Export.id, m.Export.node)
                                    .where(m.Export.state.in_(["queued", "running"])
                                           & m.Export.node.in_(dead)).tuples()):
                if m.Export.update(node=self.node, state="queued", progress=0.0, error="").where(
                        (m.Export.id == export_id) & (m.Export.node == node)
                        & m.Export.state.in_(["queued", "running"])).execute():
                    taken.append((export_id, node))
            return taken

        taken = await self.gw.write(take)
        for export_id, node in taken:
            log.warning("export %s: node %s stopped heart-beating; this node (%s) makes it now",
                        export_id, node, self.node)
            self._queue.put_nowait(export_id)
        return [i for i, _ in taken]

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
                                  to_us=to_us, created_us=now, node=self.node,
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

    async def get(self, principal: Principal | None, export_id: int) -> dict[str, Any]:
        row = await self.gw.read(store.visible_row, principal, export_id)
        return export_dict(row)

    async def list_exports(self, principal: Principal | None, limit: int = 100) -> list[dict[str, Any]]:
        return await self.gw.read(store.list_visible, principal, limit)

    async def manifest(self, principal: Principal | None, export_id: int) -> dict[str, Any]:
        row = await self.gw.read(store.visible_row, principal, export_id)
        if row.state != "done":
            raise ExportError(f"export {export_id} is {row.state}, not done")
        value: dict[str, Any] = json.loads(row.manifest)
        return value

    async def file_for_download(self, principal: Principal | None, export_id: int, *,
                                address: str = "", record: bool = True,
                                username: str = "", byte_range: str = "",
                                local: bool = True) -> tuple[Path, str]:
        """The finished file (path, download name); writes an ``export_download`` audit record
        (with ``byte_range``, the HTTP Range asked for; empty: the whole file). ``local`` false:
        another node keeps the file (only the checks and the record are made here)."""
        return await self.gw.write(
            lambda: store.download(self.clock, principal, export_id, address=address,
                                   record=record, username=username, byte_range=byte_range,
                                   local=local))

    async def cancel(self, principal: Principal | None, export_id: int) -> dict[str, Any]:
        def mark() -> m.Export:
            row = store.visible_row(principal, export_id)
            if row.state == "running" and row.node and row.node != self.node:
                raise ExportError(f"export {export_id} is being made on node {row.node!r}: "
                                  "cancel it there")
            if row.state == "queued":
                m.Export.update(state="cancelled", finished_us=self.clock.now_us(),
                                error="cancelled by the user").where(
                    m.Export.id == export_id).execute()
            return m.Export.get_by_id(export_id)

        row = await self.gw.write(mark)
        job = self._jobs.get(export_id)
        if job is not None:
            job.cancel.set()
            await terminate(job)
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

    async def _set(self, export_id: int, **values: Any) -> bool:
        """Update the export; False when it is no longer this node's (another node adopted it
        while this one was cut off)."""
        return bool(await self.gw.write(lambda: m.Export.update(**values).where(
            (m.Export.id == export_id) & self._mine()).execute()))

    async def _finish(self, export_id: int, state: str, *, error: str = "") -> None:
        await self._set(export_id, state=state, error=error, finished_us=self.clock.now_us())
        store.remove_outputs(self.folder, export_id, keep_final=False)
        log.info("export %s %s%s", export_id, state, f": {error}" if error else "")
        self.stats.ended(state)
        for listener in self.listeners:
            listener(export_id, state)

    async def _fetch_remote(self, plan: CameraPlan, tmp: Path) -> None:
        """Copy the plan's segments kept on other nodes' volumes (a cluster) into ``tmp``."""
        remote = [s for s in plan.segments if getattr(s, "abs_path", None) is None]
        if remote and self.fetch_remote is None:
            raise ExportError(f"camera {plan.camera_name!r}: footage on another node's storage "
                              "volume cannot be fetched by this node")
        for seg in remote:
            assert self.fetch_remote is not None
            dest = tmp / f"node-{seg.id}.mp4"
            try:
                await self.fetch_remote(plan.camera_id, seg.id, dest)
            except OSError as exc:
                raise ExportError(f"camera {plan.camera_name!r}: {exc}") from None
            seg.abs_path = dest  # type: ignore[attr-defined]

    async def _run(self, export_id: int) -> None:
        row = await self.gw.read(lambda: m.Export.get_or_none(m.Export.id == export_id))
        if row is None or row.state != "queued":
            return
        started = await self.gw.write(lambda: m.Export.update(
            state="running", progress=0.0, node=self.node).where(
            (m.Export.id == export_id) & (m.Export.state == "queued") & self._mine()).execute())
        if not started:
            return  # cancelled meanwhile
        job = ExportJob(export_id)
        started_us = self.clock.monotonic_us()
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
                await self._fetch_remote(plan, tmp)
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
                final, file_digest, outputs = await self.writer.zip(job, plans, tmp, total_us)
            else:
                plan, clip = plans[0]
                final, file_digest, outputs = await self.writer.single(job, plan, clip, tmp,
                                                                       total_us)
            manifest = self.signer.sign(await build_manifest(self.gw, self.clock, row, outputs,
                                                             final, file_digest))
            manifest_path = self.folder / f"export-{export_id}.manifest.json"
            manifest_text = json.dumps(manifest, indent=2, ensure_ascii=False)
            await asyncio.to_thread(manifest_path.write_text, manifest_text, "utf-8")
            shutil.rmtree(tmp, ignore_errors=True)
            if job.cancel.is_set():
                raise ExportCancelled
            if not await self._set(export_id, state="done", progress=1.0, path=str(final),
                                   sha256=file_digest,
                                   manifest=json.dumps(manifest, ensure_ascii=False),
                                   finished_us=manifest["finished_us"], error=""):
                log.warning("export %s: made here, but another node took it over meanwhile; "
                            "this copy is discarded", export_id)
                store.remove_outputs(self.folder, export_id)
                return
            log.info("export %s done: %s (%s bytes)", export_id, final.name,
                     manifest["file"]["size_bytes"])
            self.stats.ended("done")
            self.stats.done(manifest["file"]["size_bytes"],
                            (self.clock.monotonic_us() - started_us) / 1e6)
            for listener in self.listeners:
                listener(export_id, "done")
        except ExportCancelled:
            if self._stopping:
                await self._set(export_id, state="queued", progress=0.0)
                store.remove_outputs(self.folder, export_id)
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

