"""Write the web app's PNG icons (web/static/img/icon-*.png) from the favicon's design.

Pure Python (zlib + struct), no imaging library: a dark rounded square, a blue lens ring and a light
pupil, drawn with 4x4 supersampling. ``icon-maskable-512.png`` fills the whole square and keeps the
lens inside the central 60 % (the maskable safe zone is the central 80 % circle).
Run ``python3 -m tools.make_icons`` after changing the design; the PNGs are committed.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "web" / "static" / "img"
BG = (0x1D, 0x23, 0x30)
RING = (0x1F, 0x6F, 0xEB)
PUPIL = (0xDB, 0xE4, 0xF0)
SAMPLES = 4


def png(width: int, height: int, rows: list[bytes]) -> bytes:
    """An RGBA PNG from raw rows (4 bytes a pixel)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    raw = b"".join(b"\x00" + row for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def _colour_at(x: float, y: float, size: int, maskable: bool) -> tuple[int, int, int, int]:
    """The colour of one sample point; the favicon's 32-unit design scaled to ``size``."""
    unit = size / 32
    c = size / 2
    scale = 0.75 if maskable else 1.0  # the lens shrinks into the safe zone
    if not maskable:  # rounded corners (rx = 6 units)
        r = 6 * unit
        cx = min(max(x, r), size - r)
        cy = min(max(y, r), size - r)
        if (x - cx) ** 2 + (y - cy) ** 2 > r * r:
            return (0, 0, 0, 0)
    d = ((x - c) ** 2 + (y - c) ** 2) ** 0.5 / (unit * scale)
    if d <= 2.5:
        return (*PUPIL, 255)
    if 5.5 <= d <= 8.5:
        return (*RING, 255)
    return (*BG, 255)


def draw(size: int, maskable: bool = False) -> bytes:
    rows = []
    step = 1 / SAMPLES
    for py in range(size):
        row = bytearray()
        for px in range(size):
            acc = [0, 0, 0, 0]
            for sy in range(SAMPLES):
                for sx in range(SAMPLES):
                    r, g, b, a = _colour_at(px + (sx + .5) * step, py + (sy + .5) * step,
                                            size, maskable)
                    acc[0] += r * a
                    acc[1] += g * a
                    acc[2] += b * a
                    acc[3] += a
            alpha = acc[3] / (SAMPLES * SAMPLES)
            if acc[3]:
                row += bytes((acc[0] // acc[3], acc[1] // acc[3], acc[2] // acc[3], round(alpha)))
            else:
                row += b"\x00\x00\x00\x00"
        rows.append(bytes(row))
    return png(size, size, rows)


ICONS = {"icon-192.png": (192, False), "icon-512.png": (512, False),
         "icon-maskable-512.png": (512, True)}


def main() -> int:
    for name, (size, maskable) in ICONS.items():
        (IMG / name).write_bytes(draw(size, maskable))
        print(IMG / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
