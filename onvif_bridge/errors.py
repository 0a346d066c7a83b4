"""Typed errors of the ONVIF client side.

Everything that can go wrong while reading a camera's answer is one of these, so callers catch
:class:`OnvifError` (or a subclass) and never a parser's or a transport's own exception. Each
message is written for a person: it names what was wrong and, where we know it, what to do.
"""

from __future__ import annotations

AUTH_SUBCODES = frozenset({"NotAuthorized", "FailedAuthentication", "InvalidSecurity"})


class OnvifError(Exception):
    """Base of every error raised by ``onvif_bridge``."""


class OnvifParseError(OnvifError):
    """The answer is not a SOAP message we can read (not XML, truncated, unexpected shape)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OnvifHostileXmlError(OnvifParseError):
    """The answer carries a DTD, an entity declaration or an external reference (XXE, bombs)."""


class OnvifTooLargeError(OnvifParseError):
    """The answer is longer than ``limit_bytes``: reading stopped there and the connection was
    closed (an endless or huge answer never gets into memory whole)."""

    def __init__(self, reason: str, limit_bytes: int) -> None:
        super().__init__(reason)
        self.limit_bytes = limit_bytes


class OnvifHttpStatusError(OnvifParseError):
    """An HTTP error status with an answer that is no SOAP fault (an HTML 500 page, a 404).

    Reported by its ``status``; the body is never parsed further nor repeated to anyone.
    """

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.status = status


class OnvifRefusedUrlError(OnvifError):
    """A URL a camera named that we will not fetch: another host than the camera's (SSRF), a
    redirect away from it, or not HTTP(S)."""


class OnvifFault(OnvifError):
    """The device answered with a SOAP fault.

    ``code`` is the SOAP 1.2 code without prefix, normalised (``Sender``/``Receiver``; vendor
    misspellings such as Hikvision's ``env:Reveiver`` are mapped), ``subcodes`` the chain of
    ONVIF subcodes without prefix (``("InvalidArgVal", "NoProfile")``), ``reason`` the text.
    """

    def __init__(
        self,
        code: str,
        subcodes: tuple[str, ...] = (),
        reason: str = "",
        detail: str = "",
        raw_code: str = "",
    ) -> None:
        self.code = code
        self.subcodes = subcodes
        self.reason = reason
        self.detail = detail
        self.raw_code = raw_code or code
        chain = "/".join((code, *subcodes))
        text = f"SOAP fault {chain}"
        if reason:
            text += f": {reason}"
        if detail and detail != reason:
            text += f" ({detail})"
        super().__init__(text)

    @property
    def is_auth(self) -> bool:
        """True for a wrong user name or password (don't retry; tell the user)."""
        if AUTH_SUBCODES.intersection(self.subcodes):
            return True
        # DVC answers a wrong login with a bare Sender fault "HTTP Error: 401 Unauthorized".
        text = f"{self.reason} {self.detail}".lower()
        return "401" in text or "unauthorized" in text or "not authorized" in text

    @property
    def is_not_supported(self) -> bool:
        """The device does not implement the optional operation."""
        return bool({"ActionNotSupported", "NotImplemented"}.intersection(self.subcodes))


class OnvifAuthError(OnvifError):
    """Wrong user name or password (ONVIF NotAuthorized, HTTP 401)."""


class OnvifUnreachableError(OnvifError):
    """Connection refused, reset or timed out: the camera may be down or not ready yet."""


class DiscoveryTargetError(OnvifError, ValueError):
    """A discovery target cannot be used (bad syntax, range too large)."""
