"""``vms export``: make an evidence clip from the command line, remotely or locally.

Part of the composition root (the CLI package; :func:`register` adds the command). With ``--server``
it uses the HTTP API (``POST /api/v1/exports``, polls its state, downloads the file and the
manifest next to it, checks the SHA-256, the signature and that the clip's frames are what the
manifest says, as ``vms verify`` does), authenticating with ``--token`` (an API token) or
``--user`` and a password on stdin. Without ``--server`` it runs the same export service locally
against the configured database. A progress bar goes to stderr; ``--json`` prints the result.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from vms.cli.common import with_config

log = logging.getLogger(__name__)

POLL_S = 0.5


class ExportCliError(Exception):
    """Printed as ``vms export: <message>``; exit code 1."""


def register(sub: Any) -> None:
    """Add ``export`` to the top-level subparsers."""
    p = with_config(sub.add_parser("export", help="export recorded video of cameras over a time "
                                                  "range (MP4 + manifest)"))
    p.add_argument("--camera", type=int, action="append", required=True, metavar="ID",
                   help="camera id (repeatable: several cameras make a ZIP of MP4s)")
    p.add_argument("--from", dest="from_", required=True, metavar="T",
                   help="start: ISO-8601 with offset (2026-10-25T02:30:00+02:00) or UTC µs")
    p.add_argument("--to", required=True, metavar="T", help="end, same forms as --from")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="where to write the clip; the manifest goes to FILE.manifest.json")
    p.add_argument("--server", metavar="URL", help="export through this server's HTTP API "
                                                   "(e.g. http://127.0.0.1:8080)")
    p.add_argument("--token", help="API token (from `vms user token`); or $VMS_TOKEN")
    p.add_argument("--user", help="user name (the password is read from stdin or asked for)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--timeout", type=float, default=3600.0, metavar="S",
                   help="give up after this many seconds (default 3600)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    try:
        if args.server:
            result = asyncio.run(_remote(args))
        else:
            result = asyncio.run(_local(args))
    except ExportCliError as exc:
        _clear_bar(args)
        print(f"vms export: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        _clear_bar(args)
        print("vms export: interrupted; the export was cancelled", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(f"{result['file']} ({result['size_bytes']} bytes, sha256 {result['sha256']})")
        print(f"{result['manifest']} (signed, key {result['signing_key_id']}; check with "
              "`vms verify`)")
        for span in result.get("covered", []):
            print(f"video: {span['start_iso']} .. {span['end_iso']}")
        for gap in result.get("gaps", []):
            print(f"gap: {gap['start_iso']} .. {gap['end_iso']} ({gap['reason']})")
    return 0


# --- progress ------------------------------------------------------------------------------

def _bar(args: argparse.Namespace, progress: float, state: str) -> None:
    if args.quiet:
        return
    width = 30
    filled = int(round(max(0.0, min(1.0, progress)) * width))
    sys.stderr.write(f"\r[{'#' * filled}{'-' * (width - filled)}] {progress * 100:5.1f}% {state:9}")
    sys.stderr.flush()


def _clear_bar(args: argparse.Namespace) -> None:
    if not getattr(args, "quiet", True):
        sys.stderr.write("\n")
        sys.stderr.flush()


def _summary(output: Path, manifest_path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    gaps = [g for cam in manifest.get("cameras", []) for g in cam.get("gaps", [])]
    covered = [c for cam in manifest.get("cameras", []) for c in cam.get("covered", [])]
    return {"export_id": manifest.get("export_id"), "file": str(output),
            "manifest": str(manifest_path), "size_bytes": output.stat().st_size,
            "sha256": manifest["file"]["sha256"], "gaps": gaps, "covered": covered,
            "signing_key_id": manifest.get("signature", {}).get("key_id", "")}


def _manifest_path(output: Path) -> Path:
    return output.with_name(output.name + ".manifest.json")


def check_and_write_manifest(output: Path, manifest: dict[str, Any]) -> Path:
    from vms.cli.verify import media_problems
    from vms.signing import check_signature, sha256_file

    actual = sha256_file(output)
    if actual != manifest["file"]["sha256"]:
        raise ExportCliError(f"{output}: SHA-256 {actual} differs from the manifest's "
                             f"{manifest['file']['sha256']}")
    signature = check_signature(manifest)
    if not signature.valid:
        raise ExportCliError(f"{output}: the manifest's signature does not check: "
                             f"{signature.problem}")
    problems, _videos = media_problems(output, manifest)
    if problems:
        raise ExportCliError(f"{output}: the clip is not what its manifest says: "
                             + "; ".join(problems))
    path = _manifest_path(output)
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


# --- remote --------------------------------------------------------------------------------

def _password(args: argparse.Namespace) -> str:
    if args.password_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise ExportCliError("no password on standard input")
        return line
    return getpass.getpass(f"Password for {args.user}: ")


async def _remote(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    base = args.server.rstrip("/")
    output = Path(args.output)
    headers: dict[str, str] = {}
    token = args.token or os.environ.get("VMS_TOKEN", "")
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=120)
    jar = aiohttp.CookieJar(unsafe=True)  # the session cookie of a server addressed by IP
    async with aiohttp.ClientSession(timeout=timeout, cookie_jar=jar) as http:
        async def call(method: str, path: str, **kwargs: Any) -> Any:
            try:
                async with http.request(method, base + path, headers=headers, **kwargs) as resp:
                    data = await resp.json(content_type=None)
                    if resp.status >= 400:
                        message = (data or {}).get("error", {}).get("message", resp.reason)
                        raise ExportCliError(f"{method} {path}: {resp.status} {message}")
                    return data
            except aiohttp.ClientError as exc:
                raise ExportCliError(f"{base}: {exc}") from None

        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif args.user:
            login = await call("POST", "/api/v1/auth/login",
                               json={"username": args.user, "password": _password(args)})
            headers["X-CSRF-Token"] = login["csrf_token"]
        else:
            raise ExportCliError("give --token (or $VMS_TOKEN) or --user with --server")
        created = await call("POST", "/api/v1/exports", json={
            "camera_ids": args.camera, "from": args.from_, "to": args.to})
        export_id = created["id"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + args.timeout
        try:
            while True:
                state = await call("GET", f"/api/v1/exports/{export_id}")
                _bar(args, state["progress"], state["state"])
                if state["state"] in ("done", "failed", "cancelled"):
                    break
                if loop.time() > deadline:
                    raise ExportCliError(f"export {export_id} not finished after "
                                         f"{args.timeout:.0f} s")
                await asyncio.sleep(POLL_S)
        except (asyncio.CancelledError, KeyboardInterrupt, ExportCliError):
            with _suppress_cli():
                await call("POST", f"/api/v1/exports/{export_id}/cancel")
            raise
        _clear_bar(args)
        if state["state"] != "done":
            raise ExportCliError(f"export {export_id} {state['state']}: {state['error']}")
        manifest = await call("GET", f"/api/v1/exports/{export_id}/manifest")
        partial = output.with_name(output.name + ".part")
        try:
            async with http.get(f"{base}/api/v1/exports/{export_id}/file",
                                headers=headers) as resp:
                if resp.status != 200:
                    raise ExportCliError(f"download: {resp.status} {resp.reason}")
                with partial.open("wb") as fh:
                    async for chunk in resp.content.iter_chunked(1 << 20):
                        fh.write(chunk)
        except aiohttp.ClientError as exc:
            raise ExportCliError(f"download: {exc}") from None
        os.replace(partial, output)
    manifest_path = check_and_write_manifest(output, manifest)
    return _summary(output, manifest_path, manifest)


class _suppress_cli:  # noqa: N801 - used like contextlib.suppress
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], ExportCliError)  # type: ignore[arg-type]


# --- local ---------------------------------------------------------------------------------

async def _local(args: argparse.Namespace) -> dict[str, Any]:
    from recorder.export import ExportService
    from recorder.export_plan import ExportError
    from vms.catalog import NotFound
    from vms.clock import SystemClock, parse_instant
    from vms.config import ConfigError, find_config, load_settings
    from vms.db.gateway import DatabaseError, Gateway

    try:
        settings = load_settings(find_config(args.config))
        from_us, to_us = parse_instant(args.from_), parse_instant(args.to)
    except (ConfigError, ValueError) as exc:
        raise ExportCliError(str(exc)) from None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        gateway = Gateway(settings.database_url)
        await asyncio.to_thread(gateway.migrate)
    except DatabaseError as exc:
        raise ExportCliError(str(exc)) from None
    service = ExportService(gateway, settings, SystemClock(), concurrency=1)
    try:
        await service.start()
        try:
            export_id = await service.create(None, args.camera, from_us, to_us,
                                             username=f"cli:{getpass.getuser()}")
        except NotFound as exc:
            raise ExportCliError(str(exc)) from None
        except ExportError as exc:
            raise ExportCliError(str(exc)) from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + args.timeout
        while True:
            state = await service.get(None, export_id)
            _bar(args, state["progress"], state["state"])
            if state["state"] in ("done", "failed", "cancelled"):
                break
            if loop.time() > deadline:
                await service.cancel(None, export_id)
                raise ExportCliError(f"export {export_id} not finished after {args.timeout:.0f} s")
            await asyncio.sleep(POLL_S / 2)
        _clear_bar(args)
        if state["state"] != "done":
            raise ExportCliError(f"export {export_id} {state['state']}: {state['error']}")
        manifest = await service.manifest(None, export_id)
        source, _name = await service.file_for_download(None, export_id,
                                                        username=f"cli:{getpass.getuser()}")
        output = Path(args.output)
        await asyncio.to_thread(shutil.copyfile, source, output)
    finally:
        await service.stop()
        gateway.close()
    manifest_path = check_and_write_manifest(output, manifest)
    return _summary(output, manifest_path, manifest)
