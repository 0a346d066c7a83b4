"""Safe XML parsing for everything a camera (or anything on the network) sends us.

Answers are parsed with :mod:`defusedxml` with DTDs, entity declarations and external references
forbidden: an XXE probe or a "billion laughs" bomb is refused the moment its ``<!DOCTYPE`` is
seen, before any entity is expanded or any file is read. Size is capped. A multipart (MTOM/XOP)
body is unwrapped to its XML part. Every failure is an :class:`OnvifParseError` (or
:class:`OnvifHostileXmlError`) whose reason a person can read; nothing else escapes.

The helpers below work on plain :mod:`xml.etree.ElementTree` elements and match names by local
name, because vendors use every prefix imaginable and some put elements in the wrong namespace;
the value readers at the end (shared by :mod:`onvif_bridge.parsers` and
:mod:`onvif_bridge.ptz_parse`) turn their text into numbers and booleans the way cameras write them.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # noqa: S405  (only for the Element type; parsing is defused)
from collections.abc import Iterator

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as _defused_fromstring

from onvif_bridge.errors import OnvifHostileXmlError, OnvifParseError

MAX_XML_BYTES = 4 * 1024 * 1024
"""Largest answer we parse (a GetEventProperties of a big NVR is ~300 kB)."""

NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"

Element = ET.Element


def local(tag: object) -> str:
    """Local name of an element tag (``{ns}Name`` or ``Name``); "" for comments and PIs."""
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def namespace(tag: object) -> str:
    if isinstance(tag, str) and tag.startswith("{"):
        return tag[1:].split("}", 1)[0]
    return ""


def _unwrap_multipart(data: bytes) -> bytes:
    """The XML part of a MIME multipart body (Hikvision answers GetSystemBackup with MTOM)."""
    first_line, _, rest = data.partition(b"\n")
    delimiter = first_line.strip()
    if not delimiter.startswith(b"--") or len(delimiter) < 3:
        return data
    for part in rest.split(delimiter):
        part = part.lstrip(b"\r\n")
        if not part or part.startswith(b"--"):
            continue
        head, sep, body = _split_headers(part)
        if sep and b"xml" in head.lower():
            return body.strip()
    raise OnvifParseError("multipart answer without an XML part")


def _split_headers(part: bytes) -> tuple[bytes, bytes, bytes]:
    match = re.search(rb"\r?\n\r?\n", part)
    if match is None:
        return part, b"", b""
    return part[: match.start()], part[match.start() : match.end()], part[match.end() :]


def parse_xml(data: bytes | str) -> Element:
    """Parse untrusted XML into an element tree, refusing DTDs, entities and huge inputs."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise OnvifParseError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_XML_BYTES:
        raise OnvifParseError(f"answer too large ({len(data)} bytes > {MAX_XML_BYTES})")
    stripped = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"--"):
        stripped = _unwrap_multipart(stripped).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped:
        raise OnvifParseError("empty answer")
    if not stripped.startswith(b"<"):
        # Never quote the answer: whatever answers at a camera's address (an internal service a
        # hostile camera points us at) must not get its text repeated to the person asking.
        raise OnvifParseError(f"answer is not XML ({len(data)} bytes)")
    try:
        root = _defused_fromstring(stripped, forbid_dtd=True, forbid_entities=True,
                                   forbid_external=True)
    except DefusedXmlException as exc:
        raise OnvifHostileXmlError(
            f"refused XML with a DTD/entity/external reference ({type(exc).__name__})"
        ) from None
    except ET.ParseError as exc:
        raise OnvifParseError(f"malformed XML: {exc}") from None
    except (ValueError, LookupError, RecursionError, MemoryError) as exc:
        # ValueError: bad encoding declarations; LookupError: unknown codec names.
        raise OnvifParseError(f"unreadable XML ({type(exc).__name__})") from None
    return root


def children(element: Element, name: str) -> Iterator[Element]:
    """Direct children with local name ``name``."""
    for child in element:
        if local(child.tag) == name:
            yield child


def child(element: Element | None, *path: str) -> Element | None:
    """The first descendant following ``path`` of local names, or None."""
    current = element
    for name in path:
        if current is None:
            return None
        current = next(children(current, name), None)
    return current


def text(element: Element | None, *path: str, default: str = "") -> str:
    """Stripped text at ``path`` below ``element`` ("" or ``default`` when missing)."""
    found = child(element, *path) if path else element
    if found is None or found.text is None:
        return default
    return found.text.strip()


def find_first(element: Element, name: str) -> Element | None:
    """The first element anywhere below (and including) ``element`` with local name ``name``."""
    for candidate in element.iter():
        if local(candidate.tag) == name:
            return candidate
    return None


def attr(element: Element | None, name: str, default: str = "") -> str:
    """An attribute by local name, whatever its namespace."""
    if element is None:
        return default
    for key, value in element.attrib.items():
        if local(key) == name:
            return value.strip()
    return default


def required_child(element: Element, name: str, what: str = "") -> Element:
    """The first child named ``name``; OnvifParseError "<Operation> without a <name>" (or
    ``what``) when there is none."""
    found = child(element, name)
    if found is None:
        raise OnvifParseError(f"{local(element.tag)} without {what or 'a ' + name}")
    return found


def soap_body(root: Element) -> Element:
    """The SOAP Body of an envelope; OnvifParseError when ``root`` is not an envelope."""
    if local(root.tag) != "Envelope":
        raise OnvifParseError(f"not a SOAP envelope (root element is <{local(root.tag)[:32]}>)")
    body = child(root, "Body")
    if body is None:
        raise OnvifParseError("SOAP envelope without a Body")
    return body


def soap_header(root: Element) -> Element | None:
    return child(root, "Header")


# --- values read from text ----------------------------------------------------------------------

def not_null(value: str) -> str:
    """Vendors fill absent fields with "NULL" (Hikvision); treat that as empty."""
    return "" if value.upper() == "NULL" else value


def read_int(value: str) -> int | None:
    """An integer (a decimal one truncated); None when empty, "NULL", unreadable or not finite."""
    value = not_null(value.strip())
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        number = read_float(value)
    return None if number is None else int(number)


def read_float(value: str) -> float | None:
    """A finite number; None when empty, "NULL", unreadable, NaN or infinite."""
    value = not_null(value.strip())
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return number


def read_bool(value: str) -> bool | None:
    """xs:boolean (``true``/``false``/``1``/``0``, any case); None otherwise."""
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    return None
