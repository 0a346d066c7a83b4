"""Camera URLs and their credentials, shared by the ONVIF bridge and the recorder.

Camera URLs are stored without credentials; a credentialed URL exists only for as long as a
request or ffmpeg's stdin script (:func:`vms.proc.ffmpeg_input`, never an argv) needs it, and
anything logged or shown goes through :func:`redact_url` (or :mod:`vms.logs`' filter) first.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit


def credentialed_url(url: str, username: str, password: str) -> str:
    """``url`` with ``username:password@`` (percent-encoded) in its authority; never for an argv."""
    if not username:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    userinfo = quote(username, safe="")
    if password:
        userinfo += ":" + quote(password, safe="")
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))
