"""Exports are faststart in one pass: the moov goes into space reserved at the start of the file;
a reserve that proves too small fails with the message the service retries on."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

from recorder.export_ffmpeg import MOOV_TOO_SMALL, concat_list, export_argv, moov_reserve_bytes
from recorder.export_plan import PlannedFile


def top_level_boxes(path: Path) -> list[str]:
    names = []
    with path.open("rb") as fh:
        while header := fh.read(8):
            size, kind = struct.unpack(">I4s", header)
            if size == 1:
                size = struct.unpack(">Q", fh.read(8))[0]
                fh.seek(size - 16, 1)
            else:
                fh.seek(size - 8, 1)
            names.append(kind.decode())
    return names


def make_clip(ffmpeg: str, path: Path) -> None:
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=160x90:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
                    "-t", "4", "-c:v", "libx264", "-g", "25", "-c:a", "aac", "-shortest",
                    str(path)], check=True, capture_output=True, timeout=60)


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_moov_is_written_first_in_one_pass(tmp_path: Path) -> None:
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    clips = [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    for clip in clips:
        make_clip(ffmpeg, clip)
    listing = tmp_path / "list.ffconcat"
    listing.write_text(concat_list([PlannedFile(path=c, start_us=0, inpoint_us=None,
                                                outpoint_us=None, duration_us=None)
                                    for c in clips]))
    out = tmp_path / "out.mp4"
    done = run(export_argv(ffmpeg, listing, out, audio=True,
                           moov_reserve=moov_reserve_bytes(8_000_000)))
    assert done.returncode == 0, done.stderr
    boxes = top_level_boxes(out)
    assert boxes.index("moov") < boxes.index("mdat"), boxes

    too_small = run(export_argv(ffmpeg, listing, tmp_path / "small.mp4", audio=True,
                                moov_reserve=200))
    assert too_small.returncode != 0
    assert MOOV_TOO_SMALL in too_small.stderr
