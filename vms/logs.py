"""Logging set-up: text or JSON lines, and a filter that keeps credentials out of every line.

Credentials must never be logged in the first place; :class:`RedactingFilter` is the second line of
defence: it rewrites ``scheme://user:password@`` in URLs and any value registered with
:func:`register_secret` to ``***``. Passwords in use (a stored camera's, handed to its recorder or
live view) are kept for the life of the process; passwords merely tried (a discovery scan, an
interrogation before adoption) are ``transient``: only the most recent
:data:`MAX_TRANSIENT_SECRETS` of them are kept, so trying passwords cannot grow the list (and the
cost of every log line) without end.

Context fields: :func:`bind_log_context` sets fields (``camera_id``, ``stream``, ``run_id``) for the
current asyncio task and the tasks and threads it starts from then on (a :mod:`contextvars`
variable); :class:`ContextFilter` copies them onto each record, and JSON lines carry them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections import OrderedDict
from contextvars import ContextVar

_URL_CRED_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)([^/\s:@]+):([^/\s@]+)@")
MAX_TRANSIENT_SECRETS = 256


class SecretRegistry:
    """Values to redact: permanent ones, and a bounded, least-recently-registered-first-out set of
    transient ones. Thread-safe (registered from the event loop and from worker threads)."""

    def __init__(self, max_transient: int = MAX_TRANSIENT_SECRETS) -> None:
        self.max_transient = max_transient
        self._permanent: set[str] = set()
        self._transient: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._by_length: tuple[str, ...] = ()

    def add(self, value: str, *, transient: bool = False) -> None:
        if not value or len(value) < 4:
            return
        with self._lock:
            if value in self._permanent:
                return
            if transient:
                if value in self._transient:
                    self._transient.move_to_end(value)
                    return
                self._transient[value] = None
                while len(self._transient) > self.max_transient:
                    self._transient.popitem(last=False)
            else:
                self._transient.pop(value, None)
                self._permanent.add(value)
            self._by_length = tuple(sorted((*self._permanent, *self._transient),
                                           key=len, reverse=True))

    def __len__(self) -> int:
        return len(self._by_length)

    def redact(self, text: str) -> str:
        for value in self._by_length:  # longest first: a password holding another stays hidden
            if value in text:
                text = text.replace(value, "***")
        return text


_secrets = SecretRegistry()


def register_secret(value: str, *, transient: bool = False) -> None:
    """Redact ``value`` from every future log line (values shorter than 4 characters are ignored).

    ``transient=True`` for a password only being tried: it is redacted while it is among the last
    :data:`MAX_TRANSIENT_SECRETS` tried; a permanent one (a password in use) for good.
    """
    _secrets.add(value, transient=transient)


def redact(text: str) -> str:
    return _secrets.redact(_URL_CRED_RE.sub(r"\1\2:***@", text))


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if clean != message or record.args:
            record.msg = clean
            record.args = None
        return True


CONTEXT_FIELDS = ("camera_id", "stream", "run_id")
"""Fields :func:`bind_log_context` may set; JSON lines carry those that are set."""

_context: ContextVar[tuple[tuple[str, object], ...]] = ContextVar("vms_log_context", default=())


def bind_log_context(**fields: object) -> None:
    """Add (or, with ``None``, remove) context fields of every later log line of this task and of
    the tasks and threads it starts afterwards. Only :data:`CONTEXT_FIELDS` are accepted."""
    unknown = set(fields) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"unknown log context field(s): {', '.join(sorted(unknown))}")
    current = dict(_context.get())
    for key, value in fields.items():
        if value is None:
            current.pop(key, None)
        else:
            current[key] = value
    _context.set(tuple(current.items()))


def log_context() -> dict[str, object]:
    """The context fields set for the current task."""
    return dict(_context.get())


class ContextFilter(logging.Filter):
    """Copies the current context fields onto each record (unless the call gave them itself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts_us": int(record.created * 1_000_000),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                doc[key] = value
        if record.exc_info or record.exc_text:
            doc["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(doc, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.addFilter(ContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("peewee_migrate").setLevel(logging.WARNING)
    logging.getLogger("zeep").setLevel(logging.WARNING)
