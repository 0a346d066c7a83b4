"""Signed manifests: every export's manifest is signed with the server's Ed25519 key, the key is
published, and ``vms verify`` proves a clip unaltered offline — or names what was altered."""

from __future__ import annotations

import asyncio
import json
import stat
import sys
from pathlib import Path

import pytest

from tests.export.conftest import BASE_US, ExportWorld
from vms.signing import ManifestSigner, SigningError, check_signature, load_public_key
from web.keys import SETTINGS


def test_key_file_is_private_reused_and_signatures_check(tmp_path: Path) -> None:
    signer = ManifestSigner.for_data_dir(tmp_path)
    key_file = tmp_path / "export-signing.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = ManifestSigner.for_data_dir(tmp_path)
    assert again.key_id == signer.key_id
    manifest = {"export_id": 7, "file": {"sha256": "ab" * 32}, "cameras": [{"name": "Двор"}]}
    signed = signer.sign(manifest)
    assert check_signature(signed).valid
    trusted = load_public_key(signer.public_pem())
    assert check_signature(signed, trusted).trusted is True
    other = ManifestSigner.for_data_dir(tmp_path / "other")
    verdict = check_signature(signed, load_public_key(other.public_info()["public_key"]))
    assert verdict.valid and verdict.trusted is False and "not by the key given" in verdict.problem
    tampered = json.loads(json.dumps(signed))
    tampered["cameras"][0]["name"] = "Yard"
    verdict = check_signature(tampered)
    assert not verdict.valid and "changed after it was signed" in verdict.problem
    assert "not signed" in check_signature(manifest).problem
    # re-signing by someone else's key is visible: the key id changes
    assert check_signature(other.sign(tampered)).key_id != signer.key_id


def test_bad_keys_are_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(SigningError, match="not an Ed25519 public key"):
        load_public_key("not a key")
    bad = tmp_path / "export-signing.key"
    bad.write_text("garbage")
    with pytest.raises(SigningError, match="not a PEM private key"):
        ManifestSigner.for_data_dir(tmp_path)


async def run_vms(*argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vms", *argv, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.engines("sqlite")  # files and keys; exports' rows are tested on both in test_export_api
async def test_exports_are_signed_and_verified_offline(xworld: ExportWorld,
                                                       tmp_path: Path) -> None:
    headers = await xworld.login("operator1")
    key = await (await xworld.client.get("/api/v1/exports/signing-key")).json()
    assert key["algorithm"] == "Ed25519" and key["public_key_pem"].startswith("-----BEGIN")
    pem = await xworld.client.get("/api/v1/exports/signing-key?format=pem")
    assert pem.status == 200 and await pem.text() == key["public_key_pem"]
    assert key["key_id"] in pem.headers["Content-Disposition"]
    assert (await xworld.client.get("/api/v1/exports/signing-key?format=xml")).status == 400
    page = await (await xworld.client.get("/exports")).text()
    assert key["key_id"] in page and "signing-key?format=pem" in page
    ids = []
    for cameras in ([xworld.cam_a], [xworld.cam_a, xworld.cam_a2]):
        resp = await xworld.client.post("/api/v1/exports", headers=headers, json={
            "camera_ids": cameras, "from": BASE_US + 1_000_000, "to": BASE_US + 6_000_000})
        assert resp.status == 201, await resp.text()
        ids.append((await resp.json())["id"])
    for export_id in ids:
        state = await xworld.service.wait(export_id, 60)
        assert state["state"] == "done", state
    exports = xworld.app[SETTINGS].data_dir / "exports"
    key_file = tmp_path / "server.pub"
    key_file.write_text(key["public_key_pem"])

    for export_id, suffix in zip(ids, ("mp4", "zip"), strict=True):
        manifest = await (await xworld.client.get(f"/api/v1/exports/{export_id}/manifest")).json()
        assert manifest["signature"]["key_id"] == key["key_id"]
        clip = exports / f"export-{export_id}.{suffix}"
        rc, out, err = await run_vms("verify", str(clip), "--key", str(key_file), "--json")
        report = json.loads(out)
        assert rc == 0 and report["ok"], (out, err)
        assert report["signature"] == {"valid": True, "key_id": key["key_id"],
                                       "trusted_key_matches": True}

    # one byte of the clip changed: the hash names it
    mp4 = exports / f"export-{ids[0]}.mp4"
    altered = tmp_path / "altered.mp4"
    data = bytearray(mp4.read_bytes())
    data[len(data) // 2] ^= 0xFF
    altered.write_bytes(bytes(data))
    rc, out, _ = await run_vms("verify", str(altered), "--manifest",
                               str(exports / f"export-{ids[0]}.manifest.json"))
    assert rc == 1 and "the clip is not the one exported" in out and "FAILED" in out

    # the manifest's hash rewritten to match the altered clip: the signature no longer matches
    import hashlib

    manifest = json.loads((exports / f"export-{ids[0]}.manifest.json").read_text())
    manifest["file"]["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    forged = tmp_path / "altered.mp4.manifest.json"
    forged.write_text(json.dumps(manifest))
    rc, out, _ = await run_vms("verify", str(altered), "--json")
    report = json.loads(out)
    assert rc == 1 and report["signature"]["valid"] is False
    assert any("changed after it was signed" in p for p in report["problems"])

    rc, _, err = await run_vms("verify", str(tmp_path / "missing.mp4"))
    assert rc == 2 and "no such file" in err


def test_vms_export_refuses_a_download_whose_manifest_was_altered(tmp_path: Path) -> None:
    """The check ``vms export --server`` runs on what it downloaded: a manifest whose hash matches
    the clip but whose signature does not (rewritten after signing) is refused."""
    import hashlib

    from vms.cli.export import ExportCliError, check_and_write_manifest

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not really a clip, but bytes with a hash")
    signer = ManifestSigner.for_data_dir(tmp_path / "server")
    manifest = signer.sign({"export_id": 3, "file": {
        "sha256": hashlib.sha256(clip.read_bytes()).hexdigest(), "size_bytes": 40}})
    assert check_and_write_manifest(clip, manifest).is_file()
    manifest["export_id"] = 4
    with pytest.raises(ExportCliError, match="signature does not check"):
        check_and_write_manifest(clip, manifest)
