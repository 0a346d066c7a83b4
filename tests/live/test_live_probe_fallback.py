"""The live view's fallback to a full probe (docs/design/live.md, "First picture"): a camera whose
first packet does not say enough — no ``sprop-parameter-sets`` in its SDP and no SPS/PPS before its
first keyframe (camsim's ``late_parameter_sets``) — makes the short probe's run end without media;
the stream then probes fully, and the viewer still gets a picture (real ffmpeg, real camsim).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp

from recorder.live import fragment_is_keyframe
from tests.live.conftest import SUB, LiveWorld


async def test_a_camera_without_parameter_sets_up_front_still_plays(live_world: LiveWorld,
                                                                   tmp_path: Path) -> None:
    import av

    live_world.rtsp.late_parameter_sets = True
    await live_world.login("viewer_a")
    camera = live_world.camera
    opened = time.monotonic()
    texts: list[dict[str, object]] = []
    init = b""
    fragments: list[bytes] = []
    async with live_world.client.ws_connect(f"/api/v1/cameras/{camera}/live?stream=sub") as ws:
        while len(fragments) < 30 and time.monotonic() - opened < 12:
            msg = await ws.receive(timeout=12)
            if msg.type == aiohttp.WSMsgType.TEXT:
                texts.append(json.loads(msg.data))
            elif msg.type == aiohttp.WSMsgType.BINARY:
                if init:
                    fragments.append(msg.data)
                else:
                    init = msg.data
            else:
                raise AssertionError(f"the socket ended: {msg}, after {texts}")
        stream = live_world.service.running(camera, "sub")
        assert stream is not None
        starts, fast_probe = stream.starts, stream.fast_probe
    took_s = time.monotonic() - opened
    print(f"first run failed, second played: {len(fragments)} fragments in {took_s:.1f}s; "
          f"messages {texts[:1]}")
    # the short probe's run gave nothing (so the camsim quirk does what it says), the viewer was
    # told it is reconnecting, and the next run, probing fully, delivered the picture
    assert starts == 2 and fast_probe is False, (starts, fast_probe, texts)
    assert [t["type"] for t in texts][:2] == ["status", "init"], texts
    assert len(fragments) == 30, (len(fragments), texts)
    assert fragment_is_keyframe(fragments[0])
    path = tmp_path / "live.mp4"
    path.write_bytes(init + b"".join(fragments))
    with av.open(str(path)) as container:
        frames = list(container.decode(container.streams.video[0]))
    assert len(frames) >= 29
    assert (frames[0].width, frames[0].height) == (SUB.width, SUB.height)
