"""The manifest of a finished export: what was asked, what the file holds, who made it.

For each camera: its site and time zone, the requested and actual ranges, the wall ranges the MP4
really covers and the gaps with their reasons (from the frames written, never from the index alone:
:mod:`recorder.export_coverage`), codecs, size and SHA-256 of its file; for the whole export: the
file (MP4 or ZIP) with its size and SHA-256, who exported it and when, the server version. The
export service signs it (:mod:`vms.signing`) and writes it beside the file.
"""

from __future__ import annotations

import asyncio
import json
from importlib import metadata
from pathlib import Path
from typing import Any

from recorder.export_plan import CameraPlan
from vms.clock import Clock, format_iso
from vms.coverage import total
from vms.db import models as m
from vms.db.gateway import Gateway

Output = tuple[CameraPlan, Path, str, int]
"""One camera's file in an export: (plan, file name, SHA-256, size in bytes)."""

NOTES = ("Stream copy, no transcoding. Each MP4 starts at the keyframe at or before "
         "the requested start; media time t is the wall instant "
         "media_time_zero_us + t (gaps keep their length: the last frame before "
         "a gap is held). 'covered' lists the wall ranges the MP4 holds video "
         "for, read from the frames written; every other part of the requested "
         "range is a gap with its reason.")


def server_version() -> str:
    try:
        return metadata.version("vms")
    except metadata.PackageNotFoundError:  # pragma: no cover - always installed here
        return "unknown"


def iso_pair(from_us: int, to_us: int, tz: str) -> dict[str, Any]:
    return {"from_us": from_us, "to_us": to_us, "from_iso": format_iso(from_us, tz),
            "to_iso": format_iso(to_us, tz)}


def camera_entry(row: m.Export, plan: CameraPlan, path: Path, digest: str,
                 size: int) -> dict[str, Any]:
    tz = plan.timezone
    return {
        "id": plan.camera_id, "name": plan.camera_name,
        "site": {"id": plan.site_id, "name": plan.site_name, "timezone": tz},
        "file": path.name, "size_bytes": size, "sha256": digest,
        "requested": iso_pair(row.from_us, row.to_us, tz),
        "actual": iso_pair(plan.actual_from_us, plan.actual_to_us, tz),
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
    }


async def build_manifest(gw: Gateway, clock: Clock, row: m.Export, outputs: list[Output],
                         final: Path, file_digest: str) -> dict[str, Any]:
    """The (unsigned) manifest of export ``row`` whose file ``final`` is written."""
    exported_by = json.loads(row.manifest or "{}").get("exported_by", {})
    if row.user_id is not None:
        user = await gw.read(lambda: m.User.get_or_none(m.User.id == row.user_id))
        if user is not None:
            exported_by = {"user_id": user.id, "username": user.username, "role": user.role}
    finished = clock.now_us()
    cameras = [camera_entry(row, plan, path, digest, size)
               for plan, path, digest, size in outputs]
    tz0 = outputs[0][0].timezone
    size_bytes = (await asyncio.to_thread(final.stat)).st_size
    return {
        "format": "vms-export-manifest/1",
        "export_id": row.id,
        "server": {"name": "vms", "version": server_version()},
        "exported_by": exported_by,
        "created_us": row.created_us, "created_iso": format_iso(row.created_us, tz0),
        "finished_us": finished, "finished_iso": format_iso(finished, tz0),
        "requested": iso_pair(row.from_us, row.to_us, tz0),
        "file": {"name": final.name, "container": final.suffix.lstrip("."),
                 "size_bytes": size_bytes, "sha256": file_digest},
        "cameras": cameras,
        "notes": NOTES,
    }
