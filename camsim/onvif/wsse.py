"""WS-Security UsernameToken checking, the way a camera does it.

PasswordDigest is ``Base64(SHA1(nonce + created + password))``; PasswordText is compared as is.
``Created`` must lie within :data:`FRESHNESS_S` of the camera's own clock (its offset included),
so a client whose clock disagrees with the camera's is refused, as real cameras refuse it. A nonce
seen within the freshness window is a replay and is refused too. Every refusal is the same
``env:Sender / ter:NotAuthorized`` fault; the log says why, never with the password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import xml.etree.ElementTree as ET  # noqa: S405 - tree walking only
from collections.abc import Callable
from datetime import datetime

from camsim.onvif.soap import SoapFault, find_local, local_name

logger = logging.getLogger(__name__)

FRESHNESS_S = 300
US = 1_000_000
# 401 with an ONVIF fault body: what the DVC DCN-BM2220LPR (gSOAP) answers to a missing/bad token.
NOT_AUTHORIZED_HTTP_STATUS = 401


def not_authorized() -> SoapFault:
    return SoapFault(
        "Sender not Authorized",
        code="Sender",
        subcodes=("ter:NotAuthorized",),
        http_status=NOT_AUTHORIZED_HTTP_STATUS,
    )


def password_digest(nonce: bytes, created: str, password: str) -> str:
    """The UsernameToken digest for ``nonce`` (raw bytes) and ``created`` (as sent)."""
    sha = hashlib.sha1(nonce + created.encode() + password.encode(), usedforsecurity=False)
    return base64.b64encode(sha.digest()).decode()


def parse_created_us(text: str) -> int:
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("Created has no zone")
    return int(parsed.timestamp() * US)


class UsernameTokenChecker:
    """Checks the Security header of a request for one user/password pair."""

    def __init__(
        self,
        name: str,
        camera_now_us: Callable[[], int],
        username: str,
        password: str,
        freshness_s: int = FRESHNESS_S,
    ) -> None:
        self.name = name
        self._now_us = camera_now_us
        self.username = username
        self.password = password
        self.freshness_s = freshness_s
        self._seen_nonces: dict[bytes, int] = {}

    def check(self, header: ET.Element | None) -> str:
        """The authenticated username, or :class:`SoapFault` ``ter:NotAuthorized``."""
        token = None
        if header is not None:
            security = next((c for c in header if local_name(c.tag) == "Security"), None)
            if security is not None:
                token = find_local(security, "UsernameToken")
        if token is None:
            logger.info("%s: request without a UsernameToken refused", self.name)
            raise not_authorized()
        user_el = find_local(token, "Username")
        pass_el = find_local(token, "Password")
        username = (user_el.text or "").strip() if user_el is not None else ""
        if pass_el is None or username != self.username:
            logger.info("%s: unknown user %r refused", self.name, username)
            raise not_authorized()
        supplied = (pass_el.text or "").strip()
        if pass_el.get("Type", "").endswith("#PasswordDigest"):
            self._check_digest(token, supplied)
        elif not hmac.compare_digest(supplied.encode(), self.password.encode()):
            logger.info("%s: wrong PasswordText for %r", self.name, username)
            raise not_authorized()
        return username

    def _check_digest(self, token: ET.Element, supplied: str) -> None:
        nonce_el = find_local(token, "Nonce")
        created_el = find_local(token, "Created")
        if nonce_el is None or created_el is None or not nonce_el.text or not created_el.text:
            logger.info("%s: PasswordDigest without Nonce/Created refused", self.name)
            raise not_authorized()
        try:
            nonce = base64.b64decode(nonce_el.text.strip(), validate=True)
            created_us = parse_created_us(created_el.text)
        except (binascii.Error, ValueError):
            logger.info("%s: unreadable Nonce or Created refused", self.name)
            raise not_authorized() from None
        now_us = self._now_us()
        skew_s = (created_us - now_us) / US
        if abs(skew_s) > self.freshness_s:
            logger.info(
                "%s: digest Created %s is %.0f s from the camera clock; refused",
                self.name, created_el.text.strip(), skew_s,
            )
            raise not_authorized()
        expected = password_digest(nonce, created_el.text.strip(), self.password)
        if not hmac.compare_digest(expected.encode(), supplied.encode()):
            logger.info("%s: wrong PasswordDigest", self.name)
            raise not_authorized()
        self._forget_old_nonces(now_us)
        if nonce in self._seen_nonces:
            logger.info("%s: replayed nonce refused", self.name)
            raise not_authorized()
        self._seen_nonces[nonce] = now_us

    def _forget_old_nonces(self, now_us: int) -> None:
        horizon = now_us - 2 * self.freshness_s * US
        for nonce in [n for n, seen in self._seen_nonces.items() if seen < horizon]:
            del self._seen_nonces[nonce]
