"""The sign-in throttle's counting, the password pool's cap, and the unknown user's check."""

from __future__ import annotations

import asyncio

import pytest
from argon2.exceptions import VerifyMismatchError

from vms import passwords
from vms.clock import FakeClock
from vms.passwords import (
    AccountError,
    LoginThrottle,
    PasswordPool,
    PasswordPoolBusy,
    Throttled,
    hash_password,
)

KEYS = ("user:op", "addr:10.0.0.9")


def test_attempts_under_way_count_and_failures_lock_until_the_lock_ends() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(clock, max_failures=3, window_s=60, lock_s=120)
    for _ in range(3):
        throttle.begin(*KEYS)
    with pytest.raises(Throttled) as busy:  # three checks under way: the fourth waits
        throttle.begin("user:op", "addr:10.0.0.10")
    assert busy.value.retry_after_s == 1 and not busy.value.first
    throttle.begin("user:other", "addr:10.0.0.11")  # other keys are not affected
    for _ in range(3):
        throttle.finish(*KEYS, ok=False)
    with pytest.raises(Throttled) as locked:
        throttle.begin("user:op", "addr:10.0.0.12")  # the account is locked from anywhere
    assert locked.value.retry_after_s == 120 and locked.value.first
    with pytest.raises(Throttled) as again:
        throttle.begin("user:op", "addr:10.0.0.12")
    assert not again.value.first  # reported once per lock
    clock.advance(119)
    with pytest.raises(Throttled):
        throttle.begin(*KEYS)
    clock.advance(1)
    throttle.begin(*KEYS)  # the lock is over; the old failures are out of the window
    throttle.finish(*KEYS, ok=True)


def test_a_success_forgets_failures_and_a_release_is_no_failure() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(clock, max_failures=3, window_s=60, lock_s=120)
    for _ in range(2):
        throttle.begin(*KEYS)
        throttle.finish(*KEYS, ok=False)
    throttle.begin(*KEYS)
    throttle.finish(*KEYS, ok=True)
    for _ in range(5):  # never checked (the password pool was full): not failures
        throttle.begin(*KEYS)
        throttle.release(*KEYS)
    for _ in range(2):
        throttle.begin(*KEYS)
        throttle.finish(*KEYS, ok=False)
    throttle.begin(*KEYS)  # the third failure since the success locks
    throttle.finish(*KEYS, ok=False)
    with pytest.raises(Throttled):
        throttle.begin(*KEYS)


def test_a_spray_of_names_does_not_flush_a_lock() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(clock, max_failures=2, window_s=60, lock_s=120)
    throttle.MAX_KEYS = 100
    for _ in range(2):
        throttle.begin("user:victim")
        throttle.finish("user:victim", ok=False)
    for i in range(500):
        throttle.begin(f"user:spray{i}")
        throttle.finish(f"user:spray{i}", ok=False)
    assert len(throttle._keys) <= 101
    with pytest.raises(Throttled):
        throttle.begin("user:victim")


async def test_the_pool_checks_passwords_and_refuses_beyond_its_capacity() -> None:
    pool = PasswordPool(workers=1, waiting_per_worker=1)
    try:
        stored = hash_password("the-right-password")
        with pool.place():
            assert await pool.verify(stored, "the-right-password")
            assert not await pool.verify(stored, "a-wrong-password")
            assert not await pool.verify(None, "the-right-password")  # no such user
            with pool.place():
                assert pool.under_way == 2 == pool.capacity
                with pytest.raises(PasswordPoolBusy) as busy, pool.place():
                    pass
                assert busy.value.retry_after_s >= 1
                with pytest.raises(PasswordPoolBusy):
                    await pool.hash_new("long-enough-password")
        assert pool.under_way == 0
        with pytest.raises(AccountError, match="too short"):
            await pool.hash_new("short")
        hashed = await pool.hash_new("long-enough-password")
        with pool.place():
            assert await pool.verify(hashed.value, "long-enough-password")
        # checks run off the event loop: it keeps turning while one is under way
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        ticker = asyncio.create_task(tick())
        with pool.place():
            await pool.verify(stored, "a-wrong-password")
        ticker.cancel()
        assert ticks > 3
    finally:
        pool.close()


def test_an_unknown_user_costs_a_real_check_and_never_matches() -> None:
    """The hash checked for a user that does not exist is built, not hashed, at import: it has the
    hasher's parameters (argon2 would ask to rehash otherwise), so it costs a real check, and it is
    well formed (a mismatch, not an invalid hash refused at once)."""
    dummy = passwords._DUMMY_HASH
    assert not passwords._hasher.check_needs_rehash(dummy)
    with pytest.raises(VerifyMismatchError):
        passwords._hasher.verify(dummy, "correct-horse-9")
    assert passwords.verify_or_dummy(None, "correct-horse-9") is False
    real = hash_password("correct-horse-9")
    assert dummy.rsplit("$", 2)[0] == real.rsplit("$", 2)[0]  # same algorithm, version, costs
    assert len(dummy) == len(real)
