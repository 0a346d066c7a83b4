"""Talk-back fixtures: cameras adopted straight into the database, users of two sites, a tone.

``seed_talk`` writes Sites A and B, ``resident_a`` (viewer of Site A: has the ``door`` right),
``operator_a`` (operator of Site A: no ``door`` right) and ``viewer_b`` (viewer of Site B), and one
camera per RTSP URL given, on the site given, with its password encrypted. ``tone_pcm`` is a sine
as 16-bit little-endian PCM at 8 kHz, the format the talk WebSocket takes.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from tests.web.conftest import PASSWORD, hashed_password

USER_PASSWORD = PASSWORD  # the web tests' password, so its hash is made once per run


def seed_talk(app: Any, cameras: list[tuple[str, str, str, str]]) -> dict[str, int]:
    """``cameras``: (name, site "A"|"B", main RTSP URL, camera password); returns the ids."""
    from vms.db import models as m
    from web.keys import ACCOUNTS, CLOCK, GATEWAY, SECRETS

    accounts, clock, secrets = app[ACCOUNTS], app[CLOCK], app[SECRETS]

    def write() -> dict[str, int]:
        sites = {"A": accounts.create_site("Site A", "Asia/Almaty"),
                 "B": accounts.create_site("Site B", "Europe/Berlin")}
        accounts.create_user("resident_a", hashed_password(), "viewer", ["Site A"])
        accounts.create_user("operator_a", hashed_password(), "operator", ["Site A"])
        accounts.create_user("viewer_b", hashed_password(), "viewer", ["Site B"])
        now = clock.now_us()
        ids: dict[str, int] = {}
        for name, site, url, password in cameras:
            cam = m.Camera.create(site=sites[site], name=name, username="admin",
                                  password_enc=secrets.encrypt(password),
                                  status_since_us=now, created_us=now, updated_us=now)
            m.CameraStream.create(camera=cam, kind="main", rtsp_url=url, codec="H264",
                                  width=320, height=180, fps=25)
            ids[name] = cam.id
        return ids

    return app[GATEWAY].write_sync(write)


def tone_pcm(frequency_hz: float, seconds: float, *, rate: int = 8000,
             amplitude: int = 12000) -> bytes:
    count = int(seconds * rate)
    return struct.pack(f"<{count}h", *(
        int(amplitude * math.sin(2 * math.pi * frequency_hz * i / rate)) for i in range(count)))
