"""Pre-encoded media for the virtual cameras: clips made once with ffmpeg, pre-packetised for RTP.

This module owns the camera's picture and sound. A :class:`ClipSpec` names a clip (size, rate,
bitrate, audio codec, length); :func:`ensure_clip` encodes it once with the bundled ffmpeg (libx264
from a lavfi ``testsrc2`` with temporal noise, a sine tone as AAC or G.711 PCMU) into a cache
directory, guarded by a file lock so concurrent processes encode it only once, then loads it and
splits it into RTP payloads (RFC 6184 single NAL / FU-A for H.264, RFC 3640 AAC-hbr, RFC 3551
PCMU). The payloads are laid out once per clip in "interleaved templates" (``$``, channel, length,
a 12-byte RTP header placeholder, payload) so that every session of every camera shares them and
only patches headers. :func:`ensure_snapshot` gives a JPEG of the clip's first frame.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import logging
import os
import struct
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import imageio_ffmpeg

from camsim.sei import split_annexb

log = logging.getLogger(__name__)

CLIP_FORMAT_VERSION = 1
"""Bump when the encoding recipe changes, so stale cached clips are not reused."""

RTP_MTU_PAYLOAD = 1400
"""Largest RTP payload we build (FU-A fragments are cut to fit)."""

VIDEO_CLOCK_RATE = 90_000
AAC_SAMPLE_RATE = 16_000
AAC_SAMPLES_PER_FRAME = 1024
PCMU_SAMPLE_RATE = 8_000
PCMU_SAMPLES_PER_PACKET = 160  # 20 ms

RTP_HEADER = struct.Struct(">BBHBBHII")
"""Interleaved framing + RTP header: '$', channel, length, V/P/X/CC, M/PT, seq, timestamp, ssrc."""
FRAMING_BYTES = 4
RTP_HEADER_BYTES = 12

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
NAL_STAP_A = 24
NAL_FU_A = 28


@dataclass(frozen=True)
class ClipSpec:
    """What a clip looks like; equal specs share one encoded file and one packetised clip."""

    width: int = 1920
    height: int = 1080
    fps: int = 25
    bitrate_kbps: int = 4000
    audio: Literal["aac", "pcmu", None] = "aac"
    seconds: int = 10

    def stem(self) -> str:
        audio = self.audio or "noaudio"
        return (
            f"clip-v{CLIP_FORMAT_VERSION}-{self.width}x{self.height}-{self.fps}fps-"
            f"{self.bitrate_kbps}k-{audio}-{self.seconds}s"
        )


MAIN_SPEC = ClipSpec()
SUB_SPEC = ClipSpec(width=640, height=360, bitrate_kbps=512)


@dataclass(frozen=True)
class RtpTemplate:
    """A run of RTP packets laid out as RTSP interleaved frames with zeroed headers.

    ``blob`` holds, per packet: 4 framing bytes, 12 header bytes, payload. ``offsets[i]`` is where
    packet ``i``'s framing starts and ``lengths[i]`` its RTP length (header + payload).
    """

    blob: bytes
    offsets: tuple[int, ...]
    lengths: tuple[int, ...]


@dataclass(frozen=True)
class VideoAU:
    """One H.264 access unit without SPS/PPS/SEI (those are sent in the per-AU prefix packet)."""

    is_idr: bool
    template: RtpTemplate
    size_bytes: int


@dataclass(frozen=True)
class AudioTrack:
    """Packetised audio: one RTP payload per entry of ``payloads`` (an AAC frame, or 20 ms PCMU)."""

    codec: Literal["aac", "pcmu"]
    payload_type: int
    clock_rate: int
    samples_per_packet: int
    rtpmap: str
    fmtp: str | None
    payloads: tuple[bytes, ...]
    """Exactly the packets of one loop: ``len(payloads) * samples_per_packet <= seconds * rate``."""


@dataclass(frozen=True)
class Clip:
    """A clip ready to stream: shared, read-only, looped by every session."""

    spec: ClipSpec
    sps: bytes
    pps: bytes
    aus: tuple[VideoAU, ...]
    audio: AudioTrack | None
    frame_us: int
    duration_us: int
    bytes_per_loop: int = field(default=0)

    @property
    def profile_level_id(self) -> str:
        return self.sps[1:4].hex().upper()

    @property
    def sprop_parameter_sets(self) -> str:
        return (
            base64.b64encode(self.sps).decode("ascii")
            + ","
            + base64.b64encode(self.pps).decode("ascii")
        )

    @property
    def video_fmtp(self) -> str:
        return (
            f"packetization-mode=1;profile-level-id={self.profile_level_id};"
            f"sprop-parameter-sets={self.sprop_parameter_sets}"
        )

    @property
    def video_fmtp_bare(self) -> str:
        """The fmtp without ``sprop-parameter-sets`` (SPS/PPS only in band)."""
        return f"packetization-mode=1;profile-level-id={self.profile_level_id}"


class MediaError(RuntimeError):
    """A clip could not be made or read (ffmpeg failed, cache unwritable, corrupt file)."""


def default_cache_dir() -> Path:
    """``$VMS_CAMSIM_CACHE`` if set, else ``~/.cache/vms-camsim``."""
    env = os.environ.get("VMS_CAMSIM_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "vms-camsim"


def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def _ffmpeg_argv(*args: str) -> list[str]:
    """The bundled ffmpeg with ``args``: errors only on stderr, stdin unread, outputs overwritten."""
    return [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args]


# ----------------------------------------------------------------------------- encoding


def _encode_argv(spec: ClipSpec, video_out: Path, audio_out: Path | None) -> list[str]:
    keyint = spec.fps
    video_src = (
        f"testsrc2=size={spec.width}x{spec.height}:rate={spec.fps}:duration={spec.seconds},"
        "noise=alls=12:allf=t"
    )
    argv = _ffmpeg_argv("-f", "lavfi", "-i", video_src)
    if spec.audio is not None:
        rate = AAC_SAMPLE_RATE if spec.audio == "aac" else PCMU_SAMPLE_RATE
        argv += [
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=1000:sample_rate={rate}:duration={spec.seconds}",
        ]
    argv += [
        "-map",
        "0:v",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-profile:v",
        "high",
        "-pix_fmt",
        "yuv420p",
        "-b:v",
        f"{spec.bitrate_kbps}k",
        "-maxrate",
        f"{spec.bitrate_kbps * 11 // 10}k",
        "-bufsize",
        f"{spec.bitrate_kbps}k",
        "-g",
        str(keyint),
        "-keyint_min",
        str(keyint),
        "-sc_threshold",
        "0",
        "-bf",
        "0",
        "-x264-params",
        "aud=1",
        "-f",
        "h264",
        str(video_out),
    ]
    if spec.audio == "aac" and audio_out is not None:
        argv += [
            "-map",
            "1:a",
            "-c:a",
            "aac",
            "-b:a",
            "32k",
            "-ac",
            "1",
            "-f",
            "adts",
            str(audio_out),
        ]
    elif spec.audio == "pcmu" and audio_out is not None:
        argv += ["-map", "1:a", "-c:a", "pcm_mulaw", "-ac", "1", "-f", "mulaw", str(audio_out)]
    return argv


def _paths(spec: ClipSpec, cache_dir: Path) -> tuple[Path, Path | None]:
    stem = spec.stem()
    video = cache_dir / f"{stem}.h264"
    audio: Path | None = None
    if spec.audio == "aac":
        audio = cache_dir / f"{stem}.aac"
    elif spec.audio == "pcmu":
        audio = cache_dir / f"{stem}.ulaw"
    return video, audio


class _FileLock:
    """An exclusive ``flock`` on ``path`` (blocks until other processes release it)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd = -1

    def __enter__(self) -> _FileLock:
        self._fd = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def _encode_files(spec: ClipSpec, cache_dir: Path) -> tuple[Path, Path | None]:
    """Encode the clip into the cache unless it is already there; returns (video, audio) paths."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    video, audio = _paths(spec, cache_dir)
    with _FileLock(cache_dir / f"{spec.stem()}.lock"):
        if video.exists() and (audio is None or audio.exists()):
            return video, audio
        tmp_video = video.with_name(f".{video.name}.{os.getpid()}.tmp")
        tmp_audio = audio.with_name(f".{audio.name}.{os.getpid()}.tmp") if audio else None
        argv = _encode_argv(spec, tmp_video, tmp_audio)
        log.info("camsim: encoding clip %s into %s (once)", spec.stem(), cache_dir)
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
        if proc.returncode != 0:
            for tmp in (tmp_video, tmp_audio):
                if tmp is not None:
                    tmp.unlink(missing_ok=True)
            raise MediaError(
                f"ffmpeg could not encode clip {spec.stem()} (exit {proc.returncode}): "
                f"{proc.stderr.strip()[-500:]}"
            )
        # Audio first: the video file's presence is what marks the clip complete.
        if audio is not None and tmp_audio is not None:
            os.replace(tmp_audio, audio)
        os.replace(tmp_video, video)
        return video, audio


# ----------------------------------------------------------------------------- parsing


def _group_access_units(nals: list[bytes]) -> tuple[bytes, bytes, list[list[bytes]]]:
    """(sps, pps, access units of slice NALs) — x264's AUD NALs mark the AU boundaries."""
    sps = pps = b""
    aus: list[list[bytes]] = []
    current: list[bytes] | None = None
    for nal in nals:
        kind = nal[0] & 0x1F
        if kind == NAL_AUD:
            current = []
            aus.append(current)
        elif kind == NAL_SPS:
            sps = sps or nal
        elif kind == NAL_PPS:
            pps = pps or nal
        elif kind in (NAL_SLICE, NAL_IDR):
            if current is None:
                current = []
                aus.append(current)
            current.append(nal)
        # SEI (x264's version string) and anything else are dropped: each AU gets our own SEI.
    aus = [au for au in aus if au]
    if not sps or not pps or not aus:
        raise MediaError("H.264 clip has no SPS/PPS or no access units")
    return sps, pps, aus


