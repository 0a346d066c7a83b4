"""``vms diagnostics [--camera ID] [--output FILE]``: one redacted JSON bundle for a bug report.

Part of the composition root. Modelled on Home Assistant's diagnostics: what a maintainer needs to
understand a report, and nothing a user must keep to themselves. The bundle holds the versions
(vms, Python, the first line of ``ffmpeg -version``, the OS, key libraries), the database engine and
applied migrations, the effective configuration, whether a server runs on the data directory, and
per camera (every camera, or the one given) the stored interrogation results (manufacturer, model,
firmware, streams with their profile tokens and URIs, clock offset, encoder drift), its recording
status, its recent runs with their end reasons, its failed exports and its recent audit entries.
This server keeps no log of raw SOAP traffic, and the bundle says so.

Redaction, in three layers: keys that name a secret (:data:`REDACT_KEYS`) are replaced by
``**REDACTED**`` wherever they appear; every string loses the userinfo of any URL in it
(``rtsp://admin:pw@host`` → ``rtsp://***@host``); and last, every secret this command can know —
each camera's clear password (when the key file reads), the key files themselves, the metrics
token, the database and MQTT URL passwords — is searched for in the finished bundle and replaced.
The command reads only: it creates no key file and applies no migration.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vms.cli.common import settings_of

REDACTED = "**REDACTED**"
REDACT_KEYS = frozenset({
    "password", "password_enc", "password_hash", "username", "token", "token_hash", "csrf_token",
    "metrics_token", "secret", "key", "private_key", "api_key", "authorization",
})
"""Dict keys whose value never leaves the machine (HA's ``async_redact_data``)."""

LIBRARIES = ("aiohttp", "peewee", "peewee-migrate", "psycopg", "av", "onvif-zeep-async", "zeep",
             "lxml", "cryptography", "Jinja2", "prometheus-client", "imageio-ffmpeg", "aiomqtt")
RUNS_PER_CAMERA = 20
AUDIT_PER_CAMERA = 30
EXPORTS_SCANNED = 200
MIN_SECRET_LEN = 4  # shorter values would replace ordinary words; no secret of ours is that short

_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/@\s\"']+@")


def register(sub: Any) -> None:
    """Add ``diagnostics`` to the top-level subparsers."""
    p = sub.add_parser("diagnostics",
                       help="a redacted JSON bundle (versions, config, cameras) for a bug report")
    p.add_argument("--config", metavar="FILE",
                   help="config file (default ./vms.toml, else $VMS_CONFIG)")
    p.add_argument("--camera", type=int, metavar="ID", help="only this camera (default: all)")
    p.add_argument("--output", metavar="FILE",
                   help="write the bundle to FILE (default: print it on standard output)")
    p.add_argument("--json", action="store_true",
                   help="with --output: report what was written as one JSON document")
    p.set_defaults(func=cmd_diagnostics)


def cmd_diagnostics(args: argparse.Namespace) -> int:
    from vms.db.gateway import Gateway

    settings = settings_of(args)
    gateway = Gateway(settings.database_url)
    try:
        gateway.connect_check()
        bundle, secrets = build_bundle(settings, gateway, args.camera)
    except LookupError as exc:
        print(f"vms: {exc}", file=sys.stderr)
        return 2
    finally:
        gateway.close()
    text = json.dumps(scrub(bundle, secrets), ensure_ascii=False, indent=2, sort_keys=False) + "\n"
    if not args.output:
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    out.write_text(text, encoding="utf-8")
    cameras = bundle["cameras"] if isinstance(bundle["cameras"], list) else []
    summary = {"output": str(out), "bytes": len(text.encode()), "cameras": len(cameras)}
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(f"wrote {out} ({summary['bytes']} bytes, {summary['cameras']} camera(s)); "
              "passwords, keys and tokens are redacted — read it before you share it")
    return 0


# --- redaction --------------------------------------------------------------------------------

def strip_userinfo(text: str) -> str:
    """Every URL in ``text`` without its ``user:password@`` part (``***@`` stands in)."""
    return _URL_USERINFO.sub(r"\1***@", text)


