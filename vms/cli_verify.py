"""``vms verify`` and ``vms signing-key``: prove an exported clip is the one this server issued.

Part of the composition root (registered by :mod:`vms.cli`). ``vms verify CLIP`` needs no server
and no database — whoever received a clip can run it: it recomputes the SHA-256 of the clip (and
of every MP4 inside a ZIP), compares them with the manifest, and checks the manifest's Ed25519
signature (vms/signing.py); with ``--key`` (the server's public key, from ``vms signing-key`` or
``GET /api/v1/exports/signing-key``) it also says whether that server signed it. Exit code 0 when
everything checked out, 1 otherwise; the report names each problem.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

from vms.signing import (
    ManifestSigner,
    SigningError,
    check_signature,
    load_public_key,
    sha256_file,
)


def register(sub: Any, with_config: Any) -> None:
    p = sub.add_parser("verify", help="check an exported clip against its signed manifest "
                                      "(offline)")
    p.add_argument("clip", metavar="CLIP", help="the exported MP4 or ZIP")
    p.add_argument("--manifest", metavar="FILE",
                   help="its manifest (default: CLIP.manifest.json, else export-N.manifest.json "
                        "beside it)")
    p.add_argument("--key", metavar="FILE",
                   help="the server's public key (PEM or base64) to trust; without it the "
                        "signature is checked against the key the manifest names")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=cmd_verify)

    p = with_config(sub.add_parser("signing-key", help="print this server's public key for "
                                                       "checking export manifests"))
    p.add_argument("--json", action="store_true", help="key id and key as JSON")
    p.set_defaults(func=cmd_signing_key)


def _manifest_for(clip: Path, given: str | None) -> Path:
    if given:
        return Path(given)
    beside = clip.with_name(clip.name + ".manifest.json")
    if beside.is_file():
        return beside
    return clip.with_name(clip.stem + ".manifest.json")  # the server's own layout


def _zip_members(clip: Path, manifest: dict[str, Any]) -> list[str]:
    """Problems with the MP4s inside a ZIP export, checked against the per-camera hashes."""
    problems = []
    expected = {c.get("file"): c.get("sha256") for c in manifest.get("cameras", [])}
    try:
        with zipfile.ZipFile(clip) as zf:
            names = set(zf.namelist())
            for name, digest in expected.items():
                if name not in names:
                    problems.append(f"{name}: missing from the ZIP")
                    continue
                h = hashlib.sha256()
                with zf.open(name) as fh:
                    while chunk := fh.read(1 << 20):
                        h.update(chunk)
                if h.hexdigest() != digest:
                    problems.append(f"{name}: SHA-256 {h.hexdigest()} differs from the "
                                    f"manifest's {digest}")
            for extra in sorted(names - set(expected)):
                problems.append(f"{extra}: in the ZIP but not in the manifest")
    except zipfile.BadZipFile as exc:
        problems.append(f"{clip.name}: not a readable ZIP ({exc})")
    return problems


def verify(clip: Path, manifest_path: Path, key_text: str | None = None) -> dict[str, Any]:
    """The report ``vms verify`` prints: ``ok`` and the ``problems`` found."""
    problems: list[str] = []
    manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
    if not isinstance(manifest, dict) or not isinstance(manifest.get("file"), dict):
        raise SigningError(f"{manifest_path}: not an export manifest")
    file_info = manifest["file"]
    digest = sha256_file(clip)
    size = clip.stat().st_size
    if digest != file_info.get("sha256"):
        problems.append(f"{clip.name}: SHA-256 {digest} differs from the manifest's "
                        f"{file_info.get('sha256')}: the clip is not the one exported")
    if size != file_info.get("size_bytes"):
        problems.append(f"{clip.name}: {size} bytes, the manifest says "
                        f"{file_info.get('size_bytes')}")
    if file_info.get("container") == "zip" and not problems:
        problems += _zip_members(clip, manifest)
    trusted = load_public_key(key_text) if key_text is not None else None
    check = check_signature(manifest, trusted)
    if check.problem:
        problems.append(check.problem)
    return {"ok": not problems, "clip": str(clip), "manifest": str(manifest_path),
            "sha256": digest, "size_bytes": size, "export_id": manifest.get("export_id"),
            "signature": {"valid": check.valid, "key_id": check.key_id,
                          "trusted_key_matches": check.trusted},
            "problems": problems}


def cmd_verify(args: argparse.Namespace) -> int:
    clip = Path(args.clip)
    manifest_path = _manifest_for(clip, args.manifest)
    try:
        key_text = Path(args.key).read_text(encoding="utf-8") if args.key else None
        report = verify(clip, manifest_path, key_text)
    except FileNotFoundError as exc:
        print(f"vms verify: {exc.filename}: no such file", file=sys.stderr)
        return 2
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        print(f"vms verify: {manifest_path}: not JSON ({exc})", file=sys.stderr)
        return 2
    except SigningError as exc:
        print(f"vms verify: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        sig = report["signature"]
        trust = {True: "the key given", False: "NOT the key given",
                 None: "the key in the manifest (pass --key to check it is the server's)"}
        print(f"clip      {clip} ({report['size_bytes']} bytes)\n"
              f"sha256    {report['sha256']}\n"
              f"signature {'valid' if sig['valid'] else 'INVALID'}, key {sig['key_id'] or '-'}: "
              f"{trust[sig['trusted_key_matches']]}")
        for problem in report["problems"]:
            print(f"problem   {problem}")
        print("verdict   " + ("OK: the clip is unaltered and its manifest is signed"
                              if report["ok"] else "FAILED"))
    return 0 if report["ok"] else 1


def cmd_signing_key(args: argparse.Namespace) -> int:
    from vms.config import find_config, load_settings

    settings = load_settings(find_config(args.config))
    signer = ManifestSigner.for_data_dir(settings.data_dir)
    if args.json:
        print(json.dumps(signer.public_info()))
    else:
        print(f"# export signing key {signer.key_id} (Ed25519)")
        print(signer.public_pem(), end="")
    return 0
