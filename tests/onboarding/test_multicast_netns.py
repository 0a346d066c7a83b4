"""Multicast WS-Discovery between two network namespaces this test creates (issue 5).

Namespace A, the camera host: ``veth-a`` 192.0.2.10/24 runs multicast virtual cameras
(``tests/onboarding/netns_camera.py``). Namespace B, the installer's laptop: ``veth-b``
192.0.2.20/24 runs our WS-Discovery client (``tests/onboarding/netns_discover.py``) with no
unicast target, so every camera it finds answered the multicast Probe. The veth pair is created
directly inside the two namespaces; neither namespace has a route out (only the /24 and
224.0.0.0/4 on the veth), so no datagram reaches a real interface of the host (DESIGN.md,
"Network in tests"). Addresses are TEST-NET-1.

Needs root and ``ip netns``; skipped with the reason otherwise. Every wait is bounded; the
processes and namespaces are removed in ``finally``, and stale namespaces of dead runs (same
prefix, pid no longer alive) are removed first.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PREFIX = "vmswsd"
CAMERA_IP = "192.0.2.10"
LAPTOP_IP = "192.0.2.20"
CAM_PASSWORD = "netns-cam-pass-1234"
WAIT_S = 15.0
"""Bound for any single wait (process start, a line of output)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if check and result.returncode != 0:
        raise AssertionError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")
    return result


def _delete_namespace(name: str) -> None:
    """Kill what still runs inside ``name`` (by pid, as ``ip netns pids`` lists), then delete it."""
    for pid in _ip("netns", "pids", name, check=False).stdout.split():
        if pid.isdigit():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    _ip("netns", "del", name, check=False)


def _remove_stale_namespaces() -> None:
    """Delete ``vmswsd-<pid>-*`` namespaces whose pid is gone (a crashed earlier run)."""
    listing = _ip("netns", "list", check=False).stdout
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(PREFIX + "-"):
            continue
        pid_text = name.split("-")[1]
        alive = pid_text.isdigit() and Path(f"/proc/{pid_text}").exists()
        if not alive:
            _delete_namespace(name)


def _skip_reason() -> str | None:
    if sys.platform != "linux":
        return "network namespaces are Linux-only"
    if os.geteuid() != 0:
        return "needs root to create network namespaces (ip netns add); CI runs it as root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    return None


class _Process:
    """A child in a namespace whose stdout lines are read by a thread, so waits can be bounded."""

    def __init__(self, namespace: str, script: Path, *args: str, stdin: bool = False) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "NETNS_CAM_PASSWORD": CAM_PASSWORD,
               "PYTHONUNBUFFERED": "1"}
        self.argv = ["ip", "netns", "exec", namespace, sys.executable, str(script), *args]
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO))
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stderr_lines: list[str] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line:
                try:
                    self.lines.put(json.loads(line))
                except ValueError:
                    self.lines.put({"unparsed": line})
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line.rstrip())

    def describe(self) -> str:
        tail = "\n".join(self.stderr_lines[-30:])
        return f"{' '.join(self.argv[4:])} (exit {self.proc.poll()}); stderr:\n{tail}"

    def next_line(self, what: str, timeout_s: float = WAIT_S) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"no {what} within {timeout_s} s from {self.describe()}") from None
        if line is None:
            self.lines.put(None)  # keep the end marker for later readers
            raise AssertionError(f"{what}: the process ended first: {self.describe()}")
        return line

    def wait_for(self, what: str, predicate: Callable[[dict[str, Any]], bool],
                 seen: list[dict[str, Any]], timeout_s: float = WAIT_S) -> dict[str, Any]:
        """Next line matching ``predicate``; every line read is appended to ``seen``."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout_s} s; lines so far: {seen}; "
                                     f"{self.describe()}")
            line = self.next_line(what, remaining)
            seen.append(line)
            if predicate(line):
                return line

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout_s: float = WAIT_S) -> int:
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"did not exit within {timeout_s} s: {self.describe()}") from None

    def close(self) -> None:
        """Close stdin, then SIGTERM, then SIGKILL: each with a bounded wait."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        for signal_it in (None, self.proc.terminate, self.proc.kill):
            if signal_it is not None and self.proc.poll() is None:
                signal_it()
            try:
                self.proc.wait(timeout=3)
                return
            except subprocess.TimeoutExpired:
                continue


@dataclass
class Lab:
    camera_ns: str
    laptop_ns: str
    processes: list[_Process] = field(default_factory=list)

    def run(self, namespace: str, script: str, *args: str, stdin: bool = False) -> _Process:
        process = _Process(namespace, HERE / script, *args, stdin=stdin)
        self.processes.append(process)
        return process


