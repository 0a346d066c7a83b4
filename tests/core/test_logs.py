"""The log-redaction list is bounded: passwords merely tried are kept only among the most recent
MAX_TRANSIENT_SECRETS, while passwords in use stay redacted however many are tried after them.
Before, every password ever tried (each discovery scan, each adoption attempt) was kept forever."""

from __future__ import annotations

import logging
import secrets

import pytest

from vms import logs
from vms.logs import MAX_TRANSIENT_SECRETS, RedactingFilter, redact, register_secret


def _value(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(8)}"


def _logged(message: str, *args: object) -> str:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, message, args, None)
    RedactingFilter().filter(record)
    return record.getMessage()


def test_tried_passwords_are_bounded_and_passwords_in_use_never_fall_out() -> None:
    in_use = _value("in-use")
    register_secret(in_use)
    first_tried = _value("tried-first")
    register_secret(first_tried, transient=True)
    tried = [_value("tried") for _ in range(MAX_TRANSIENT_SECRETS * 4)]
    for value in tried:
        register_secret(value, transient=True)

    assert _logged("camera says %s", in_use) == "camera says ***"
    assert redact(f"rtsp://x/?p={tried[-1]}") == "rtsp://x/?p=***"
    # the oldest tried password has made way for newer ones: the list does not grow
    assert first_tried in redact(f"old {first_tried}")
    assert all(value in redact(value) for value in tried[:MAX_TRANSIENT_SECRETS])
    assert all(redact(value) == "***" for value in tried[-MAX_TRANSIENT_SECRETS:])


def test_a_tried_password_that_comes_into_use_is_kept_for_good() -> None:
    value = _value("adopted")
    register_secret(value, transient=True)
    register_secret(value)  # the camera was adopted with it: its recorder registers it
    register_secret(value, transient=True)  # tried again later: stays permanent
    for _ in range(MAX_TRANSIENT_SECRETS + 10):
        register_secret(_value("flood"), transient=True)
    assert redact(f"p={value}") == "p=***"


def test_registry_counts_and_ignores_short_values() -> None:
    registry = logs.SecretRegistry(max_transient=3)
    registry.add("abc")
    registry.add("")
    assert len(registry) == 0
    registry.add("permanent-1")
    for i in range(10):
        registry.add(f"tried-{i:02d}", transient=True)
    assert len(registry) == 4
    assert registry.redact("permanent-1 tried-09 tried-00") == "*** *** tried-00"


@pytest.mark.parametrize("text", ["rtsp://admin:hunter22@10.0.0.5/main",
                                  "http://u:p4ss@h:80/onvif/device_service"])
def test_credentials_in_urls_are_redacted(text: str) -> None:
    assert "@" in redact(text) and ":***@" in redact(text)
