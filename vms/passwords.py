"""Passwords: argon2id hashing on a bounded pool of its own, and the sign-in throttle.

An argon2id check costs ~64 MiB and ~0.15 s of one to two cores. It never runs on the database
threads (the recorder writes its index through the same writer) nor on the event loop: the server
runs every check on a :class:`PasswordPool` of a few low-priority threads, with a cap on how many
checks may wait; beyond it :class:`PasswordPoolBusy` says when to retry. :class:`LoginThrottle`
counts each sign-in attempt *before* its password is checked, so parallel guesses are counted as
they arrive, not as they finish.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import secrets
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from vms.clock import US_PER_S, Clock

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 10
# checks allowed to wait per pool thread; beyond that a sign-in is answered 503 at once
WAITING_PER_WORKER = 16
# nice value of the pool's threads (and of the lane threads argon2 starts from them), so that the
# event loop, the database writer and ffmpeg get the processor first while sign-ins pile up
WORKER_NICE = 10
CHECK_S = 0.15  # about what one argon2id check takes on one core of a small server

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


class AccountError(ValueError):
    """A user or site request that cannot be carried out, worded for the person who asked."""


@dataclass(frozen=True)
class HashedPassword:
    """A new password that passed the strength check and was hashed off the database threads."""

    value: str


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def hash_new_password(password: str) -> HashedPassword:
    """Check strength and hash, on the calling thread (for the CLI; the server uses the pool)."""
    check_password_strength(password)
    return HashedPassword(hash_password(password))


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _unmatchable_hash() -> str:
    """An argon2id hash with ``_hasher``'s parameters (so checking it costs what a real one does)
    and random salt and digest, so no password matches it. Built, not hashed: an argon2 hash at
    import cost every ``vms`` command and server start ~0.2 s of CPU and 64 MiB."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode().rstrip("=")

    return (f"$argon2id$v=19$m={_hasher.memory_cost},t={_hasher.time_cost},"
            f"p={_hasher.parallelism}${b64(secrets.token_bytes(_hasher.salt_len))}"
            f"${b64(secrets.token_bytes(_hasher.hash_len))}")


# A hash to verify against when the user does not exist, so timing does not reveal usernames.
_DUMMY_HASH = _unmatchable_hash()


def verify_or_dummy(password_hash: str | None, password: str) -> bool:
    """Verify against ``password_hash``; with None (no such user) spend the same time and refuse."""
    if password_hash is None:
        verify_password(_DUMMY_HASH, password)
        return False
    return verify_password(password_hash, password)


class PasswordPoolBusy(Exception):
    """Every password thread is busy and the waiting line is full."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many sign-ins are being checked; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


def _lower_thread_priority() -> None:
    if sys.platform.startswith("linux"):  # per-thread nice values are a Linux feature
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)
        except OSError as exc:
            log.warning("password threads run at normal priority: %s", exc)


class PasswordPool:
    """A few threads that hash and verify passwords, and the cap on checks waiting for them.

    Call from the event loop only (the count of checks under way is kept there)."""

    def __init__(self, workers: int = 1, waiting_per_worker: int = WAITING_PER_WORKER) -> None:
        if workers < 1:
            raise ValueError(f"password pool: workers must be at least 1, got {workers}")
        self.workers = workers
        self.capacity = workers * (1 + waiting_per_worker)
        self._under_way = 0
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="password",
                                            initializer=_lower_thread_priority)

    @property
    def under_way(self) -> int:
        """Checks running or waiting."""
        return self._under_way

    @contextlib.contextmanager
    def place(self) -> Iterator[None]:
        """Hold a place in the pool (raise :class:`PasswordPoolBusy` at once when it is full),
        so a sign-in is refused before it costs even a database read."""
        if self._under_way >= self.capacity:
            # about the time the waiting line takes to drain, plus as much again at random, so
            # that the clients turned away together do not all come back together
            drain_s = 1 + int(self._under_way * CHECK_S) // self.workers
            raise PasswordPoolBusy(retry_after_s=drain_s + secrets.randbelow(drain_s + 1))
        self._under_way += 1
        try:
            yield
        finally:
            self._under_way -= 1

    async def _run(self, fn, *args):  # type: ignore[no-untyped-def]
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; None as the hash (unknown user) costs the same.
        Call it inside :meth:`place`."""
        return bool(await self._run(verify_or_dummy, password_hash, password))

    async def hash_new(self, password: str) -> HashedPassword:
        """A new password checked for strength, then hashed on the pool."""
        check_password_strength(password)
        with self.place():
            return HashedPassword(str(await self._run(hash_password, password)))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class Throttled(Exception):
    """A sign-in refused before its password was looked at. ``first``: the first refusal of this
    lock, worth an audit entry (the ones after it are not)."""

    def __init__(self, retry_after_s: int, first: bool) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s
        self.first = first


