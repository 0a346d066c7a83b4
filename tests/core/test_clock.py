"""Instants as integer UTC microseconds; zones only at the display edge."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vms.clock import (
    MAX_INSTANT_US,
    MIN_INSTANT_US,
    FakeClock,
    datetime_to_us,
    format_iso,
    parse_instant,
    to_local,
    us_to_datetime,
)


def test_parse_instant_forms() -> None:
    assert parse_instant("0") == 0
    assert parse_instant("1700000000000000") == 1_700_000_000_000_000
    assert parse_instant("1970-01-01T00:00:01Z") == 1_000_000
    assert parse_instant("1970-01-01T06:00:00+06:00") == 0
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_instant("2026-10-25T02:30:00")
    with pytest.raises(ValueError, match="not a time"):
        parse_instant("yesterday")


def test_instants_outside_the_calendar_are_refused() -> None:
    """A 24-digit number once reached the database as an instant (OverflowError: a 500)."""
    assert parse_instant(str(MAX_INSTANT_US)) == MAX_INSTANT_US
    assert parse_instant("9999-12-30T23:59:59.999999Z") == MAX_INSTANT_US
    assert parse_instant(str(MIN_INSTANT_US)) == MIN_INSTANT_US
    assert parse_instant("1970-01-01T00:00:00Z") == MIN_INSTANT_US
    for text in ("175784278357142314942464", str(MAX_INSTANT_US + 1), str(MIN_INSTANT_US - 1),
                 "-175784278357142314942464", "9999-12-30T23:59:59-01:00",
                 "1970-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z"):
        with pytest.raises(ValueError, match="outside the supported range"):
            parse_instant(text)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        datetime_to_us(datetime(2026, 1, 1))


def test_dst_autumn_hour_is_two_distinct_instants() -> None:
    # Europe/Berlin 2026-10-25: 02:00-03:00 local happens twice
    first = parse_instant("2026-10-25T02:30:00+02:00")
    second = parse_instant("2026-10-25T02:30:00+01:00")
    assert second - first == 3600 * 1_000_000
    assert format_iso(first, "Europe/Berlin") == "2026-10-25T02:30:00+02:00"
    assert format_iso(second, "Europe/Berlin") == "2026-10-25T02:30:00+01:00"
    assert to_local(first, "Europe/Berlin").fold == 0


def test_fake_clock_moves_only_forward() -> None:
    clock = FakeClock(start_us=10)
    clock.advance(1.5)
    assert clock.now_us() == 1_500_010 and clock.monotonic_us() == 1_500_000
    clock.set_wall(5)
    assert clock.now_us() == 5 and clock.monotonic_us() == 1_500_000
    with pytest.raises(ValueError):
        clock.advance(-1)


@given(st.integers(min_value=-(2**55), max_value=2**55))
def test_microseconds_round_trip(instant_us: int) -> None:
    assert datetime_to_us(us_to_datetime(instant_us)) == instant_us
    assert us_to_datetime(instant_us).tzinfo == UTC
    if MIN_INSTANT_US <= instant_us <= MAX_INSTANT_US:
        assert parse_instant(us_to_datetime(instant_us).isoformat()) == instant_us
    else:  # before 1970: refused by name, not mis-read
        with pytest.raises(ValueError, match="outside the supported range"):
            parse_instant(us_to_datetime(instant_us).isoformat())


@given(st.sampled_from([MIN_INSTANT_US, MAX_INSTANT_US]), st.timezones())
def test_the_ends_of_the_range_can_be_shown_in_any_zone(instant_us: int, tz: object) -> None:
    assert parse_instant(format_iso(instant_us, str(tz))) == instant_us
