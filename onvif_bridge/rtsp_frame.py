"""One JPEG from an RTSP stream, for cameras that offer no ONVIF snapshot URI.

A camera added by bare RTSP URL (or whose firmware refuses GetSnapshotUri) still deserves a
thumbnail: ffmpeg connects over RTSP/TCP, decodes the first keyframe and writes it as MJPEG to its
stdout. Decoding one frame is cheap; nothing is recorded. The URL and its credentials reach ffmpeg
through a script on its stdin (:func:`vms.proc.ffmpeg_input`), never its argv; every message and
log line names the URL without them, and ffmpeg's own error text is scrubbed of them before it is
quoted. The whole grab is bounded by ``timeout_s`` and by :data:`MAX_JPEG_BYTES`; ffmpeg runs as a
:class:`vms.proc.ChildProcess` (terminated, waited for, then killed; its exit always awaited).
"""

from __future__ import annotations

import asyncio
import logging

from onvif_bridge.client import redact_url
from onvif_bridge.errors import OnvifAuthError, OnvifParseError, OnvifUnreachableError
from vms.proc import READ_CHUNK_BYTES, ChildProcess, ffmpeg_input

logger = logging.getLogger(__name__)

DEFAULT_FRAME_TIMEOUT_S = 10.0
MAX_JPEG_BYTES = 32 * 1024 * 1024
"""More than any real frame as JPEG (an 8K frame is a few MB): beyond, the stream is not sane."""

_STOP_TIMEOUT_S = 2.0
_JPEG_START = b"\xff\xd8"


async def grab_jpeg(ffmpeg_exe: str, url: str, username: str = "", password: str = "", *,
                    label: str = "", timeout_s: float = DEFAULT_FRAME_TIMEOUT_S) -> bytes:
    """The first decodable frame of ``url`` (RTSP over TCP) as JPEG bytes.

    Raises :class:`OnvifAuthError` (the camera refused the login),
    :class:`OnvifUnreachableError` (no answer, timeout, no frame) or :class:`OnvifParseError`
    (ffmpeg gave something that is not a JPEG).
    """
    safe = redact_url(url)
    who = f"camera {label!r} ({safe})" if label else f"stream {safe}"
    source = ffmpeg_input(url, username, password, {
        "rtsp_transport": "tcp", "timeout": str(int(timeout_s * 1_000_000))})
    argv = [
        ffmpeg_exe, "-hide_banner", "-nostdin", "-loglevel", "error",
        # decode keyframes only: joining mid-GOP, the first decodable picture would otherwise be
        # a half-grey frame concealed from missing references
        "-skip_frame", "nokey",
        *source.args(), "-an", "-frames:v", "1", "-f", "image2", "-c:v", "mjpeg", "pipe:1",
    ]
    proc = ChildProcess(argv, name=f"{who}: ffmpeg", stdin=source.stdin, secrets=source.secrets,
                        stop_timeout_s=_STOP_TIMEOUT_S)
    try:
        await proc.start()
    except OSError as exc:
        raise OnvifUnreachableError(f"{who}: cannot start ffmpeg ({exc.strerror})") from None
    try:
        async with asyncio.timeout(timeout_s):
            data = bytearray()
            while chunk := await proc.stdout.read(READ_CHUNK_BYTES):
                data += chunk
                if len(data) > MAX_JPEG_BYTES:
                    raise OnvifParseError(f"{who}: ffmpeg gave more than {MAX_JPEG_BYTES} bytes "
                                          "for one frame")
            rc = await proc.wait()
    except TimeoutError:
        raise OnvifUnreachableError(f"{who}: no frame within {timeout_s:g} s") from None
    finally:
        await proc.stop()
    if rc != 0 or not data:
        detail = list(proc.tail)
        reason = detail[-1] if detail else f"ffmpeg exited with status {rc}"
        if any("401" in line or "Unauthorized" in line for line in detail):
            raise OnvifAuthError(f"{who}: wrong user name or password ({reason})")
        raise OnvifUnreachableError(f"{who}: no frame ({reason})")
    if not data.startswith(_JPEG_START):
        raise OnvifParseError(f"{who}: ffmpeg did not produce a JPEG")
    logger.debug("%s: grabbed a %d-byte frame over RTSP", who, len(data))
    return bytes(data)


__all__ = ["DEFAULT_FRAME_TIMEOUT_S", "MAX_JPEG_BYTES", "grab_jpeg"]
