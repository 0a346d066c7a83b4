"""Child processes (ffmpeg): one way to start, watch and stop them, and to keep secrets out of argv.

This module owns the life of every child process the server starts (the recorder's, live view's,
export's and the RTSP snapshot's ffmpeg): :class:`ChildProcess` starts an argv list with
:func:`asyncio.create_subprocess_exec` (never a shell), writes its optional stdin bytes and closes
stdin, drains stderr continuously into a bounded, redacted tail (and, when asked, stdout line by
line), and stops it: SIGTERM, wait with a timeout, SIGKILL; the owner always awaits the exit.

Parent death without ``preexec_fn`` (unsafe in a threaded process): on Linux the child is started
through a tiny exec wrapper, a fresh single-threaded ``python -I -S -c`` that sets
``PR_SET_PDEATHSIG=SIGKILL``, checks that its parent is still the server (the race where the server
dies before the ``prctl``) and ``execv``\\ s the real program, which keeps the same pid. Each child
also gets its own process group (``process_group=0``, done by the stdlib without Python code in
the child), so a terminal's Ctrl-C reaches only the server, whose orderly stop ends the children.

Credentials never enter an argv (``/proc/PID/cmdline`` is readable by every local user):
:func:`ffmpeg_input` turns a camera URL and its credentials into ffmpeg input arguments that read a
one-entry ``ffconcat`` script from stdin (``-f concat -safe 0 -protocol_whitelist … -i pipe:0``);
the credentialed URL is only in that script, i.e. in a pipe only we and the child hold. See
docs/design/recording.md, "Process supervision and credentials".
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import os
import shutil
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import quote

from vms.logs import redact
from vms.urls import credentialed_url

log = logging.getLogger(__name__)

TAIL_LINES = 30
READ_CHUNK_BYTES = 65536
STOP_TIMEOUT_S = 5.0

PDEATHSIG_WRAPPER = (
    "import ctypes,os,sys\n"
    "ctypes.CDLL(None,use_errno=True).prctl(1,9,0,0,0)\n"  # PR_SET_PDEATHSIG, SIGKILL
    "if os.getppid()!=int(sys.argv[1]):os._exit(70)\n"  # the server died before the prctl
    "try:os.execv(sys.argv[2],sys.argv[2:])\n"
    "except OSError as e:sys.stderr.write(f'cannot run {sys.argv[2]}: {e.strerror}\\n');"
    "os._exit(127)\n"
)
"""Run as ``python -I -S -c PDEATHSIG_WRAPPER <server pid> <program> <args…>``: a fresh process,
so the ``prctl`` is safe; the signal survives ``execv`` and follows the thread that forked the
wrapper, i.e. the event-loop thread."""


def _use_wrapper() -> bool:
    return sys.platform.startswith("linux") and bool(sys.executable)


def resolve_program(program: str) -> str:
    """The absolute path ``execv`` will run; :class:`FileNotFoundError` (or
    :class:`PermissionError`) naming it, as exec itself would raise, when it cannot be run."""
    found = shutil.which(program)
    if found is None:
        if os.sep in program and os.path.exists(program):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    return os.path.abspath(found)


async def iter_lines(stream: asyncio.StreamReader) -> AsyncIterator[list[bytes]]:
    """Complete lines (without ``\\n``), a batch per read: one await per chunk, not per line (a
    progress block of ~12 lines arrives in one write; per-line reads cost CPU)."""
    pending = b""
    while True:
        chunk = await stream.read(READ_CHUNK_BYTES)
        if not chunk:
            if pending:
                yield [pending]
            return
        *lines, pending = (pending + chunk).split(b"\n")
        if lines:
            yield lines


class ChildProcess:
    """One child process, from start to awaited exit.

    ``stdin``: bytes written to the child's stdin, which is then closed (None: /dev/null).
    ``stdout``: piped when True; with ``on_stdout_line`` this object reads it (one call per line),
    otherwise the owner reads :attr:`stdout`. stderr is always drained here: each line goes first to
    ``on_stderr_line`` (which returns True when it consumed it, e.g. a progress key), otherwise it
    is redacted (``secrets`` and :func:`vms.logs.redact`), kept in :attr:`tail` and logged at debug
    level unless it contains one of ``quiet``.
    """

    def __init__(self, argv: Sequence[str], *, name: str, stdin: bytes | None = None,
                 stdout: bool = True,
                 on_stdout_line: Callable[[bytes], None] | None = None,
                 on_stderr_line: Callable[[bytes], bool] | None = None,
                 secrets: Iterable[str] = (), quiet: tuple[str, ...] = (),
                 tail: collections.deque[str] | None = None,
                 stop_timeout_s: float = STOP_TIMEOUT_S, pass_fds: tuple[int, ...] = ()) -> None:
        self.argv = list(argv)
        self._pass_fds = pass_fds
        """Further descriptors the child inherits (e.g. the write end of a pipe ffmpeg writes
        a second output to, ``pipe:N``); the owner closes its copies after :meth:`start`."""
        self.name = name
        self._stdin = stdin
        self._pipe_stdout = stdout
        self._on_stdout_line = on_stdout_line
        self._on_stderr_line = on_stderr_line
        self._secrets = tuple(sorted((s for s in secrets if s), key=len, reverse=True))
        self._quiet = quiet
        self.stop_timeout_s = stop_timeout_s
        self.tail: collections.deque[str] = (
            tail if tail is not None else collections.deque(maxlen=TAIL_LINES))
        self.proc: asyncio.subprocess.Process | None = None
        self.stopping = False
        """:meth:`terminate` (or :meth:`stop`) was called."""
        self.killed_by_us = False
        self._readers: list[asyncio.Task[None]] = []

    # -- start -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the child. Raises :class:`OSError` when the program cannot be run."""
        program = resolve_program(self.argv[0])
        argv = [program, *self.argv[1:]]
        if _use_wrapper():
            argv = [sys.executable, "-I", "-S", "-c", PDEATHSIG_WRAPPER, str(os.getpid()), *argv]
        pipe = asyncio.subprocess.PIPE
        self.proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=pipe if self._stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=pipe if self._pipe_stdout else asyncio.subprocess.DEVNULL,
            stderr=pipe,
            process_group=0,
            pass_fds=self._pass_fds,
        )
        if self._stdin is not None:
            assert self.proc.stdin is not None
            with contextlib.suppress(ConnectionError):  # the child exited at once: its stderr says why
                self.proc.stdin.write(self._stdin)
            self.proc.stdin.close()
        self._readers.append(asyncio.create_task(self._read_stderr(), name=f"{self.name}-stderr"))
        if self._pipe_stdout and self._on_stdout_line is not None:
            self._readers.append(asyncio.create_task(self._read_stdout(),
                                                     name=f"{self.name}-stdout"))

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    @property
    def stdout(self) -> asyncio.StreamReader:
        """The child's stdout, for an owner that reads it itself."""
        assert self.proc is not None and self.proc.stdout is not None
        return self.proc.stdout

    # -- output ----------------------------------------------------------------------------------

    async def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        assert self._on_stdout_line is not None
        async for batch in iter_lines(self.proc.stdout):
            for raw in batch:
                self._on_stdout_line(raw)

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for batch in iter_lines(self.proc.stderr):
            for raw in batch:
                if self._on_stderr_line is not None and self._on_stderr_line(raw):
                    continue
                self.keep_line(raw.decode("utf-8", "replace").strip())

    def scrub(self, text: str) -> str:
        """``text`` with every credentialed URL's password and every secret of this child
        replaced by ``***``."""
        text = redact(text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def keep_line(self, line: str) -> None:
        """Add a line to the tail (redacted), and log it at debug level unless it is quiet."""
        if not line:
            return
        clean = self.scrub(line)
        self.tail.append(clean)
        if not any(q in clean for q in self._quiet):
            log.debug("%s: %s", self.name, clean)

    def tail_text(self) -> str:
        return "\n".join(self.tail)

    # -- stop ------------------------------------------------------------------------------------

    async def wait(self) -> int:
        """Wait for the exit and for the pipes this object reads to be drained; the exit code."""
        assert self.proc is not None
        rc = await self.proc.wait()
        if self._readers:  # asyncio.wait: a cancelled waiter does not cancel the readers
            await asyncio.wait(self._readers)
            for task in self._readers:
                if not task.cancelled() and task.exception() is not None:
                    log.error("%s: reading its output failed: %r", self.name, task.exception())
            self._readers = []
        return rc

    def terminate(self) -> None:
        """SIGTERM without waiting; the owner awaits the exit (and kills if it does not come)."""
        self.stopping = True
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()

    def kill(self) -> None:
        self.killed_by_us = True
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def stop(self, timeout_s: float | None = None) -> int:
        """Terminate, wait up to ``timeout_s`` (default: the constructor's), kill; returns the exit
        code once it has exited. Cancelled meanwhile, it kills the child before giving up."""
        assert self.proc is not None
        timeout_s = self.stop_timeout_s if timeout_s is None else timeout_s
        self.stopping = True
        if self.proc.returncode is None:
            self.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), timeout_s)
            except TimeoutError:
                log.warning("%s: did not exit %.1fs after SIGTERM; killing", self.name, timeout_s)
                self.kill()
            except asyncio.CancelledError:
                self.kill()  # never left running; the child watcher reaps it
                raise
        return await self.wait()

    async def __aenter__(self) -> ChildProcess:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self.proc is not None:
            await self.stop()


