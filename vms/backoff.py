"""Capped, jittered exponential backoff: how long to wait before trying again after failures (a
camera's RTSP, its event subscription, the MQTT broker). Jitter keeps many clients that failed
together from retrying together."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    """Delays of ``initial_s * 2**n`` capped at ``max_s``, each scaled by a random 0.5..1.0."""

    initial_s: float = 1.0
    max_s: float = 30.0
    failures: int = 0
    rng: random.Random | None = None

    def delay_after(self, failures: int) -> float:
        """The wait after ``failures`` (≥ 1) failures in a row; counts nothing."""
        base = min(self.max_s, self.initial_s * (2 ** min(max(failures, 1) - 1, 30)))
        return base * (self.rng or random).uniform(0.5, 1.0)

    def next_delay_s(self) -> float:
        """One more failure: its wait."""
        self.failures += 1
        return self.delay_after(self.failures)

    def reset(self) -> None:
        self.failures = 0
