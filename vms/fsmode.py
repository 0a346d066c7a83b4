"""File modes: what the server writes — database, keys, recordings, exports — is its user's alone.

Recordings and exports are evidence and the database holds sessions and camera credentials, so
nothing we create may be readable by other users of the machine. The composition root sets the
process umask to :data:`PRIVATE_UMASK` once (ffmpeg and SQLite inherit it for the files they
create); on top of that the folders at the top (``data_dir``, each storage volume) are made or
tightened to 0700 and files we create ourselves are opened 0600, so the rule holds even in a process
that did not set the umask (a test, an embedding program).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def set_private_umask() -> int:
    """Files and folders created from now on by this process and its children get no group or
    other permission bits. Returns the previous umask. For the composition root only."""
    return os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """``path`` as a folder only our user can enter: created 0700 (with any missing parents), or
    tightened to 0700 when it exists with group or other bits (logged). A folder we cannot chmod
    (owned by someone else, e.g. a mount point) is logged and left as it is."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, PRIVATE_DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """``path`` as a file only our user can read: created empty 0600 when absent, tightened to
    0600 when it exists with group or other bits (logged)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    except FileExistsError:
        _tighten(path, PRIVATE_FILE_MODE)
    else:
        os.close(fd)
    return path


def _tighten(path: Path, mode: int) -> None:
    try:
        current = stat.S_IMODE(path.stat().st_mode)
        if current & 0o077:
            path.chmod((current | mode) & 0o700)
            log.warning("%s was readable by other users (mode %04o): now %04o", path, current,
                        stat.S_IMODE(path.stat().st_mode))
    except OSError as exc:
        log.warning("%s: cannot restrict its permissions to our user (%s)", path, exc.strerror)
