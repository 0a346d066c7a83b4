"""Time for the whole server: integer UTC microseconds and an injectable clock.

Every instant in the system is an ``int`` count of microseconds since the Unix epoch, UTC, held in
names ending ``_us``. Naive datetimes never appear; a site's IANA zone is applied only when a time is
shown to a person (:func:`to_local`). Code that needs "now" receives a :class:`Clock` instead of
calling :func:`time.time`, so tests can control time with :class:`FakeClock`. See
``docs/design/time.md``.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

US_PER_S = 1_000_000
US_PER_MS = 1_000


class Clock(Protocol):
    """What every time-dependent component is given."""

    def now_us(self) -> int:
        """Wall-clock time, UTC microseconds (may jump when the system clock is set)."""

    def monotonic_us(self) -> int:
        """A clock that never goes backwards, for durations and timeouts."""

    async def sleep(self, seconds: float) -> None:
        """Wait; a fake clock may return at once after advancing itself."""


class SystemClock:
    """The real clock."""

    def now_us(self) -> int:
        return time.time_ns() // 1_000

    def monotonic_us(self) -> int:
        return time.monotonic_ns() // 1_000

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock tests move by hand. ``sleep`` advances the clock instead of waiting."""

    def __init__(self, start_us: int = 1_700_000_000 * US_PER_S) -> None:
        self._now_us = start_us
        self._mono_us = 0

    def now_us(self) -> int:
        return self._now_us

    def monotonic_us(self) -> int:
        return self._mono_us

    def advance(self, seconds: float) -> None:
        delta = round(seconds * US_PER_S)
        if delta < 0:
            raise ValueError("a FakeClock only moves forwards; use set_wall() to jump the wall clock")
        self._now_us += delta
        self._mono_us += delta

    def set_wall(self, now_us: int) -> None:
        """Jump the wall clock (as an NTP step would); the monotonic clock is unaffected."""
        self._now_us = now_us

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


def us_to_datetime(instant_us: int) -> datetime:
    """An aware UTC datetime for an instant."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=instant_us)


def datetime_to_us(value: datetime) -> int:
    """Microseconds for an aware datetime; a naive one is refused (it has no defined instant)."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"naive datetime {value.isoformat()} has no time zone; give an offset")
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * US_PER_S + delta.microseconds


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``, or ValueError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name such as 'Asia/Almaty')") from exc


def to_local(instant_us: int, tz_name: str) -> datetime:
    """The instant as an aware datetime in the zone ``tz_name`` — for display only."""
    return us_to_datetime(instant_us).astimezone(zone(tz_name))


def format_iso(instant_us: int, tz_name: str = "UTC") -> str:
    """ISO-8601 text with the zone's offset, e.g. ``2026-10-25T02:30:00+01:00``."""
    return to_local(instant_us, tz_name).isoformat()


_INT_RE = re.compile(r"^-?\d+$")

MIN_INSTANT_US = 0
"""1970-01-01T00:00:00Z: nothing we record or are asked about is older."""
MAX_INSTANT_US = 253_402_214_399_999_999
"""9999-12-30T23:59:59.999999Z: a day short of the last instant a ``datetime`` holds, so that
:func:`to_local` and :func:`format_iso` can show it in any zone."""


def check_instant(instant_us: int) -> int:
    """``instant_us`` unchanged when it lies from 1970 to 9999-12-30 (what the clock helpers,
    the database and a person can handle), else ValueError naming the range."""
    if not MIN_INSTANT_US <= instant_us <= MAX_INSTANT_US:
        raise _outside_range(str(instant_us))
    return instant_us


def _outside_range(digits: str) -> ValueError:
    shown = digits if len(digits) <= 24 else f"{digits[:20]}..."
    return ValueError(f"{shown} µs is outside the supported range: give an instant from "
                      f"1970-01-01T00:00:00Z ({MIN_INSTANT_US}) to 9999-12-30T23:59:59.999999Z "
                      f"({MAX_INSTANT_US})")


def parse_instant(text: str) -> int:
    """Parse a query-parameter instant: integer microseconds or ISO-8601 *with* an offset, between
    :data:`MIN_INSTANT_US` and :data:`MAX_INSTANT_US`.

    Raises ValueError with a message a person can act on, also for instants outside
    :func:`check_instant`'s range.
    """
    value = text.strip()
    if not value:
        raise ValueError("empty time; give ISO-8601 with an offset or integer microseconds")
    if _INT_RE.match(value):
        if len(value) > 24:  # far outside the range; int() of thousands of digits is refused
            raise _outside_range(value)
        return check_instant(int(value))
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not a time: give ISO-8601 with an offset (2026-03-29T01:30:00+00:00) "
            "or integer UTC microseconds"
        ) from exc
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset; add one (e.g. +00:00) so the instant is defined")
    return check_instant(datetime_to_us(parsed))
