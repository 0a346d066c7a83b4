"""Recording status of streams and cameras.

This module owns the small status model the API and UI show: each recorded stream is in one state
(``recording``, ``reconnecting``, ``auth_failed``, ``error``, ``stopped``) with a reason a person can
act on and the instant it entered that state; a camera's status is the worst of its streams'. The
delay between reconnect attempts is :class:`vms.backoff.Backoff`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

State = Literal["recording", "reconnecting", "auth_failed", "error", "stopped"]

_SEVERITY: dict[str, int] = {
    "auth_failed": 5, "error": 4, "reconnecting": 3, "recording": 1, "stopped": 0,
}


@dataclass(frozen=True)
class StreamStatus:
    state: State
    reason: str
    since_us: int

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state, "reason": self.reason, "since_us": self.since_us}


def worst(statuses: list[tuple[str, StreamStatus]]) -> StreamStatus | None:
    """The camera-level status: the most severe stream state; its reason names the stream."""
    if not statuses:
        return None
    kind, status = max(statuses, key=lambda item: (_SEVERITY[item[1].state], -item[1].since_us))
    if len(statuses) > 1 and status.state != "recording":
        return StreamStatus(status.state, f"{kind} stream: {status.reason}", status.since_us)
    return status
