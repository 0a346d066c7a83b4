"""One JPEG from an RTSP stream, for cameras that offer no ONVIF snapshot URI.

A camera added by bare RTSP URL (or whose firmware refuses GetSnapshotUri) still deserves a
thumbnail: ffmpeg connects over RTSP/TCP, decodes the first frame and writes it as MJPEG to its
stdout. Decoding one frame is cheap; nothing is recorded. The credentials go into ffmpeg's argv
only (percent-encoded in the URL's authority); every message and log line names the URL without
them, and ffmpeg's own error text is scrubbed of them before it is quoted. The whole grab is
bounded by ``timeout_s``; on the way out ffmpeg is terminated, waited for, then killed, and its
exit is always awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import quote

from onvif_bridge.client import redact_url
from onvif_bridge.errors import OnvifAuthError, OnvifParseError, OnvifUnreachableError
from vms.urls import credentialed_url

logger = logging.getLogger(__name__)

DEFAULT_FRAME_TIMEOUT_S = 10.0

_STOP_TIMEOUT_S = 2.0
_JPEG_START = b"\xff\xd8"


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Terminate, wait a little, kill; always await the exit."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), _STOP_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def grab_jpeg(ffmpeg_exe: str, url: str, username: str = "", password: str = "", *,
                    label: str = "", timeout_s: float = DEFAULT_FRAME_TIMEOUT_S) -> bytes:
    """The first decodable frame of ``url`` (RTSP over TCP) as JPEG bytes.

    Raises :class:`OnvifAuthError` (the camera refused the login),
    :class:`OnvifUnreachableError` (no answer, timeout, no frame) or :class:`OnvifParseError`
    (ffmpeg gave something that is not a JPEG).
    """
    safe = redact_url(url)
    who = f"camera {label!r} ({safe})" if label else f"stream {safe}"
    source = credentialed_url(url, username, password)
    secrets = (source, password, quote(password, safe="")) if password else (source,)
    argv = [
        ffmpeg_exe, "-hide_banner", "-nostdin", "-loglevel", "error",
        "-rtsp_transport", "tcp", "-timeout", str(int(timeout_s * 1_000_000)),
        # decode keyframes only: joining mid-GOP, the first decodable picture would otherwise be
        # a half-grey frame concealed from missing references
        "-skip_frame", "nokey",
        "-i", source, "-an", "-frames:v", "1", "-f", "image2", "-c:v", "mjpeg", "pipe:1",
    ]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        raise OnvifUnreachableError(f"{who}: cannot start ffmpeg ({exc.strerror})") from None
    try:
        async with asyncio.timeout(timeout_s):
            stdout, stderr = await proc.communicate()  # reads both pipes until ffmpeg exits
    except TimeoutError:
        raise OnvifUnreachableError(f"{who}: no frame within {timeout_s:g} s") from None
    finally:
        await _stop(proc)
    if proc.returncode != 0 or not stdout:
        detail = _scrub(stderr.decode("utf-8", "replace"), secrets).strip().splitlines()
        reason = detail[-1] if detail else f"ffmpeg exited with status {proc.returncode}"
        if any("401" in line or "Unauthorized" in line for line in detail):
            raise OnvifAuthError(f"{who}: wrong user name or password ({reason})")
        raise OnvifUnreachableError(f"{who}: no frame ({reason})")
    if not stdout.startswith(_JPEG_START):
        raise OnvifParseError(f"{who}: ffmpeg did not produce a JPEG")
    logger.debug("%s: grabbed a %d-byte frame over RTSP", who, len(stdout))
    return stdout


__all__ = ["DEFAULT_FRAME_TIMEOUT_S", "grab_jpeg"]
