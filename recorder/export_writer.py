"""Writing one export job's file: the direct copy or ffmpeg per camera, the ZIP of several, progress.

Normally :mod:`recorder.clip` copies the recorded samples into a faststart MP4, hashing it while
writing; when the segments cannot be read that way (or ``export.muxer = "ffmpeg"``) ``ffmpeg -f
concat -c copy -moov_size N`` (:mod:`recorder.export_ffmpeg`) writes it — never a transcode either
way. Several cameras make one stored ZIP written in one pass. Progress (bytes copied, or ffmpeg's
``out_time_us``, against the expected span) is written to the job's row; a cancelled job stops its
copy thread or its ffmpeg and raises :class:`ExportCancelled`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from recorder.clip import Clip, ClipCancelled, HashingWriter, write_all, write_clip, write_clip_to
from recorder.export_coverage import describe
from recorder.export_ffmpeg import MOOV_TOO_SMALL, concat_list, export_argv, moov_reserve_bytes
from recorder.export_manifest import Output
from recorder.export_plan import CameraPlan, ExportError
from recorder.mp4 import Mp4Error
from vms.config import Settings
from vms.coverage import MediaProbeError, probe_video
from vms.db import models as m
from vms.db.gateway import Gateway
from vms.proc import ChildProcess
from vms.signing import sha256_file

log = logging.getLogger(__name__)

PROGRESS_WRITE_INTERVAL_S = 0.5
STOP_TIMEOUT_S = 5.0


class ExportCancelled(Exception):
    """The job was cancelled (by its user, or by the server stopping)."""


@dataclass
class ExportJob:
    export_id: int
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    proc: ChildProcess | None = None


def copy_into_zip(zf: zipfile.ZipFile, name: str, path: Path) -> tuple[str, int]:
    """Copy the file ``path`` into a new member of ``zf``; (its SHA-256, its size)."""
    digest = hashlib.sha256()
    size = 0
    with zf.open(name, "w", force_zip64=True) as member, path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            member.write(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def camera_file_name(plan: CameraPlan, index: int) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in plan.camera_name)[:60]
    return f"{index + 1:02d}-camera{plan.camera_id}-{safe or 'camera'}.mp4"


async def terminate(job: ExportJob) -> None:
    """Stop the job's ffmpeg, if one is running."""
    if job.proc is not None:
        await job.proc.stop()


class ExportWriter:
    """Writes the files of export jobs into ``folder`` (one writer serves every worker)."""

    def __init__(self, gateway: Gateway, settings: Settings, ffmpeg_exe: str,
                 folder: Path) -> None:
        self.gw = gateway
        self.settings = settings
        self.ffmpeg_exe = ffmpeg_exe
        self.folder = folder

    def _rate(self) -> int:
        return self.settings.export.max_kb_per_s * 1000

    async def _progress(self, export_id: int, fraction: float) -> None:
        await self.gw.write(lambda: m.Export.update(progress=fraction).where(
            m.Export.id == export_id).execute())

    async def single(self, job: ExportJob, plan: CameraPlan, clip: Clip | None, tmp: Path,
                     total_us: int) -> tuple[Path, str, list[Output]]:
        """One camera: its MP4, moved to ``export-<id>.mp4``; (file, SHA-256, outputs)."""
        out = tmp / camera_file_name(plan, 0)
        if clip is not None:
            file_digest, size = await self.copy(
                job, plan, clip.payload_size, total_us, 0,
                lambda progress, cancel: write_clip(
                    clip, out, progress=progress, cancel=cancel,
                    max_bytes_per_s=self._rate()))
        else:
            await self.ffmpeg(job, plan, tmp / "list-0.txt", out, 0, total_us)
            file_digest = await asyncio.to_thread(sha256_file, out)
            size = out.stat().st_size
        final = self.folder / f"export-{job.export_id}.mp4"
        os.replace(out, final)
        return final, file_digest, [(plan, Path(out.name), file_digest, size)]

    async def zip(self, job: ExportJob, plans: list[tuple[CameraPlan, Clip | None]], tmp: Path,
                  total_us: int) -> tuple[Path, str, list[Output]]:
        """Several cameras: one stored ZIP written in one pass, each MP4 copied straight into
        its member; the ZIP and every member are hashed as they are written."""
        partial = tmp / "package.zip"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        sink = HashingWriter(lambda data: write_all(fd, data))
        outputs: list[Output] = []
        try:
            # no tell() on the sink: zipfile streams, with data descriptors
            zf = zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
            done_us = 0
            for i, (plan, clip) in enumerate(plans):
                name = camera_file_name(plan, i)
                if clip is not None:
                    def member(progress: Callable[[int], None], cancel: threading.Event,
                               clip: Clip = clip, name: str = name) -> tuple[str, int]:
                        with zf.open(name, "w", force_zip64=True) as fh:
                            return write_clip_to(clip, fh.write, progress=progress, cancel=cancel,
                                                 max_bytes_per_s=self._rate())
                    digest, size = await self.copy(job, plan, clip.payload_size, total_us,
                                                   done_us, member)
                else:
                    out = tmp / name
                    await self.ffmpeg(job, plan, tmp / f"list-{i}.txt", out, done_us, total_us)
                    digest, size = await asyncio.to_thread(copy_into_zip, zf, name, out)
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

    async def copy(self, job: ExportJob, plan: CameraPlan, payload_bytes: int, total_us: int,
                   done_us: int,
                   copy: Callable[[Callable[[int], None], threading.Event], tuple[str, int]]
                   ) -> tuple[str, int]:
        """Run ``copy(progress, cancel)`` (a direct clip copy) on a thread; progress by bytes."""
        if job.cancel.is_set():
            raise ExportCancelled
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
                await self._progress(job.export_id, min(
                    0.99, (done_us + share * plan.expected_us) / total_us))
            return writer.result()
        except ClipCancelled:
            raise ExportCancelled from None
        except Mp4Error as exc:
            raise ExportError(f"camera {plan.camera_name!r}: {exc}") from None
        finally:
            stop.set()  # also ends the thread when this task itself is cancelled
            watcher.cancel()

    async def ffmpeg(self, job: ExportJob, plan: CameraPlan, list_path: Path, out: Path,
                     done_us: int, total_us: int) -> None:
        if job.cancel.is_set():
            raise ExportCancelled
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

    async def _run_ffmpeg(self, job: ExportJob, plan: CameraPlan, list_path: Path, out: Path,
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
                    await self._progress(job.export_id, min(0.99, fraction))

        async with proc:
            job.proc = proc
            try:
                await read_progress()
                rc = await proc.wait()
            finally:
                job.proc = None
        tail = list(proc.tail)
        if job.cancel.is_set():
            raise ExportCancelled
        if rc != 0:
            # the line naming the cause, when it is the reserve, is what ffmpeg() retries on
            message = next((line for line in tail if MOOV_TOO_SMALL in line),
                           tail[-1] if tail else f"exit code {rc}")
            raise ExportError(f"camera {plan.camera_name!r}: ffmpeg failed: {message}")
