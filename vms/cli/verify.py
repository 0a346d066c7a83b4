"""``vms verify`` and ``vms signing-key``: prove an exported clip is the one this server issued.

Part of the composition root (the CLI package; :func:`register` adds the commands). ``vms verify
CLIP`` needs no server and no database — whoever received a clip can run it: it recomputes the
SHA-256 of the clip (and of every MP4 inside a ZIP), compares them with the manifest, and checks
the manifest's Ed25519 signature (vms/signing.py); with ``--key`` (the server's public key, from
``vms signing-key`` or ``GET /api/v1/exports/signing-key``) it also says whether that server
signed it. It then reads each MP4's video frames back (PyAV, vms/coverage.py) and checks that the
manifest does not claim more than the file holds: where the video starts and ends, that every hole
in the frames is a listed gap, that no listed gap holds frames, and that the covered duration
matches. Exit code 0 when everything checked out, 1 otherwise; the report names each problem.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

from vms.cli.common import with_config
from vms.clock import format_iso
from vms.coverage import (
    EDGE_TOLERANCE_US,
    MediaProbeError,
    VideoTimes,
    frame_holes,
    merge,
    probe_video,
    subtract,
    total,
)
from vms.signing import (
    ManifestSigner,
    SigningError,
    check_signature,
    load_public_key,
    sha256_file,
)


def register(sub: Any) -> None:
    """Add ``verify`` and ``signing-key`` to the top-level subparsers."""
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


def _seconds(us: int) -> str:
    return f"{us / 1_000_000:.3f} s"


def coverage_problems(name: str, times: VideoTimes, camera: dict[str, Any]
                      ) -> tuple[list[str], dict[str, Any]]:
    """Does the manifest entry ``camera`` claim more (or less) video than the frames ``times``
    of its MP4 hold? (problems, a summary for the report).

    Tolerances: one ordinary frame interval wherever the frames meet a time the manifest took
    from the index (the clip's end: the last frame may run past the requested end; each edge of
    a listed gap, placed from the index on one side and the frames on the other), plus
    ``EDGE_TOLERANCE_US`` per segment boundary (each segment's start is rounded once to the
    track's timescale). A hole shorter than the tolerances is not a hole (vms/coverage.py)."""
    zero = int(camera["media_time_zero_us"])
    actual_from, actual_to = int(camera["actual"]["from_us"]), int(camera["actual"]["to_us"])
    gaps = [(int(g["start_us"]), int(g["end_us"])) for g in camera.get("gaps", [])]
    listed = merge(gaps)
    frame = times.nominal_us + EDGE_TOLERANCE_US
    boundaries = max(0, int(camera.get("segments", 1)) - 1)
    starts = [zero + t for t in times.starts_us]
    first, end = starts[0], zero + times.end_us
    problems: list[str] = []
    if abs(first - actual_from) > frame:
        problems.append(f"{name}: the video starts at {format_iso(first)}; the manifest says "
                        f"{format_iso(actual_from)}")
    if end < actual_to - frame:
        problems.append(f"{name}: the video ends at {format_iso(end)}, {_seconds(actual_to - end)}"
                        f" before the end the manifest gives ({format_iso(actual_to)})")
    holes = [(zero + a, zero + b) for a, b in frame_holes(times)]
    for a, b in holes:
        unlisted = subtract(a + frame, b - frame, listed)
        if unlisted:
            problems.append(f"{name}: no video from {format_iso(a)} to {format_iso(b)} "
                            f"({_seconds(b - a)}), but the manifest lists no gap there")
    inside = [(a, b) for a, b in listed if b > first and a < end]
    for a, b in inside:
        frames = sum(1 for t in starts if a + frame < t < b - frame)
        if frames:
            problems.append(f"{name}: the manifest lists a gap from {format_iso(a)} to "
                            f"{format_iso(b)}, but the video has {frames} frames there")
    in_file = total(subtract(first, min(end, actual_to), [*holes, *listed]))
    claimed = camera.get("covered_us")
    if claimed is None:  # a manifest from before 'covered' was written: the range minus gaps
        claimed = total(subtract(actual_from, actual_to, listed))
    tolerance = frame * (1 + 2 * len(inside)) + EDGE_TOLERANCE_US * boundaries
    if abs(int(claimed) - in_file) > tolerance:
        problems.append(f"{name}: the manifest says it covers {_seconds(int(claimed))} of video; "
                        f"the file holds {_seconds(in_file)}")
    summary = {"file": name, "manifest_covered_us": int(claimed), "video_covered_us": in_file,
               "video_from_us": first, "video_to_us": end, "holes": len(holes)}
    return problems, summary


def media_problems(clip: Path, manifest: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """Each camera's MP4 (the clip, or its member of the ZIP) read back against the manifest."""
    problems: list[str] = []
    summaries: list[dict[str, Any]] = []
    cameras = [c for c in manifest.get("cameras", []) if isinstance(c, dict)]
    zipped = manifest["file"].get("container") == "zip"
    try:
        with zipfile.ZipFile(clip) if zipped else contextlib.nullcontext() as zf:
            for camera in cameras:
                name = str(camera.get("file") or clip.name)
                try:
                    if zf is not None:
                        with zf.open(name) as member:
                            times = probe_video(member)
                    else:
                        times = probe_video(clip)
                    found, summary = coverage_problems(name, times, camera)
                except MediaProbeError as exc:
                    problems.append(f"{name}: {exc}")
                    continue
                except (KeyError, TypeError, ValueError) as exc:
                    problems.append(f"{name}: the manifest's entry is incomplete ({exc})")
                    continue
                problems += found
                summaries.append(summary)
    except zipfile.BadZipFile as exc:
        problems.append(f"{clip.name}: not a readable ZIP ({exc})")
    return problems, summaries


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
    videos: list[dict[str, Any]] = []
    if not problems:  # the bytes are the ones exported: does the manifest describe them?
        found, videos = media_problems(clip, manifest)
        problems += found
    trusted = load_public_key(key_text) if key_text is not None else None
    check = check_signature(manifest, trusted)
    if check.problem:
        problems.append(check.problem)
    return {"ok": not problems, "clip": str(clip), "manifest": str(manifest_path),
            "sha256": digest, "size_bytes": size, "export_id": manifest.get("export_id"),
            "signature": {"valid": check.valid, "key_id": check.key_id,
                          "trusted_key_matches": check.trusted},
            "videos": videos, "problems": problems}


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
        for video in report["videos"]:
            print(f"video     {video['file']}: {_seconds(video['video_covered_us'])} of video, "
                  f"the manifest says {_seconds(video['manifest_covered_us'])}")
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
