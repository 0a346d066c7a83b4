"""Recording schedules: weekly windows in a site's time zone, and whether an instant is inside one.

A camera in mode ``scheduled`` stores its windows as JSON in ``Camera.schedule``:
``[{"days": "mon-fri", "start": "07:00", "end": "19:00"}]``. ``days`` is a comma list of day names
or ranges (``mon-fri``, ``sat,sun``, ``*``); ``start``/``end`` are local wall-clock times
``HH:MM[:SS]`` in the site's IANA zone; ``end`` ≤ ``start`` means the window runs past midnight
(into the next day). Evaluation is a pure function of an instant (UTC µs from the injected Clock),
so DST is handled by :mod:`zoneinfo` and tests can use any instant. The supervisor re-evaluates every
scheduled camera each tick; no APScheduler job per camera is needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from vms.clock import to_local

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ScheduleError(ValueError):
    """A schedule a person wrote that cannot be understood; the message says which part."""


@dataclass(frozen=True)
class Window:
    days: frozenset[int]
    """Weekdays (0 = Monday) on which the window starts."""
    start_s: int
    """Seconds after local midnight."""
    end_s: int

    def as_dict(self) -> dict[str, str]:
        return {"days": _days_text(self.days), "start": _hms(self.start_s), "end": _hms(self.end_s)}


def _hms(seconds: int) -> str:
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")


def _days_text(days: frozenset[int]) -> str:
    if len(days) == 7:
        return "*"
    parts: list[str] = []
    run: list[int] = []
    for d in [*sorted(days), 99]:  # 99: sentinel that ends the last run
        if run and d != run[-1] + 1:
            parts.append(f"{DAY_NAMES[run[0]]}-{DAY_NAMES[run[-1]]}" if len(run) >= 3
                         else ",".join(DAY_NAMES[x] for x in run))
            run = []
        run.append(d)
    return ",".join(parts)


def _parse_days(text: str) -> frozenset[int]:
    text = text.strip().lower()
    if text in ("*", "", "daily", "all"):
        return frozenset(range(7))
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        first, sep, last = part.partition("-")
        try:
            a = DAY_NAMES.index(first[:3])
            b = DAY_NAMES.index(last[:3]) if sep else a
        except ValueError:
            raise ScheduleError(f"unknown day {part!r} (use mon..sun, e.g. 'mon-fri')") from None
        day = a
        while True:
            out.add(day)
            if day == b:
                break
            day = (day + 1) % 7
    return frozenset(out)


def _parse_time(text: str) -> int:
    parts = text.strip().split(":")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise ScheduleError(f"bad time {text!r} (use HH:MM or HH:MM:SS)") from None
    if len(nums) not in (2, 3):
        raise ScheduleError(f"bad time {text!r} (use HH:MM or HH:MM:SS)")
    h, m, s = (nums + [0])[:3]
    if not (0 <= h <= 24 and 0 <= m < 60 and 0 <= s < 60) or (h == 24 and (m or s)):
        raise ScheduleError(f"bad time {text!r}")
    return h * 3600 + m * 60 + s


def parse_schedule(text: str) -> list[Window]:
    """Parse ``Camera.schedule``; an empty text is no window (a scheduled camera never records)."""
    if not text.strip():
        return []
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScheduleError(f"schedule is not JSON: {exc}") from None
    if not isinstance(items, list):
        raise ScheduleError("schedule must be a JSON list of windows")
    windows = []
    for item in items:
        if not isinstance(item, dict) or not {"start", "end"} <= set(item):
            raise ScheduleError('each window needs "start" and "end" (and optional "days")')
        windows.append(Window(_parse_days(str(item.get("days", "*"))),
                              _parse_time(str(item["start"])), _parse_time(str(item["end"]))))
    return windows


def parse_schedule_text(text: str) -> list[Window]:
    """A schedule as a person types it: the JSON of :func:`parse_schedule`, or one window a line,
    ``DAYS HH:MM-HH:MM`` (``mon-fri 07:00-19:00``, ``* 22:00-06:00``; days may be left out)."""
    stripped = text.strip()
    if stripped.startswith("["):
        return parse_schedule(stripped)
    windows = []
    for n, line in enumerate(stripped.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        days, _, span = line.rpartition(" ")
        start, sep, end = span.partition("-")
        if not sep:
            raise ScheduleError(f"line {n}: {line!r} is not 'DAYS HH:MM-HH:MM' "
                                "(e.g. 'mon-fri 07:00-19:00')")
        try:
            windows.append(Window(_parse_days(days or "*"), _parse_time(start),
                                  _parse_time(end)))
        except ScheduleError as exc:
            raise ScheduleError(f"line {n}: {exc}") from None
    return windows


def schedule_lines(windows: list[Window]) -> str:
    """The line form of :func:`parse_schedule_text` (for a text area)."""
    return "\n".join(f"{w.as_dict()['days']} {w.as_dict()['start']}-{w.as_dict()['end']}"
                     for w in windows)


def dump_schedule(windows: list[Window]) -> str:
    return json.dumps([w.as_dict() for w in windows])


def in_window(windows: list[Window], tz_name: str, now_us: int) -> bool:
    """True when local time at ``now_us`` in ``tz_name`` lies inside one of ``windows``."""
    if not windows:
        return False
    local = to_local(now_us, tz_name)
    sec = local.hour * 3600 + local.minute * 60 + local.second
    today = local.weekday()
    yesterday = (local - timedelta(days=1)).weekday()
    for w in windows:
        if w.start_s < w.end_s:
            if today in w.days and w.start_s <= sec < w.end_s:
                return True
        else:  # past midnight (or a whole day when start == end)
            if today in w.days and sec >= w.start_s:
                return True
            if yesterday in w.days and sec < w.end_s:
                return True
    return False
