"""The secrets a test run must never log, and the collector that checks it.

Kept out of conftest.py so that tests and conftest share one registry (conftest is imported under
a different module name than ``tests.conftest``).
"""

from __future__ import annotations

import logging
import traceback


class LogCollector(logging.Handler):
    """Keeps every log line of the run (message and traceback), bounded."""

    MAX_LINES = 500_000

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.lines) >= self.MAX_LINES:
            return
        try:
            text = record.getMessage()
        except Exception:  # a broken record is not our concern here
            return
        if record.exc_info and record.exc_info[1] is not None:
            text += " " + "".join(traceback.format_exception(*record.exc_info))
        self.lines.append(text)


SENSITIVE: set[str] = set()


def register_sensitive(value: str) -> None:
    """A secret that must appear in no log line of this test run."""
    if value and len(value) >= 6:
        SENSITIVE.add(value)


