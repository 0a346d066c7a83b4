"""The storage page's drawings, made on the server: byte sizes for people, and the 30-day usage
chart as SVG path data (no JavaScript, no chart library, nothing from a CDN)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vms.clock import US_PER_S
from web.i18n import N_, format_number, gettext

UNITS = (N_("B"), N_("KB"), N_("MB"), N_("GB"), N_("TB"), N_("PB"))
DAY_US = 86_400 * US_PER_S


def format_bytes(n: int | float | None) -> str:
    """``1.5 GB`` (powers of 1024, units translated); an em dash for unknown."""
    if n is None:
        return "—"
    value = float(n)
    unit = 0
    while abs(value) >= 1024 and unit < len(UNITS) - 1:
        value /= 1024
        unit += 1
    number = f"{int(value)}" if unit == 0 else format_number(value, decimals=1)
    return f"{number} {gettext(UNITS[unit])}"


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    used_path: str        # bytes of our recordings on the volume
    disk_path: str        # bytes used on the file system (anything, ours included)
    points: int
    top_bytes: int
    last_used: tuple[float, float] | None  # the newest sample of each line (drawn as a dot)
    last_disk: tuple[float, float] | None
    cap_y: float | None  # the volume's cap, when it has one
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, int]]  # (x, instant) at each day boundary worth a label


def usage_chart(samples: list[dict[str, Any]], now_us: int, days: int = 30, *,
                max_bytes: int = 0, width: int = 720, height: int = 180) -> Chart:
    """Samples (``at_us``, ``used_bytes``, ``free_bytes``, ``total_bytes``) over the ``days``
    before ``now_us`` as two lines on a ``width`` × ``height`` canvas, and the cap
    (``max_bytes``, 0: none) as a level; y from 0 to the largest file-system size seen (or the
    largest value drawn)."""
    start_us = now_us - days * DAY_US
    top = max([s["total_bytes"] for s in samples] + [s["used_bytes"] for s in samples]
              + [max_bytes, 1])

    def x(at_us: int) -> float:
        return round((at_us - start_us) / (now_us - start_us) * width, 1)

    def y(value: int) -> float:
        return round(height - value / top * height, 1)

    def path(values: list[tuple[int, int]]) -> str:
        return " ".join(f"{'M' if i == 0 else 'L'}{x(at)},{y(v)}"
                        for i, (at, v) in enumerate(values))

    used = path([(s["at_us"], s["used_bytes"]) for s in samples])
    disk = path([(s["at_us"], max(0, s["total_bytes"] - s["free_bytes"])) for s in samples])
    y_ticks = [(y(top * f // 4), format_bytes(top * f // 4)) for f in (0, 1, 2, 3, 4)]
    step = max(1, days // 6)
    x_ticks = [(x(now_us - d * DAY_US), now_us - d * DAY_US) for d in range(days, -1, -step)]
    last = samples[-1] if samples else None
    return Chart(width=width, height=height, used_path=used, disk_path=disk, points=len(samples),
                 top_bytes=top, y_ticks=y_ticks, x_ticks=x_ticks,
                 last_used=(x(last["at_us"]), y(last["used_bytes"])) if last else None,
                 last_disk=(x(last["at_us"]), y(max(0, last["total_bytes"] - last["free_bytes"])))
                 if last else None,
                 cap_y=y(max_bytes) if max_bytes else None)
