"""A real ``vms serve`` child process for tests and benchmarks: start (ready when ``/healthz``
answers), ``kill -9``, stop (SIGTERM, then SIGKILL after a timeout), and signed-in HTTP sessions."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import aiohttp


class ServeProcess:
    def __init__(self, config: Path, port: int, *, log_path: Path | None = None) -> None:
        # its stderr always goes to a file (beside the config unless named), so a server that
        # fails to start says why in the test's failure
        self.config, self.port = config, port
        self.log_path = log_path or config.with_name(f"serve-{port}.log")
        self.proc: asyncio.subprocess.Process | None = None
        self.base = f"http://127.0.0.1:{port}"

    async def start(self, timeout_s: float = 60) -> None:
        log = self.log_path.open("ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "vms.cli", "serve", "--config", str(self.config),
                stdout=asyncio.subprocess.DEVNULL, stderr=log)
        finally:
            log.close()
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as http:
            while True:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"vms serve exited at start-up ({self.proc.returncode}): "
                                       f"{self.log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"vms serve did not answer /healthz in time: "
                                       f"{self.log_tail()}")
                try:
                    async with http.get(f"{self.base}/healthz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's stderr."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError as exc:
            return f"(no log: {exc})"

    async def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self, timeout_s: float = 30) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout_s)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    async def session(self, username: str, password: str) -> tuple[aiohttp.ClientSession, str]:
        """A signed-in session (cookies kept for 127.0.0.1) and its CSRF token."""
        http = aiohttp.ClientSession(base_url=self.base, cookie_jar=aiohttp.CookieJar(unsafe=True))
        async with http.post("/api/v1/auth/login",
                             json={"username": username, "password": password}) as resp:
            if resp.status != 200:
                await http.close()
                raise RuntimeError(f"sign-in as {username}: {resp.status} {await resp.text()}")
            csrf = (await resp.json())["csrf_token"]
        return http, csrf
