"""A JPEG of any recorded instant: one frame decoded from the nearest keyframe at or before it.

The segment holding the instant comes from the index (:func:`recorder.timeline.segments_in_range`);
the file is opened with PyAV, seeked to the keyframe at or before the instant, and frames are
decoded up to the last one whose time is at or before the instant. That single frame is encoded as
JPEG (ffmpeg's ``mjpeg`` encoder through PyAV). The stream itself is never transcoded; at most one
GOP is decoded. Blocking: run it in a thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

log = logging.getLogger(__name__)


class SnapshotError(Exception):
    """The instant cannot be decoded (the message says why)."""


@dataclass(frozen=True)
class Snapshot:
    jpeg: bytes
    frame_us: int       # index time (UTC µs) of the decoded frame
    frame_pts_s: float  # its presentation time inside the file, seconds
    width: int
    height: int


def snapshot_at(path: Path, segment_start_us: int, at_us: int, *, quality: int = 3) -> Snapshot:
    """Decode the frame of ``path`` shown at ``at_us`` (the segment starts at ``segment_start_us``).

    ``quality`` is the mjpeg quantiser (2 best … 31 worst).
    """
    import av

    offset_us = max(0, at_us - segment_start_us)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise SnapshotError(f"{path.name}: no video stream")
            vstream = container.streams.video[0]
            tb = vstream.time_base
            if tb is None:
                raise SnapshotError(f"{path.name}: video stream without a time base")
            base_pts = vstream.start_time or 0
            target_pts = base_pts + int(Fraction(offset_us, 1_000_000) / tb)
            container.seek(target_pts, stream=vstream, backward=True, any_frame=False)
            chosen = None
            try:
                for frame in container.decode(vstream):
                    if frame.pts is None:
                        continue
                    if frame.pts > target_pts and chosen is not None:
                        break
                    chosen = frame
                    if frame.pts >= target_pts:
                        break
            except av.error.FFmpegError:  # truncated tail of a crashed segment
                if chosen is None:
                    raise
            if chosen is None or chosen.pts is None:
                raise SnapshotError(f"{path.name}: no frame decoded at +{offset_us / 1e6:.3f}s")
            pts_s = float((chosen.pts - base_pts) * tb)
            jpeg = encode_jpeg(chosen, quality)
            return Snapshot(jpeg, segment_start_us + round(pts_s * 1_000_000),
                            float(chosen.pts * tb), chosen.width, chosen.height)
    except (av.error.FFmpegError, OSError) as exc:
        raise SnapshotError(f"{path.name}: cannot decode: {exc}") from exc


def encode_jpeg(frame, quality: int) -> bytes:  # type: ignore[no-untyped-def]
    import av

    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width = frame.width
    encoder.height = frame.height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    encoder.options = {"qmin": str(quality), "qmax": str(quality)}
    image = frame.reformat(format="yuvj420p")
    image.pts = 0
    packets = list(encoder.encode(image)) + list(encoder.encode(None))
    data = b"".join(bytes(p) for p in packets)
    if not data.startswith(b"\xff\xd8"):
        raise SnapshotError("the JPEG encoder produced no image")
    return data
