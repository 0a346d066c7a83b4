"""Optional TLS: with a certificate and key in the config, ``vms serve`` speaks HTTPS only and the
session cookie is marked Secure."""

from __future__ import annotations

import datetime
import json
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.core.test_serve import free_port


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.slow
def test_https_with_secure_session_cookie(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    config = tmp_path / "vms.toml"
    config.write_text(f'data_dir = "data"\n[server]\nport = {port}\ntls_cert = "{cert}"\n'
                      f'tls_key = "{key}"\n')
    subprocess.run([sys.executable, "-m", "vms.cli", "user", "add", "admin", "--admin",
                    "--password-stdin", "--config", str(config)],
                   input="tls-admin-pass-1\n", text=True, check=True, capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "vms.cli", "serve", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=2,
                                            context=context) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("TLS server did not come up") from None
                time.sleep(0.2)
        request = urllib.request.Request(
            f"https://127.0.0.1:{port}/api/v1/auth/login",
            data=json.dumps({"username": "admin", "password": "tls-admin-pass-1"}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5, context=context) as resp:
            cookie = resp.headers["Set-Cookie"]
        assert "vms_session=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
        # plain HTTP on the same port is not served
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3)
            raise AssertionError("plain HTTP answered on the TLS port")
        except (OSError, urllib.error.URLError):
            pass
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
