"""Camera credentials at rest: Fernet encryption with a key file kept in the data directory.

The key file is created once with mode 0600; losing it makes stored camera passwords unreadable
(cameras then need their credentials entered again), which is the point. Clear passwords live only
in memory, for as long as a request or an ffmpeg stdin script (never an argv) needs them, and are
never logged.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


class SecretError(Exception):
    """A stored secret cannot be read (wrong or missing key file)."""


def private_key_file(path: Path, generate: Callable[[], bytes]) -> bytes:
    """The bytes of the key file ``path``; created once (0600, fsynced) from ``generate()``
    when absent. Shared by the camera-credential key and the export signing key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    data = generate()
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return data


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_key_file(cls, path: Path) -> SecretBox:
        """Load the key, creating it (0600) when absent."""
        key = private_key_file(path, lambda: Fernet.generate_key() + b"\n").strip()
        try:
            return cls(key)
        except ValueError as exc:
            raise SecretError(f"{path}: not a valid key file ({exc})") from None

    def encrypt(self, clear: str) -> str:
        if not clear:
            return ""
        return self._fernet.encrypt(clear.encode()).decode()

    def decrypt(self, token: str) -> str:
        if not token:
            return ""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretError("a stored camera credential cannot be decrypted with this key file") \
                from None