# -- ffmpeg input without credentials in the argv -------------------------------------------------

CONCAT_PROTOCOLS = "pipe,rtsp,rtsps,rtp,srtp,tcp,udp,tls"
"""What the concat demuxer may open: the script on stdin and RTSP's own protocols (no ``file``)."""
SCRIPTED_SCHEMES = ("rtsp://", "rtsps://")


def _ffconcat_quote(value: str) -> str:
    """A token for an ffconcat line: single-quoted, ``'`` as ``'\\''``; control characters (which a
    URL cannot contain raw and which would end the line) percent-encoded."""
    safe = "".join(quote(ch, safe="") if ord(ch) < 0x20 or ord(ch) == 0x7F else ch
                   for ch in value)
    return "'" + safe.replace("'", "'\\''") + "'"


@dataclass(frozen=True)
class FfmpegInput:
    """One ffmpeg input: ``options`` then ``-i url``, and the bytes to write to ffmpeg's stdin."""

    url: str
    """What follows ``-i``: ``pipe:0`` (the script on stdin) or the plain URL or path."""
    options: dict[str, str | None]
    """Input options before ``-i`` (a None value is a flag without argument)."""
    shown: str = ""
    """The source as it may be logged: the URL with the user name and ``***`` for a password."""
    stdin: bytes | None = field(default=None, repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)
    """The forms of the password ffmpeg may print (raw, percent-encoded): scrub them."""

    def args(self) -> list[str]:
        out: list[str] = []
        for key, value in self.options.items():
            out.append(f"-{key}")
            if value is not None:
                out.append(value)
        return [*out, "-i", self.url]


