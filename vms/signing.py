"""Signed export manifests: one Ed25519 key per server, so a clip can be proven to be ours.

A manifest's SHA-256 proves a clip matches its manifest, but whoever alters the clip can rewrite
the manifest too. So the server signs every manifest with its own Ed25519 key (created once,
0600, in the data directory beside the camera-credential key) and publishes the public key
(``GET /api/v1/exports/signing-key``, ``vms signing-key``). Anyone holding that public key can
check offline (``vms verify``) that a manifest was issued by this server, unchanged, and that the
clip's bytes are the ones it describes.

What is signed: the manifest without its ``signature`` member, serialised canonically (keys
sorted, no whitespace, UTF-8). The signature carries the algorithm, the public key and its id
(the first 16 hex digits of the SHA-256 of the raw public key) so a verifier can say which key
signed; trust comes only from comparing that key with one obtained from the server.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vms.secrets import private_key_file

KEY_FILE_NAME = "export-signing.key"
ALGORITHM = "Ed25519"


class SigningError(Exception):
    """The signing key cannot be read or a public key given for checking is not one."""


def sha256_file(path: Path) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def canonical(manifest: dict[str, Any]) -> bytes:
    """The bytes that are signed: the manifest minus ``signature``, canonical JSON."""
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key as PEM (what ``vms signing-key`` prints) or base64 of the 32 raw bytes."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise SigningError("the public key is not an Ed25519 key")
            return key
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error) as exc:
        raise SigningError(f"not an Ed25519 public key (PEM or base64): {exc}") from None


def _new_private_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


def _read_private_key(path: Path, pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError as exc:
        raise SigningError(f"{path}: not a PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path}: not an Ed25519 private key")
    return key


class ManifestSigner:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.raw_public = raw_public_key(self.public_key)
        self.key_id = key_id(self.raw_public)

    @classmethod
    def from_key_file(cls, path: Path) -> ManifestSigner:
        """Load the key, creating it (0600) when absent."""
        return cls(_read_private_key(path, private_key_file(path, _new_private_pem)))

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> ManifestSigner:
        return cls.from_key_file(data_dir / KEY_FILE_NAME)

    def public_pem(self) -> str:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def public_info(self) -> dict[str, str]:
        return {"algorithm": ALGORITHM, "key_id": self.key_id,
                "public_key": base64.b64encode(self.raw_public).decode(),
                "public_key_pem": self.public_pem()}

    def sign(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """``manifest`` with a ``signature`` member added (any previous one replaced)."""
        value = self._key.sign(canonical(manifest))
        signed = {k: v for k, v in manifest.items() if k != "signature"}
        signed["signature"] = {"algorithm": ALGORITHM, "key_id": self.key_id,
                               "public_key": base64.b64encode(self.raw_public).decode(),
                               "value": base64.b64encode(value).decode(),
                               "signed": "the manifest without 'signature', JSON with sorted "
                                         "keys and no whitespace, UTF-8"}
        return signed


@dataclass(frozen=True)
class SignatureCheck:
    valid: bool
    """The signature matches the manifest for the key it names."""
    key_id: str
    trusted: bool | None
    """That key is the one given to check against (None: none was given)."""
    problem: str = ""


def check_signature(manifest: dict[str, Any],
                    trusted: Ed25519PublicKey | None = None) -> SignatureCheck:
    sig = manifest.get("signature")
    if not isinstance(sig, dict):
        return SignatureCheck(False, "", None, "the manifest is not signed")
    if sig.get("algorithm") != ALGORITHM:
        return SignatureCheck(False, "", None, f"unknown signature algorithm {sig.get('algorithm')!r}")
    try:
        raw = base64.b64decode(str(sig.get("public_key", "")), validate=True)
        value = base64.b64decode(str(sig.get("value", "")), validate=True)
        public = Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error):
        return SignatureCheck(False, "", None, "the signature's key or value is not valid base64 "
                                               "of an Ed25519 key")
    kid = key_id(raw)
    is_trusted = None if trusted is None else raw_public_key(trusted) == raw
    try:
        public.verify(value, canonical(manifest))
    except InvalidSignature:
        return SignatureCheck(False, kid, is_trusted,
                              "the signature does not match: the manifest was changed after "
                              "it was signed")
    if is_trusted is False:
        return SignatureCheck(True, kid, False, f"signed by key {kid}, not by the key given")
    return SignatureCheck(True, kid, is_trusted)