@pytest.fixture
def lab() -> Iterator[Lab]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    _remove_stale_namespaces()
    run_id = f"{PREFIX}-{os.getpid()}-{time.monotonic_ns() % 100_000}"
    lab = Lab(camera_ns=f"{run_id}-a", laptop_ns=f"{run_id}-b")
    created: list[str] = []
    try:
        for namespace in (lab.camera_ns, lab.laptop_ns):
            result = _ip("netns", "add", namespace, check=False)
            if result.returncode != 0:
                pytest.skip(f"`ip netns add` failed, network namespaces unavailable here: "
                            f"{result.stderr.strip()}")
            created.append(namespace)
        # The pair is born inside the namespaces: it never exists in the host's namespace.
        _ip("link", "add", "veth-a", "netns", lab.camera_ns, "type", "veth",
            "peer", "name", "veth-b", "netns", lab.laptop_ns)
        for namespace, link, address in ((lab.camera_ns, "veth-a", CAMERA_IP),
                                         (lab.laptop_ns, "veth-b", LAPTOP_IP)):
            _ip("-n", namespace, "link", "set", "lo", "up")
            _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", link)
            _ip("-n", namespace, "link", "set", link, "up")
            _ip("-n", namespace, "route", "add", "224.0.0.0/4", "dev", link)
        yield lab
    finally:
        for process in lab.processes:
            process.close()
        for namespace in created:
            _delete_namespace(namespace)


def _devices(lines: list[dict[str, Any]], message: str) -> dict[str, dict[str, Any]]:
    return {line["name"]: line for line in lines if line.get("message") == message}


@pytest.mark.slow
def test_multicast_discovery_hello_bye_and_interrogation(lab: Lab) -> None:
    started = time.monotonic()
    cameras = lab.run(lab.camera_ns, "netns_camera.py", "--host", CAMERA_IP, "cam-1", "cam-2",
                      stdin=True)
    infos = {}
    for _ in range(2):
        info = cameras.next_line("camera info")
        assert "started" in info, info
        infos[info["name"]] = info
    assert set(infos) == {"cam-1", "cam-2"}
    for info in infos.values():
        assert info["onvif_url"].startswith(f"http://{CAMERA_IP}:"), info
        assert info["discovery"] == f"{CAMERA_IP}:3702", info

    # No unicast target: whatever answers heard the multicast Probe sent from veth-b.
    laptop = lab.run(lab.laptop_ns, "netns_discover.py", "discover", "--interface", LAPTOP_IP,
                     "--timeout", "4", "--listen")
    seen: list[dict[str, Any]] = []
    for _ in range(2):
        laptop.wait_for("ProbeMatch", lambda d: d.get("message") == "ProbeMatch", seen)
    matches = _devices(seen, "ProbeMatch")
    assert set(matches) == {"cam-1", "cam-2"}, seen
    for name, device in matches.items():
        assert device["sender"] == f"{CAMERA_IP}:3702", device
        assert device["xaddrs"] == [infos[name]["onvif_url"]], device
        assert all(x.startswith(f"http://{CAMERA_IP}:") for x in device["xaddrs"]), device
    assert matches["cam-1"]["endpoint"] != matches["cam-2"]["endpoint"]

    # Let the Probe's retransmissions (0.1 s, then 0.2 s later) pass, so the late camera's first
    # message to the listener is its Hello rather than a ProbeMatch to a repeated Probe (the
    # client yields each endpoint once, Byes excepted).
    time.sleep(1.0)
    cameras.send("start cam-3")
    late = cameras.next_line("late camera info")
    assert late.get("started") == "cam-3", late
    hello = laptop.wait_for("Hello from cam-3",
                            lambda d: d.get("message") == "Hello" and d.get("name") == "cam-3",
                            seen)
    assert hello["xaddrs"] == [late["onvif_url"]], hello
    assert hello["sender"].startswith(f"{CAMERA_IP}:"), hello
    cameras.send("stop cam-3")
    assert cameras.next_line("stop confirmation") == {"stopped": "cam-3"}
    bye = laptop.wait_for("Bye from cam-3", lambda d: d.get("message") == "Bye", seen)
    assert bye["endpoint"] == hello["endpoint"], (bye, hello)
    done = laptop.wait_for("end of discovery", lambda d: "done" in d, seen)
    assert laptop.finish() == 0, laptop.describe()
    assert not [d for d in seen if d.get("message") and d.get("name") not in infos
                and d["endpoint"] != hello["endpoint"]], f"unexpected devices: {seen}"

    # Interrogate cam-1 from the laptop over the XAddr that discovery gave.
    xaddr = matches["cam-1"]["xaddrs"][0]
    asker = lab.run(lab.laptop_ns, "netns_discover.py", "interrogate", xaddr,
                    "--user", infos["cam-1"]["username"])
    report = asker.next_line("interrogation report", timeout_s=20)
    assert asker.finish() == 0, asker.describe()
    assert report["status"] == "ok", report
    assert report["mac"] == infos["cam-1"]["mac"], report
    assert report["address"].startswith(f"{CAMERA_IP}:"), report

    print(f"multicast netns test: discovery window {done['elapsed_s']} s, "
          f"total {time.monotonic() - started:.1f} s")