def ffmpeg_input(url: str, username: str = "", password: str = "",
                 demuxer_options: dict[str, str] | None = None) -> FfmpegInput:
    """How ffmpeg reads ``url`` with these credentials, the credentials in no argv.

    An ``rtsp://``/``rtsps://`` URL (with or without credentials: some cameras put them in the
    query) becomes a one-entry ffconcat script on stdin, with ``demuxer_options`` as its
    ``option`` lines (so they reach the RTSP demuxer); any other input (a file, for development)
    is read directly with ``demuxer_options`` before ``-i``.
    """
    opts = dict(demuxer_options or {})
    if not url.startswith(SCRIPTED_SCHEMES):
        flags: dict[str, str | None] = dict(opts)
        return FfmpegInput(url, flags, redact(url))
    full = credentialed_url(url, username, password)
    shown = redact(credentialed_url(url, username, "***" if password else ""))
    lines = ["ffconcat version 1.0", f"file {_ffconcat_quote(full)}"]
    lines += [f"option {key} {_ffconcat_quote(value)}" for key, value in opts.items()]
    secrets = (password, quote(password, safe="")) if password else ()
    return FfmpegInput("pipe:0", {"f": "concat", "safe": "0",
                                  "protocol_whitelist": CONCAT_PROTOCOLS},
                       shown, ("\n".join(lines) + "\n").encode("utf-8"), secrets)
