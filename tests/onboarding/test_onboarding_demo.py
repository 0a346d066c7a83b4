"""``vms demo`` as a newcomer runs it: a real process, a real port, the API, then SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def demo(*argv: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(REPO), env.get("PYTHONPATH"))))
    return subprocess.Popen([sys.executable, "-m", "vms.cli", "demo", *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Output:
    """Collects a process's standard output on a thread (so reads never block the test)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.text = ""
        assert proc.stdout is not None
        stream = proc.stdout

        def pump() -> None:
            for line in stream:
                self.lines.put(line)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, needle: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while needle not in self.text:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{needle!r} not printed within {timeout_s} s: {self.text!r}")
            with contextlib.suppress(queue.Empty):
                self.text += self.lines.get(timeout=min(remaining, 0.2))
        return self.text


def read_banner(proc: subprocess.Popen[str], timeout_s: float) -> dict[str, str]:
    text = Output(proc).wait_for("data:", timeout_s)
    url = re.search(r"URL: (http://\S+)", text)
    password = re.search(r"user: admin  password: (\S+)", text)
    assert url and password, f"no banner: {text!r}"
    return {"url": url.group(1), "password": password.group(1), "text": text}


def login(url: str, password: str) -> tuple[Any, str]:
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    request = urllib.request.Request(
        url + "api/v1/auth/login", method="POST",
        data=json.dumps({"username": "admin", "password": password}).encode(),
        headers={"Content-Type": "application/json"})
    with opener.open(request, timeout=10) as resp:
        return opener, json.loads(resp.read())["csrf_token"]


def test_demo_comes_up_adopts_its_cameras_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    proc = demo("--cameras", "2", "--port", "0", "--data-dir", str(data))
    try:
        banner = read_banner(proc, 40)
        assert "2 virtual camera(s) found, 2 adopted" in banner["text"]
        opener, _csrf = login(banner["url"], banner["password"])
        with opener.open(banner["url"] + "api/v1/cameras", timeout=10) as resp:
            cameras = json.loads(resp.read())["cameras"]
        assert len(cameras) == 2
        assert {c["site"]["name"] for c in cameras} == {"Demo courtyard"}
        assert all(c["mac"] for c in cameras)
        with opener.open(banner["url"] + "api/v1/audit?action=camera_adopt", timeout=10) as resp:
            assert len(json.loads(resp.read())["entries"]) >= 2
        # the banner names its config and a `vms user add` line that reaches this database
        assert f"config: {data / 'vms.toml'}" in banner["text"]
        line = re.search(r"more users: (vms user add NAME .*--config \S+)", banner["text"])
        assert line, banner["text"]
        argv = [a if a != "NAME" else "resident1" for a in shlex.split(line.group(1))[1:]]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        added = subprocess.run([sys.executable, "-m", "vms.cli", *argv, "--password-stdin"],
                               input="resident-pass-1\n", capture_output=True, text=True,
                               env=env, cwd=tmp_path, timeout=30, check=False)
        assert added.returncode == 0, added.stderr
        login_as = json.dumps({"username": "resident1", "password": "resident-pass-1"}).encode()
        request = urllib.request.Request(banner["url"] + "api/v1/auth/login", method="POST",
                                         data=login_as,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
        tree = descendants(proc.pid)

        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        proc.wait(timeout=5)
        assert time.monotonic() - started < 5
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.2)
        orphans = [pid for pid in tree if alive(pid)]
        assert not orphans, f"processes left behind: {orphans}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    # a second run keeps the administrator and says how to reset the password
    proc = demo("--cameras", "1", "--port", "0", "--data-dir", str(data))
    try:
        text = Output(proc).wait_for("data:", 40)
        assert "vms user passwd admin --config" in text, text
        assert "1 adopted" in text  # the same camera (same MAC) is re-bound, not duplicated
        opener, _csrf = login(re.search(r"URL: (http://\S+)", text).group(1),  # type: ignore[union-attr]
                              banner["password"])
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
