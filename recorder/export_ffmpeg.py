"""The ffmpeg fallback of an export: the concat-demuxer script and the stream-copy command.

Used when the segments cannot be copied directly (recorder/clip.py) or ``export.muxer =
"ffmpeg"``. The command writes a faststart MP4 in one pass by reserving room for the moov at the
start (``-moov_size``); recorder/export.py runs it, follows ``-progress`` and retries with
``+faststart`` when the reserve proves too small.
"""

from __future__ import annotations

from pathlib import Path

from recorder.export_plan import PlannedFile


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "'\\''") + "'"


def concat_list(files: list[PlannedFile]) -> str:
    """The ffmpeg concat-demuxer script for ``files`` (absolute paths, µs directives)."""
    lines = ["ffconcat version 1.0"]
    for f in files:
        lines.append(f"file {_quote(f.path)}")
        if f.inpoint_us is not None:
            lines.append(f"inpoint {f.inpoint_us}us")
        if f.outpoint_us is not None:
            lines.append(f"outpoint {f.outpoint_us}us")
        if f.duration_us is not None:
            lines.append(f"duration {f.duration_us}us")
    return "\n".join(lines) + "\n"


# Bytes of moov per sample are ~13 measured (stsz, stco, stts, stss, ctts); 24 is a safe bound.
MOOV_BYTES_PER_SAMPLE = 24
SAMPLES_PER_S_BOUND = 60 + 50  # video up to 60 fps, AAC up to 48 kHz (~47 frames/s)
MOOV_TOO_SMALL = "reserved_moov_size is too small"


def moov_reserve_bytes(expected_us: int) -> int:
    """Room to reserve at the start of the file so ffmpeg writes the moov there in one pass."""
    return 64 * 1024 + (expected_us // 1_000_000 + 1) * SAMPLES_PER_S_BOUND * MOOV_BYTES_PER_SAMPLE


def export_argv(ffmpeg_exe: str, list_path: Path, out_path: Path, *, audio: bool,
                moov_reserve: int | None = None) -> list[str]:
    """The stream-copy command. With ``moov_reserve`` the moov is written into space reserved at
    the start (``-moov_size``): the file is faststart without ``+faststart``'s second pass over the
    whole file; if the reserve proves too small ffmpeg fails and the caller retries with it."""
    argv = [ffmpeg_exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-nostats",
            "-progress", "pipe:1", "-stats_period", "0.5",
            "-f", "concat", "-safe", "0", "-i", str(list_path), "-map", "0:v:0"]
    if audio:
        argv += ["-map", "0:a:0?"]
    layout = ["-moov_size", str(moov_reserve)] if moov_reserve else ["-movflags", "+faststart"]
    argv += ["-c", "copy", *layout, "-f", "mp4", "-y", str(out_path)]
    return argv