def fragment_nal(nal: bytes, mtu: int = RTP_MTU_PAYLOAD) -> list[bytes]:
    """RTP payloads for one NAL: itself if it fits, else FU-A fragments (RFC 6184 §5.8)."""
    if len(nal) <= mtu:
        return [nal]
    indicator = (nal[0] & 0xE0) | NAL_FU_A
    kind = nal[0] & 0x1F
    body = memoryview(nal)[1:]
    chunk = mtu - 2
    out: list[bytes] = []
    for pos in range(0, len(body), chunk):
        start = 0x80 if pos == 0 else 0
        end = 0x40 if pos + chunk >= len(body) else 0
        out.append(bytes((indicator, start | end | kind)) + bytes(body[pos : pos + chunk]))
    return out


def build_template(payloads: list[bytes]) -> RtpTemplate:
    """Lay payloads out as interleaved frames with zeroed RTP headers (patched per session)."""
    parts: list[bytes] = []
    offsets: list[int] = []
    lengths: list[int] = []
    pos = 0
    for payload in payloads:
        rtp_len = RTP_HEADER_BYTES + len(payload)
        offsets.append(pos)
        lengths.append(rtp_len)
        parts.append(b"$\x00" + struct.pack(">H", rtp_len) + bytes(RTP_HEADER_BYTES) + payload)
        pos += FRAMING_BYTES + rtp_len
    return RtpTemplate(b"".join(parts), tuple(offsets), tuple(lengths))


