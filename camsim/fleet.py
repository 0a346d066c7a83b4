"""Start N virtual cameras at once, each on its own free ports, with stable identities.

``async with Fleet(count=3) as fleet: fleet.cameras[0].info()``. Names are ``camsim-01``...,
MACs and endpoint UUIDs derive from the fleet ``seed`` and the camera's index (so re-running a
demo finds "the same" cameras), and passwords are random per camera unless one is given.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import uuid
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

from camsim.camera import CameraOptions, VirtualCamera
from vms.clock import Clock, SystemClock

logger = logging.getLogger(__name__)

MODELS = ("CS-2100", "CS-2100", "CS-3200PTZ", "CS-1100LPR")


def stable_mac(seed: str, index: int) -> str:
    """A locally administered unicast MAC derived from ``seed`` and ``index``."""
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def camera_options(index: int, *, seed: str, host: str, username: str, password: str | None,
                   name_prefix: str, **options: Any) -> CameraOptions:
    digest = hashlib.sha256(f"{seed}:{index}".encode()).hexdigest()
    fields: dict[str, Any] = {
        "name": f"{name_prefix}-{index + 1:02d}",
        "mac": stable_mac(seed, index),
        "serial": f"CS{int(digest[:10], 16) % 10**10:010d}",
        "endpoint_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"camsim:{seed}:{index}")),
        "host": host,
        "username": username,
        "password": password if password is not None else secrets.token_urlsafe(9),
        "model": MODELS[index % len(MODELS)],
    }
    fields.update(options)
    return CameraOptions(**fields)


class Fleet:
    """N running :class:`VirtualCamera` objects; options apply to all, ``per_camera`` to one."""

    def __init__(
        self,
        count: int = 1,
        host: str = "127.0.0.1",
        *,
        clock: Clock | None = None,
        username: str = "admin",
        password: str | None = None,
        seed: str = "camsim",
        name_prefix: str = "camsim",
        per_camera: Sequence[Mapping[str, Any]] | None = None,
        **options: Any,
    ) -> None:
        if count < 0:
            raise ValueError("count must be >= 0")
        self.clock: Clock = clock or SystemClock()
        self.cameras: list[VirtualCamera] = []
        for index in range(count):
            extra: dict[str, Any] = {"host": host, "username": username, "password": password,
                                     **options}
            if per_camera is not None and index < len(per_camera):
                extra.update(per_camera[index])  # a per-camera value wins over the fleet's
            opts = camera_options(index, seed=seed, name_prefix=name_prefix, **extra)
            self.cameras.append(VirtualCamera(opts, clock=self.clock))

    async def start(self) -> Fleet:
        results = await asyncio.gather(*(c.start() for c in self.cameras), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.stop()
            raise errors[0]
        return self

    async def stop(self) -> None:
        await asyncio.gather(*(c.stop() for c in self.cameras), return_exceptions=True)

    async def __aenter__(self) -> Fleet:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    def __len__(self) -> int:
        return len(self.cameras)

    def __iter__(self) -> Iterator[VirtualCamera]:
        return iter(self.cameras)

    def __getitem__(self, index: int) -> VirtualCamera:
        return self.cameras[index]

    def infos(self) -> list[dict[str, Any]]:
        return [c.info() for c in self.cameras]
