"""``vms serve`` as a process: comes up, answers, stops within 5 s on SIGTERM leaving no orphans."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_serve_stops_within_five_seconds_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "vms.toml"
    config.write_text(f'data_dir = "data"\n[server]\nport = {port}\n')
    proc = subprocess.Popen([sys.executable, "-m", "vms.cli", "serve", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    output = proc.stdout.read() if proc.stdout else ""
                    raise AssertionError(f"server did not come up: {output}") from None
                time.sleep(0.2)
        family = descendants(proc.pid)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        elapsed = time.monotonic() - started
        output = proc.stdout.read() if proc.stdout else ""
        assert elapsed < 5, f"took {elapsed:.1f} s to stop"
        assert code == 0, output
        assert "Traceback" not in output, output
        leftovers = [pid for pid in family if alive(pid)]
        assert not leftovers, f"orphan processes after shutdown: {leftovers}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_stops_at_start_up_when_the_recorder_cannot_be_imported(tmp_path: Path) -> None:
    """A broken install (the recorder's import fails) stops ``vms serve`` with the error; it never
    runs a server that looks healthy and records nothing. Python's documented way to make an import
    fail (``sys.modules[name] = None``) stands in for the missing piece."""
    port = free_port()
    config = tmp_path / "vms.toml"
    config.write_text(f'data_dir = "data"\n[server]\nport = {port}\n')
    script = ("import sys; sys.modules['recorder.supervisor'] = None; from vms.cli import main; "
              f"sys.exit(main(['serve', '--config', {str(config)!r}]))")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        output = proc.communicate()[0]
        raise AssertionError(f"the server kept running without its recorder: {output}") from None
    output = proc.stdout.read() if proc.stdout else ""
    assert code != 0, output
    assert "VMS listening" not in output, output
    assert "recorder.supervisor" in output.splitlines()[-1], output  # the error, last
    assert ("ImportError" in output or "ModuleNotFoundError" in output), output