def _parse_adts(data: bytes) -> tuple[int, list[bytes]]:
    """(AudioSpecificConfig as int, raw AAC frames) from an ADTS stream."""
    frames: list[bytes] = []
    config = 0
    pos = 0
    while pos + 7 <= len(data):
        if data[pos] != 0xFF or (data[pos + 1] & 0xF0) != 0xF0:
            raise MediaError(f"ADTS sync lost at byte {pos}")
        protection_absent = data[pos + 1] & 1
        header_len = 7 if protection_absent else 9
        length = ((data[pos + 3] & 3) << 11) | (data[pos + 4] << 3) | (data[pos + 5] >> 5)
        if not config:
            object_type = (data[pos + 2] >> 6) + 1
            freq_index = (data[pos + 2] >> 2) & 0xF
            channels = ((data[pos + 2] & 1) << 2) | (data[pos + 3] >> 6)
            config = (object_type << 11) | (freq_index << 7) | (channels << 3)
        frames.append(data[pos + header_len : pos + length])
        pos += length
    return config, frames


def _load_audio(spec: ClipSpec, path: Path) -> AudioTrack:
    data = path.read_bytes()
    if spec.audio == "aac":
        config, frames = _parse_adts(data)
        per_loop = spec.seconds * AAC_SAMPLE_RATE // AAC_SAMPLES_PER_FRAME
        payloads = tuple(
            b"\x00\x10" + struct.pack(">H", len(frame) << 3) + frame for frame in frames[:per_loop]
        )
        return AudioTrack(
            codec="aac",
            payload_type=97,
            clock_rate=AAC_SAMPLE_RATE,
            samples_per_packet=AAC_SAMPLES_PER_FRAME,
            rtpmap=f"MPEG4-GENERIC/{AAC_SAMPLE_RATE}/1",
            fmtp=(
                "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;"
                f"indexdeltalength=3;config={config:04X}"
            ),
            payloads=payloads,
        )
    per_loop = spec.seconds * PCMU_SAMPLE_RATE // PCMU_SAMPLES_PER_PACKET
    step = PCMU_SAMPLES_PER_PACKET
    payloads = tuple(data[i * step : (i + 1) * step] for i in range(per_loop))
    payloads = tuple(p for p in payloads if len(p) == step)
    return AudioTrack(
        codec="pcmu",
        payload_type=0,
        clock_rate=PCMU_SAMPLE_RATE,
        samples_per_packet=PCMU_SAMPLES_PER_PACKET,
        rtpmap=f"PCMU/{PCMU_SAMPLE_RATE}",
        fmtp=None,
        payloads=payloads,
    )


