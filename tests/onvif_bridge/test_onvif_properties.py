"""Property tests: no input, however broken, makes the parsers raise anything but our errors."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onvif_bridge.errors import OnvifError
from onvif_bridge.parsers import parse_response
from onvif_bridge.wsd import parse_discovery

HERE = Path(__file__).resolve()
FIXTURES = HERE.parents[2].parent / "shared" / "fixtures" / "onvif"
SEEDS = [
    (FIXTURES / name).read_bytes()
    for name in (
        "dvc-dcn-bm2220lpr__PullMessages__motion.xml",
        "hikvision__PullMessages.xml",
        "dvc-dcn-bm2220lpr__ProbeMatches.xml",
        "hikvision-ds-2cd2012-i__GetProfiles.xml",
    )
    if (FIXTURES / name).is_file()
] or [
    # Without the shared folder, mutate one message of our own.
    (HERE.parent / "data" / "media2__GetProfiles.xml").read_bytes()
]

EVENT_TEMPLATE = (
    "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope' "
    "xmlns:wsnt='http://docs.oasis-open.org/wsn/b-2' xmlns:tt='http://www.onvif.org/ver10/schema' "
    "xmlns:tev='http://www.onvif.org/ver10/events/wsdl'><s:Body><tev:PullMessagesResponse>"
    "<tev:CurrentTime>{now}</tev:CurrentTime><wsnt:NotificationMessage>"
    "<wsnt:Topic>{topic}</wsnt:Topic><wsnt:Message><tt:Message UtcTime='{utc}' "
    "PropertyOperation='{op}'><tt:Source><tt:SimpleItem Name='{name}' Value='{value}'/>"
    "</tt:Source><tt:Data><tt:SimpleItem Name='{name}' Value='{value}'/></tt:Data>"
    "</tt:Message></wsnt:Message></wsnt:NotificationMessage></tev:PullMessagesResponse>"
    "</s:Body></s:Envelope>"
)


def _check(data: bytes) -> None:
    try:
        parse_response(data)
    except OnvifError:
        pass
    try:
        parse_discovery(data, "127.0.0.1:1")
    except OnvifError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    _check(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(SEEDS),
    cuts=st.lists(st.tuples(st.integers(0, 20_000), st.integers(0, 64), st.binary(max_size=16)),
                  max_size=6),
)
def test_mutated_fixtures(seed: bytes, cuts: list[tuple[int, int, bytes]]) -> None:
    data = bytearray(seed)
    for position, length, replacement in cuts:
        position %= max(1, len(data))
        data[position : position + length] = replacement
    _check(bytes(data))


_xml_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="<&'\x00"),
    max_size=40,
).filter(lambda s: all(ord(c) >= 0x20 or c in "\t\n\r" for c in s))


@settings(max_examples=300, deadline=None)
@given(now=_xml_text, topic=_xml_text, utc=_xml_text, op=_xml_text, name=_xml_text,
       value=_xml_text)
def test_event_fields_are_free_text(now: str, topic: str, utc: str, op: str, name: str,
                                    value: str) -> None:
    data = EVENT_TEMPLATE.format(now=now, topic=topic, utc=utc, op=op, name=name, value=value)
    _check(data.encode())
