"""vms.proc: the one child-process helper (real processes, real ffmpeg, a camsim RTSP server)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from camsim.media import ClipSpec
from camsim.rtsp import RtspServer
from onvif_bridge.rtsp_frame import grab_jpeg
from tests.leakcheck import register_sensitive
from vms.proc import TAIL_LINES, ChildProcess, ffmpeg_input

OWNER = textwrap.dedent('''
    import asyncio, sys
    from vms.proc import ChildProcess

    async def main():
        child = ChildProcess([sys.executable, "-c", "import time; time.sleep(60)"], name="sleeper")
        await child.start()
        print(child.pid, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
''')


REPO = Path(__file__).resolve().parents[2]


def _cmdline(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
async def test_a_child_dies_with_its_owner_and_has_its_own_process_group(tmp_path: Path) -> None:
    """kill -9 of the owner: the kernel kills the child (set by the exec wrapper, not by a
    preexec_fn); the child is the leader of its own process group (no terminal Ctrl-C)."""
    script = tmp_path / "owner.py"
    script.write_text(OWNER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    owner = await asyncio.create_subprocess_exec(sys.executable, str(script), env=env,
                                                 stdout=asyncio.subprocess.PIPE)
    try:
        assert owner.stdout is not None
        pid = int(await asyncio.wait_for(owner.stdout.readline(), 20))
        assert _alive(pid)
        assert os.getpgid(pid) == pid != os.getpgid(0)
        for _ in range(100):  # the wrapper execs the program (same pid)
            cmdline = _cmdline(pid)
            if cmdline[1:3] == [b"-c", b"import time; time.sleep(60)"]:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the wrapper did not exec the program: {cmdline}")
        owner.kill()
        await owner.wait()
        for _ in range(100):
            if not _alive(pid):
                break
            await asyncio.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError("the child outlived its owner")
    finally:
        if owner.returncode is None:
            owner.kill()
            await owner.wait()


async def test_stop_kills_a_child_that_ignores_sigterm_and_awaits_its_exit() -> None:
    code = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)")
    child = ChildProcess([sys.executable, "-c", code], name="stubborn", stop_timeout_s=0.5)
    await child.start()
    assert (await child.stdout.readline()) == b"ready\n"
    rc = await child.stop()
    assert rc == -signal.SIGKILL and child.returncode == rc
    assert child.stopping and child.killed_by_us


async def test_stderr_is_drained_into_a_bounded_scrubbed_tail_and_stdin_is_fed() -> None:
    secret = "Tail-S3cret!x"
    register_sensitive(secret)
    code = textwrap.dedent(f'''
        import sys
        got = sys.stdin.read()
        for i in range(5000):  # more than a pipe holds: it must be drained while running
            print("progress=continue" if i % 2 else f"line {{i}} " + got, file=sys.stderr)
        print("open rtsp://admin:{secret}@10.0.0.9/main failed", file=sys.stderr)
        print("last", file=sys.stderr)
    ''')
    consumed: list[bytes] = []

    def progress(raw: bytes) -> bool:
        if raw.startswith(b"progress="):
            consumed.append(raw)
            return True
        return False

    async with ChildProcess([sys.executable, "-c", code], name="chatty", stdout=False,
                            stdin=f"pw {secret}".encode(), secrets=[secret],
                            on_stderr_line=progress) as child:
        rc = await child.wait()
    assert rc == 0 and len(consumed) == 2500
    tail = list(child.tail)
    assert len(tail) == TAIL_LINES and tail[-1] == "last"
    assert tail[-2] == "open rtsp://admin:***@10.0.0.9/main failed"
    assert tail[-3] == "line 4998 pw ***"
    assert not any(secret in line for line in tail)


async def test_a_missing_program_fails_at_start_like_exec() -> None:
    with pytest.raises(FileNotFoundError):
        await ChildProcess(["/nonexistent/ffmpeg", "-version"], name="missing").start()


def test_rtsp_input_holds_credentials_in_stdin_only() -> None:
    src = ffmpeg_input("rtsp://10.0.0.9:554/live?channel=1", "admin", "p@ss w'rd",
                       {"rtsp_transport": "tcp"})
    assert src.args() == ["-f", "concat", "-safe", "0", "-protocol_whitelist",
                          "pipe,rtsp,rtsps,rtp,srtp,tcp,udp,tls", "-i", "pipe:0"]
    assert src.stdin == (b"ffconcat version 1.0\n"
                         b"file 'rtsp://admin:p%40ss%20w%27rd@10.0.0.9:554/live?channel=1'\n"
                         b"option rtsp_transport 'tcp'\n")
    assert src.shown == "rtsp://admin:***@10.0.0.9:554/live?channel=1"
    plain = ffmpeg_input("/srv/clip.mp4", "", "", {"re": "1"})
    assert plain.args() == ["-re", "1", "-i", "/srv/clip.mp4"] and plain.stdin is None


async def test_a_quote_in_the_camera_url_and_odd_password_reach_the_camera(
        camsim_cache_dir: Path | None) -> None:
    """The ffconcat script quotes the URL: a ``'`` in the path and a password full of
    separators still make a working RTSP login (ffmpeg against camsim, Digest auth)."""
    import imageio_ffmpeg

    password = "p'w\\d:@/ %#x"
    register_sensitive(password)
    server = RtspServer("127.0.0.1", 0, username="ad min", password=password,
                        cache_dir=camsim_cache_dir)
    server.add_stream("/it's", ClipSpec(width=160, height=90, fps=25, bitrate_kbps=100,
                                        audio=None, seconds=4))
    await server.start()
    try:
        jpeg = await grab_jpeg(imageio_ffmpeg.get_ffmpeg_exe(), server.url("/it's"), "ad min",
                               password, timeout_s=10)
    finally:
        await server.stop()
    assert jpeg[:2] == b"\xff\xd8"