def load_clip(spec: ClipSpec, video: Path, audio: Path | None) -> Clip:
    """Read encoded files and pre-packetise them."""
    sps, pps, au_nals = _group_access_units(split_annexb(video.read_bytes()))
    frames = spec.fps * spec.seconds
    if len(au_nals) < frames:
        raise MediaError(f"clip {video} has {len(au_nals)} frames, expected {frames}")
    aus: list[VideoAU] = []
    total = 0
    for nals in au_nals[:frames]:
        payloads: list[bytes] = []
        for nal in nals:
            payloads.extend(fragment_nal(nal))
        size = sum(len(n) for n in nals)
        total += size
        is_idr = any((n[0] & 0x1F) == NAL_IDR for n in nals)
        aus.append(VideoAU(is_idr=is_idr, template=build_template(payloads), size_bytes=size))
    if not aus[0].is_idr:
        raise MediaError(f"clip {video} does not start with an IDR frame")
    track = _load_audio(spec, audio) if (spec.audio is not None and audio is not None) else None
    return Clip(
        spec=spec,
        sps=sps,
        pps=pps,
        aus=tuple(aus),
        audio=track,
        frame_us=1_000_000 // spec.fps,
        duration_us=spec.seconds * 1_000_000,
        bytes_per_loop=total,
    )


_clips: dict[tuple[ClipSpec, Path], Clip] = {}
_clips_lock = threading.Lock()


def ensure_clip(spec: ClipSpec, cache_dir: Path | None = None) -> Clip:
    """The packetised clip for ``spec``: encoded once into the cache, loaded once per process.

    Blocking (encoding can take seconds); from async code call it through ``asyncio.to_thread``.
    """
    directory = (cache_dir or default_cache_dir()).expanduser().resolve()
    key = (spec, directory)
    with _clips_lock:
        clip = _clips.get(key)
        if clip is None:
            video, audio = _encode_files(spec, directory)
            clip = load_clip(spec, video, audio)
            _clips[key] = clip
        return clip


def ensure_snapshot(spec: ClipSpec, cache_dir: Path | None = None) -> bytes:
    """JPEG bytes of the clip's first frame (made once with ffmpeg, cached beside the clip)."""
    directory = (cache_dir or default_cache_dir()).expanduser().resolve()
    video, _ = _encode_files(spec, directory)
    jpeg = directory / f"{spec.stem()}.jpg"
    with _FileLock(directory / f"{spec.stem()}.lock"):
        if not jpeg.exists():
            tmp = jpeg.with_name(f".{jpeg.name}.{os.getpid()}.tmp.jpg")
            argv = _ffmpeg_argv(
                "-f", "h264", "-i", str(video), "-frames:v", "1", "-q:v", "3", "-f", "image2", str(tmp)
            )
            proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
            if proc.returncode != 0 or not tmp.exists():
                tmp.unlink(missing_ok=True)
                raise MediaError(f"ffmpeg could not make a snapshot: {proc.stderr.strip()[-300:]}")
            os.replace(tmp, jpeg)
        return jpeg.read_bytes()


async def snapshot_jpeg(spec: ClipSpec, cache_dir: Path | None = None) -> bytes:
    """:func:`ensure_snapshot` without blocking the event loop."""
    return await asyncio.to_thread(ensure_snapshot, spec, cache_dir)


async def ensure_clip_async(spec: ClipSpec, cache_dir: Path | None = None) -> Clip:
    """:func:`ensure_clip` without blocking the event loop."""
    return await asyncio.to_thread(ensure_clip, spec, cache_dir)