def scrub(value: Any, secrets: set[str]) -> Any:
    """``value`` with secret keys redacted, URL userinfo stripped and known secrets replaced."""
    ordered = sorted((s for s in secrets if len(s) >= MIN_SECRET_LEN), key=len, reverse=True)

    def walk(item: Any) -> Any:
        if isinstance(item, dict):
            return {k: (REDACTED if str(k).lower() in REDACT_KEYS and item_set(v) else walk(v))
                    for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [walk(v) for v in item]
        if isinstance(item, str):
            text = strip_userinfo(item)
            for secret in ordered:
                text = text.replace(secret, REDACTED)
            return text
        return item

    return walk(value)


def item_set(value: Any) -> bool:
    """A secret field that is set is redacted; an empty one stays empty (that is a fact too)."""
    return value not in ("", None)


def _url_password(url: str) -> str:
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""


# --- versions and configuration ---------------------------------------------------------------

def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def ffmpeg_version(exe: str) -> str:
    """The first line of ``ffmpeg -version``, or why there is none."""
    try:
        proc = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=15,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"not runnable: {exe}: {exc}"
    lines = proc.stdout.splitlines()
    return lines[0] if lines else f"no output from {exe} -version (exit {proc.returncode})"


def versions(settings: Any) -> dict[str, Any]:
    try:
        exe = settings.ffmpeg_exe()
    except Exception as exc:  # imageio-ffmpeg without a binary: say so, the rest still helps
        exe, line = "", f"no ffmpeg: {exc}"
    else:
        line = ffmpeg_version(exe)
    return {
        "vms": _version("vms") or "unknown (not installed as a distribution)",
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "os": platform.platform(),
        "ffmpeg": line,
        "ffmpeg_path": exe,
        "libraries": {name: _version(name) for name in LIBRARIES},
    }


def config_dict(settings: Any) -> dict[str, Any]:
    """The effective settings as plain JSON; URLs lose their credentials, tokens are redacted."""
    from vms.db.gateway import redact_db_url

    data = json.loads(json.dumps(dataclasses.asdict(settings), default=str))
    data["database"]["url"] = strip_userinfo(redact_db_url(data["database"]["url"]))
    data["database"]["effective_url"] = strip_userinfo(redact_db_url(settings.database_url))
    data["mqtt"]["url"] = strip_userinfo(data["mqtt"]["url"])
    if data["server"]["metrics_token"]:
        data["server"]["metrics_token"] = REDACTED
    return data


def known_secrets(settings: Any) -> set[str]:
    """Secrets of the configuration and the data directory, to be searched for in the bundle."""
    from vms.signing import KEY_FILE_NAME

    found = {settings.server.metrics_token, _url_password(settings.database_url),
             _url_password(settings.mqtt.url)}
    for path in (settings.key_file, settings.data_dir / KEY_FILE_NAME):
        try:
            content = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        found.add(content.strip())
        # a PEM key: each base64 line on its own too
        found.update(line.strip() for line in content.splitlines()
                     if len(line.strip()) >= 16 and not line.startswith("-----"))
    return {s for s in found if s}


# --- the database -----------------------------------------------------------------------------

def _database_facts(is_sqlite: bool) -> dict[str, Any]:
    from vms.db import models as m

    db = m.Camera._meta.database
    facts: dict[str, Any] = {"engine": "sqlite" if is_sqlite else "postgresql"}
    sql = "select sqlite_version()" if is_sqlite else "show server_version"
    facts["server_version"] = str(db.execute_sql(sql).fetchone()[0])
    try:
        rows = db.execute_sql("select name from migratehistory order by id").fetchall()
        facts["migrations_applied"] = [r[0] for r in rows]
    except Exception as exc:  # a database never migrated has no history table
        facts["migrations_applied"] = f"unreadable: {type(exc).__name__}"
    counts = {model.__name__: model.select().count()
              for model in (m.Site, m.User, m.Camera, m.Run, m.Segment, m.Export, m.Hold)}
    facts["rows"] = counts
    return facts


def _camera_facts(camera: Any, box: Any, secrets: set[str]) -> dict[str, Any]:
    from vms.db import models as m

    if box is not None and camera.password_enc:
        try:
            secrets.add(box.decrypt(camera.password_enc))
        except Exception:  # noqa: S110 - an unreadable credential is not shown anyway
            pass
    streams = []
    for s in camera.streams.order_by(m.CameraStream.kind):
        segs = m.Segment.select().where((m.Segment.camera == camera.id) & (m.Segment.stream == s.kind))
        states = Counter(row.state for row in segs.select(m.Segment.state))
        last = segs.order_by(m.Segment.end_us.desc()).first()
        open_run = (m.Run.select().where((m.Run.camera == camera.id) & (m.Run.stream == s.kind)
                                         & m.Run.end_us.is_null()).first())
        streams.append({
            "kind": s.kind, "profile_token": s.profile_token, "rtsp_url": strip_userinfo(s.rtsp_url),
            "codec": s.codec, "width": s.width, "height": s.height, "fps": s.fps,
            "bitrate_kbps": s.bitrate_kbps, "record": s.record,
            "rtsp_transport": s.rtsp_transport or "(config default)",
            "applied": {"width": s.applied_width, "height": s.applied_height, "fps": s.applied_fps,
                        "bitrate_kbps": s.applied_bitrate_kbps, "gov_length": s.applied_gov_length,
                        "at_us": s.applied_us},
            "encoder_drift": s.drift, "encoder_checked_us": s.checked_us,
            "segments": {"count": sum(states.values()), "states": dict(states),
                         "bytes": sum(r.size_bytes for r in segs.select(m.Segment.size_bytes)),
                         "last_end_us": last.end_us if last else None},
            "open_run_id": open_run.id if open_run else None,
        })
    runs = list(m.Run.select().where(m.Run.camera == camera.id)
                .order_by(m.Run.start_us.desc(), m.Run.id.desc()).limit(RUNS_PER_CAMERA))
    site = camera.site
    return {
        "id": camera.id, "name": camera.name, "uuid": camera.uuid,
        "site": {"id": site.id, "name": site.name, "timezone": site.timezone},
        "interrogation": {
            "manufacturer": camera.manufacturer, "model": camera.model,
            "firmware": camera.firmware, "serial": camera.serial, "mac": camera.mac,
            "onvif_url": strip_userinfo(camera.onvif_url),
            "clock_offset_us": camera.clock_offset_us,
            "username": REDACTED if camera.username else "",
            "password": REDACTED if camera.password_enc else "",
        },
        "streams": streams,
        "recording": {
            "status": camera.status, "status_reason": camera.status_reason,
            "status_since_us": camera.status_since_us, "enabled": camera.enabled,
            "mode": camera.recording_mode, "schedule": camera.schedule,
            "event_pre_s": camera.event_pre_s, "event_post_s": camera.event_post_s,
            "archived_us": camera.archived_us,
        },
        "recent_runs": [{"id": r.id, "uuid": r.uuid, "stream": r.stream, "mode": r.mode,
                         "start_us": r.start_us, "end_us": r.end_us,
                         "end_reason": r.end_reason or ("recording" if r.end_us is None else "")}
                        for r in runs],
        "recent_end_reasons": dict(Counter(r.end_reason for r in runs if r.end_us is not None)),
        "failed_exports": _failed_exports(camera.id),
        "recent_audit": _audit_for(camera),
    }


def _failed_exports(camera_id: int) -> list[dict[str, Any]]:
    from vms.db import models as m

    out = []
    for row in (m.Export.select().order_by(m.Export.id.desc()).limit(EXPORTS_SCANNED)):
        try:
            ids = json.loads(row.camera_ids or "[]")
        except ValueError:
            continue
        if camera_id in ids and (row.state == "failed" or row.error):
            out.append({"id": row.id, "state": row.state, "error": row.error,
                        "from_us": row.from_us, "to_us": row.to_us, "created_us": row.created_us})
    return out


def _audit_for(camera: Any) -> list[dict[str, Any]]:
    """Audit entries naming the camera (its name, ``name (address)`` or ``camera ID …``)."""
    from vms.db import models as m

    A = m.AuditLog
    about = (((A.target == camera.name) | A.target.startswith(f"{camera.name} (")) &
             (A.site == camera.site_id)) | A.target.startswith(f"camera {camera.id} ")
    rows = A.select().where(about).order_by(A.at_us.desc(), A.id.desc()).limit(AUDIT_PER_CAMERA)
    out = []
    for r in rows:
        try:
            detail = json.loads(r.detail or "{}")
        except ValueError:
            detail = r.detail
        out.append({"at_us": r.at_us, "action": r.action, "username": r.username,
                    "target": r.target, "outcome": r.outcome, "address": r.address,
                    "detail": detail})
    return out


def _cameras(camera_id: int | None, box: Any, secrets: set[str]) -> list[dict[str, Any]]:
    from vms.db import models as m

    query = m.Camera.select().order_by(m.Camera.id)
    if camera_id is not None:
        query = query.where(m.Camera.id == camera_id)
    cameras = list(query)
    if camera_id is not None and not cameras:
        raise LookupError(f"no camera {camera_id} (vms camera list shows the ids)")
    return [_camera_facts(c, box, secrets) for c in cameras]


def _read(gateway: Any, fn: Any, *args: Any) -> Any:
    """``fn`` on the database; when the database cannot answer (not migrated, broken: perhaps
    the very bug being reported), the error in its place — the rest of the bundle still helps."""
    import peewee as pw

    try:
        return gateway.read_sync(fn, *args)
    except pw.DatabaseError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def build_bundle(settings: Any, gateway: Any,
                 camera_id: int | None) -> tuple[dict[str, Any], set[str]]:
    """The bundle before :func:`scrub`, and the secrets found on the way (for :func:`scrub`)."""
    from recorder.lock import is_locked
    from vms.clock import SystemClock, format_iso
    from vms.secrets import SecretBox

    secrets = known_secrets(settings)
    box = None
    if settings.key_file.is_file():
        try:
            box = SecretBox(settings.key_file.read_bytes().strip())
        except ValueError:
            box = None
    now_us = SystemClock().now_us()
    database = _read(gateway, _database_facts, gateway.is_sqlite)
    cameras = _read(gateway, _cameras, camera_id, box, secrets)
    bundle: dict[str, Any] = {
        "bundle": {"format": 1, "created_us": now_us, "created": format_iso(now_us),
                   "camera": camera_id, "redaction": "passwords, keys, tokens, camera usernames "
                   f"and URL credentials are replaced by {REDACTED}"},
        "versions": versions(settings),
        "database": database,
        "config": config_dict(settings),
        "server_running": is_locked(settings.data_dir),
        "environment": sorted(k for k in os.environ if k.startswith("VMS_")),
        "cameras": cameras,
        "raw_soap": {"available": False,
                     "note": "this server keeps no log of raw SOAP traffic"},
    }
    return bundle, secrets
