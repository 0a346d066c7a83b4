"""pytest fixtures for virtual cameras: ``camsim_factory`` and ``camsim_camera``.

``fleet = await camsim_factory(count=2, ptz=False)`` starts a :class:`~camsim.fleet.Fleet` on
loopback that is stopped when the test ends; ``camsim_camera`` is one started camera. Snapshots and
RTSP clips go to camsim.media's default cache (override the ``camsim_cache_dir`` fixture), so
ffmpeg runs once per machine rather than once per test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from camsim.camera import VirtualCamera
from camsim.fleet import Fleet

CamsimFactory = Callable[..., Awaitable[Fleet]]


@pytest.fixture(scope="session")
def camsim_cache_dir() -> Path | None:
    """Where encoded clips and snapshots are cached; None = camsim.media's default cache."""
    return None


@pytest_asyncio.fixture
async def camsim_factory(camsim_cache_dir: Path | None) -> AsyncIterator[CamsimFactory]:
    fleets: list[Fleet] = []

    async def factory(count: int = 1, **options: Any) -> Fleet:
        options.setdefault("host", "127.0.0.1")
        options.setdefault("cache_dir", camsim_cache_dir)
        fleet = Fleet(count, **options)
        await fleet.start()
        fleets.append(fleet)
        return fleet

    try:
        yield factory
    finally:
        for fleet in reversed(fleets):
            await fleet.stop()


@pytest_asyncio.fixture
async def camsim_camera(camsim_factory: CamsimFactory) -> VirtualCamera:
    fleet = await camsim_factory(count=1)
    return fleet.cameras[0]


class OnvifSchemas:
    """lxml XMLSchema validation of ONVIF answers against the XSDs bundled with onvif-zeep-async.

    The message schemas live inside the WSDLs; each is lifted into its own file (with the
    namespace declarations of the WSDL root and absolute import paths) under ``work_dir``.
    """

    def __init__(self, work_dir: Path) -> None:
        import onvif

        self.wsdl_dir = Path(onvif.__file__).parent / "wsdl"
        self.work_dir = work_dir
        self._schemas: dict[str, Any] = {}

    def schema(self, wsdl: str) -> Any:
        import copy

        from lxml import etree

        if wsdl in self._schemas:
            return self._schemas[wsdl]
        xs = "http://www.w3.org/2001/XMLSchema"
        doc = etree.parse(str(self.wsdl_dir / wsdl))
        src = doc.find(f".//{{{xs}}}schema")
        assert src is not None, f"{wsdl} has no embedded schema"
        nsmap = {k: v for k, v in {**doc.getroot().nsmap, **src.nsmap}.items() if k}
        schema_el = etree.Element(src.tag, nsmap=nsmap, attrib=dict(src.attrib))
        for child in src:
            schema_el.append(copy.deepcopy(child))
        for imp in schema_el.iter(f"{{{xs}}}import"):
            location = imp.get("schemaLocation")
            if location and "://" not in location:
                imp.set("schemaLocation", (self.wsdl_dir / location).resolve().as_uri())
        self.work_dir.mkdir(parents=True, exist_ok=True)
        path = self.work_dir / f"{wsdl}.xsd"
        etree.ElementTree(schema_el).write(str(path))
        schema = etree.XMLSchema(etree.parse(str(path)))
        self._schemas[wsdl] = schema
        return schema

    def validate_element(self, xsd: str, element: Any) -> None:
        """Validate one element (e.g. a ``tt:Message``) against a bundled .xsd file."""
        from lxml import etree

        if xsd not in self._schemas:
            self._schemas[xsd] = etree.XMLSchema(etree.parse(str(self.wsdl_dir / xsd)))
        schema = self._schemas[xsd]
        standalone = etree.fromstring(etree.tostring(element))
        if not schema.validate(standalone):
            raise AssertionError(f"{etree.QName(standalone).localname} does not validate "
                                 f"against {xsd}: {schema.error_log}")

    def validate_body(self, wsdl: str, envelope_xml: bytes) -> Any:
        """Validate the first element of the SOAP Body; return it (lxml element)."""
        from lxml import etree

        root = etree.fromstring(envelope_xml)
        body = next(c for c in root if etree.QName(c).localname == "Body")
        element = etree.fromstring(etree.tostring(body[0]))
        schema = self.schema(wsdl)
        if not schema.validate(element):
            raise AssertionError(f"{etree.QName(element).localname} does not validate against "
                                 f"{wsdl}: {schema.error_log}")
        return element


@pytest.fixture(scope="session")
def onvif_schemas(tmp_path_factory: pytest.TempPathFactory) -> OnvifSchemas:
    return OnvifSchemas(tmp_path_factory.mktemp("onvif-xsd"))


async def raw_soap(
    url: str,
    body_xml: str,
    *,
    username: str | None = None,
    password: str | None = None,
    digest: bool = True,
    created: str | None = None,
    nonce: bytes | None = None,
    soap11: bool = False,
) -> tuple[int, bytes]:
    """POST one hand-made envelope (optionally with a UsernameToken); (HTTP status, body bytes).

    For tests that need the camera's exact bytes (schema validation, replayed nonces, SOAP 1.1);
    ordinary calls should go through a real ONVIF client.
    """
    import base64
    import hashlib
    import os
    from datetime import UTC, datetime

    import aiohttp

    header = ""
    if username is not None and password is not None:
        created = created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        nonce = nonce if nonce is not None else os.urandom(16)
        if digest:
            value = base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode(),
                                                  usedforsecurity=False).digest()).decode()
            ptype = "PasswordDigest"
        else:
            value, ptype = password, "PasswordText"
        header = (
            '<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-'
            'wssecurity-secext-1.0.xsd" xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-'
            '200401-wss-wssecurity-utility-1.0.xsd"><wsse:UsernameToken>'
            f"<wsse:Username>{username}</wsse:Username>"
            '<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-'
            f'username-token-profile-1.0#{ptype}">{value}</wsse:Password>'
            '<wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-'
            f'soap-message-security-1.0#Base64Binary">{base64.b64encode(nonce).decode()}'
            f"</wsse:Nonce><wsu:Created>{created}</wsu:Created></wsse:UsernameToken>"
            "</wsse:Security>"
        )
    ns = ("http://schemas.xmlsoap.org/soap/envelope/" if soap11
          else "http://www.w3.org/2003/05/soap-envelope")
    envelope = (f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{ns}">'
                f"<s:Header>{header}</s:Header><s:Body>{body_xml}</s:Body></s:Envelope>")
    ctype = "text/xml" if soap11 else "application/soap+xml"
    async with aiohttp.ClientSession() as session, session.post(
        url, data=envelope.encode(), headers={"Content-Type": f"{ctype}; charset=utf-8"}
    ) as resp:
        return resp.status, await resp.read()
