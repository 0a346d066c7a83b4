"""Export rows and files: who may see an export, its public view, its files and downloads.

Synchronous functions for the gateway (``gw.read``/``gw.write``) and for worker threads. An export
of one camera is ``<data_dir>/exports/export-<id>.mp4``, of several ``export-<id>.zip`` (stored,
one MP4 per camera), with ``export-<id>.manifest.json`` beside it; ``tmp-<id>/`` holds the work
of a running job.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

from recorder.export_plan import ExportError
from vms import audit, catalog
from vms.auth import Principal
from vms.clock import Clock
from vms.db import models as m

STATES = ("queued", "running", "done", "failed", "cancelled", "expired")
FINAL_STATES = frozenset({"done", "failed", "cancelled", "expired"})
"""``expired``: a finished export whose file and manifest retention deleted (``exports_days``)."""


class ExportNotFound(LookupError):
    """No such export, or the asking user may not see it."""


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


def visible_row(principal: Principal | None, export_id: int) -> m.Export:
    """The export row, if ``principal`` (None: the local CLI) may see it: an administrator sees
    every export, anyone else their own of cameras they still may see."""
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


def list_visible(principal: Principal | None, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` exports ``principal`` may see."""
    query = m.Export.select().order_by(m.Export.id.desc())
    if principal is not None and principal.role != "admin":
        query = query.where(m.Export.user == principal.user_id)
    out = []
    for row in query.limit(limit * 2):
        try:
            out.append(export_dict(visible_row(principal, row.id)))
        except ExportNotFound:
            continue
        if len(out) >= limit:
            break
    return out


def export_node(principal: Principal | None, export_id: int) -> str:
    """The node that made the export and keeps its file ('' : a single server). A read."""
    return str(visible_row(principal, export_id).node)


def download(clock: Clock, principal: Principal | None, export_id: int, *, address: str,
             record: bool, username: str, byte_range: str,
             local: bool = True) -> tuple[Path, str]:
    """The finished file (path, download name); an ``export_download`` audit record unless
    ``record`` is false. ``local`` false: the file is on another node (which serves it), so
    it is not looked for here. For ``gw.write``."""
    row = visible_row(principal, export_id)
    if row.state != "done" or not row.path:
        raise ExportError(f"export {export_id} is {row.state}, not done")
    path = Path(row.path)
    if local and not path.is_file():
        raise ExportError(f"the file of export {export_id} is gone from the server")
    if record:
        ids = json.loads(row.camera_ids or "[]")
        cam = m.Camera.get_or_none(m.Camera.id == ids[0]) if ids else None
        audit.record(clock, "export_download", principal=principal,
                     username=username, target=f"export {export_id}",
                     site_id=cam.site_id if cam else None,
                     address=address, detail={"export_id": export_id,
                                              "sha256": row.sha256,
                                              "range": byte_range[:100] or None})
    return path, path.name


def output_paths(folder: Path, export_id: int) -> list[Path]:
    """Every file an export may leave in ``folder``: its MP4 or ZIP, manifest and work folder."""
    return [folder / f"export-{export_id}.{ext}"
            for ext in ("mp4", "zip", "manifest.json")] + [folder / f"tmp-{export_id}"]


def remove_outputs(folder: Path, export_id: int, keep_final: bool = False) -> None:
    """Remove an export's files (with ``keep_final``, only its work folder)."""
    for path in output_paths(folder, export_id):
        if keep_final and not path.name.startswith("tmp-"):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