@dataclass
class _Key:
    failures: list[int]
    in_flight: int = 0
    locked_until_us: int = 0
    lock_reported: bool = False


class LoginThrottle:
    """Refuse sign-ins after repeated failures, per account and per address (in memory).

    ``max_failures`` within ``window_s`` locks the key for ``lock_s``; a lock holds to its end, a
    right password included. An attempt counts from the moment it starts (:meth:`begin`), not when
    its check ends: while checks are under way they count as failures, so parallel guesses are
    refused once failures plus checks under way reach ``max_failures``. :meth:`finish` turns an
    attempt into a failure (which may lock the key) or, on success, forgets the key's failures.
    Call both from the event loop (no await between the test and the count makes them atomic).
    """

    MAX_KEYS = 10_000

    def __init__(self, clock: Clock, max_failures: int = 5, window_s: int = 300,
                 lock_s: int = 300) -> None:
        self.clock = clock
        self.max_failures = max_failures
        self.window_us = window_s * US_PER_S
        self.lock_us = lock_s * US_PER_S
        self._keys: OrderedDict[str, _Key] = OrderedDict()

    def _key(self, name: str, now: int) -> _Key:
        key = self._keys.get(name)
        if key is None:
            key = self._keys[name] = _Key(failures=[])
        else:
            self._keys.move_to_end(name)
        key.failures = [t for t in key.failures if now - t < self.window_us]
        return key

    def begin(self, *names: str) -> None:
        """Count an attempt on every key, or raise :class:`Throttled` without counting it."""
        now = self.clock.monotonic_us()
        keys = [self._key(n, now) for n in names]
        locked = [k for k in keys if k.locked_until_us > now]
        if locked:
            wait_us = max(k.locked_until_us for k in locked) - now
            first = any(not k.lock_reported for k in locked)
            for k in locked:
                k.lock_reported = True
            raise Throttled(retry_after_s=max(1, -(-wait_us // US_PER_S)), first=first)
        if any(len(k.failures) + k.in_flight >= self.max_failures for k in keys):
            # the checks under way may yet lock the key: come back when they are done
            raise Throttled(retry_after_s=1, first=False)
        for k in keys:
            k.in_flight += 1
        self._bound()

    def finish(self, *names: str, ok: bool) -> None:
        """End an attempt :meth:`begin` counted: a success or a failure."""
        now = self.clock.monotonic_us()
        for name in names:
            key = self._key(name, now)
            key.in_flight = max(0, key.in_flight - 1)
            if ok:
                key.failures.clear()
                continue
            key.failures.append(now)
            if len(key.failures) >= self.max_failures and key.locked_until_us <= now:
                key.locked_until_us = now + self.lock_us
                key.lock_reported = False

    def release(self, *names: str) -> None:
        """End an attempt whose password was never checked (the pool was full): not a failure."""
        for name in names:
            key = self._keys.get(name)
            if key is not None:
                key.in_flight = max(0, key.in_flight - 1)

    def _bound(self) -> None:
        """Forget the least recently used idle keys beyond :attr:`MAX_KEYS` (a locked key or one
        with checks under way is kept)."""
        if len(self._keys) <= self.MAX_KEYS:
            return
        now = self.clock.monotonic_us()
        for name in list(self._keys):
            if len(self._keys) <= self.MAX_KEYS:
                break
            key = self._keys[name]
            if key.in_flight == 0 and key.locked_until_us <= now:
                del self._keys[name]
