"""A real small file system for tests that fill a disk: a tmpfs mounted in the test's folder (as
root; the test is skipped otherwise), unmounted afterwards, and a ballast file to leave a chosen
number of bytes free on it."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def mounted_tmpfs(folder: Path, size_bytes: int) -> Iterator[Path]:
    """Mount a tmpfs of ``size_bytes`` at ``folder/volume``; skip the test when that is not
    possible (not root, no mount)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; this test fills a real small file system")
    mnt = folder / "volume"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def leave_free(mnt: Path, free_bytes: int) -> None:
    """Size a ballast file (no recording: never indexed, never purged) so that about
    ``free_bytes`` stay free on the file system at ``mnt``."""
    ballast = mnt / "ballast.bin"
    current = ballast.stat().st_size if ballast.exists() else 0
    target = max(0, current + shutil.disk_usage(mnt).free - free_bytes)
    if target < current:
        os.truncate(ballast, target)
    else:
        with ballast.open("ab") as fh:
            fh.write(b"\0" * (target - current))
