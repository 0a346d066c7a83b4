"""Open redirects: ``next`` after signing in and after the language switch only ever leads to a
path on this server. ``next=/%09/evil.example`` used to answer ``Location: //evil.example``
(a browser drops the tab); every hostile form below now lands on ``/``."""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import PASSWORD, World
from web.inputs import safe_next

# as the server sees them (after the form or query string was decoded once)
HOSTILE = [
    "//evil.example", "///evil.example", "////evil.example/x", "/\\evil.example",
    "\\\\evil.example", "\\/evil.example", "/\t/evil.example", "/\n/evil.example",
    "/\r\n/evil.example", "\t//evil.example", " //evil.example", "/ /evil.example",
    "/\x00/evil.example", "\x00//evil.example", "/%09/evil.example", "/%0a/evil.example",
    "/%2F/evil.example", "/%2f%2fevil.example", "%2F%2Fevil.example", "/%5Cevil.example",
    "/%5c%5cevil.example", "/%252F/evil.example", "/%25252F%25252Fevil.example",
    "/%E3%80%80/evil.example", "/%0d%0aSet-Cookie:%20x=1", "https://evil.example",
    "http:evil.example", "HTTPS://evil.example/", "javascript:alert(1)", "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>", "//evil.example@localhost/", "evil.example",
    "./evil", "..//evil.example", "/\u3000/evil.example", "/\uff0f/evil.example",
    "/\u200b/evil.example", "", "/" + "a" * 3000,
]
SAME_ORIGIN = [
    "/", "/cameras", "/cameras/3/playback?at=2026-10-25T02:30:00%2B01:00",
    "/playback?camera_ids=1,2&at=1700000000000000", "/exports#new", "/a/b//c",
    "/cameras?q=%D0%BA%D0%B0%D0%BC", "/admin/audit?from=2026-01-01T00:00:00Z",
]


@pytest.mark.parametrize("target", HOSTILE)
def test_hostile_targets_become_the_home_page(target: str) -> None:
    assert safe_next(target) == "/"


@pytest.mark.parametrize("target", SAME_ORIGIN)
def test_paths_on_this_server_are_kept(target: str) -> None:
    assert safe_next(target) == target


def test_non_strings_become_the_home_page() -> None:
    assert safe_next(None) == "/" and safe_next(["/cameras"]) == "/"


async def test_language_switch_and_sign_in_never_redirect_elsewhere(world: World) -> None:
    client = world.client
    for target in HOSTILE + SAME_ORIGIN:
        expected = target if target in SAME_ORIGIN else "/"
        resp = await client.post("/language", data={"language": "en", "next": target},
                                 allow_redirects=False)
        assert resp.status == 302, (target, resp.status, await resp.text())
        assert resp.headers["Location"] == expected, (target, resp.headers["Location"])

        page = await client.get("/login", params={"next": target})
        if "\x00" in target:  # refused outright: no query parameter may hold a NUL
            assert page.status == 400, (target, page.status)
            continue
        field = re.search(r'name="login_csrf" value="[^"]*">\s*<input type="hidden" name="next" '
                          r'value="([^"]*)"', await page.text())
        assert field is not None
        assert field.group(1) == expected.replace("&", "&amp;"), (target, field.group(1))

    for target in ("/\t/evil.example", "/%2F/evil.example", "/cameras"):
        client.session.cookie_jar.clear()
        page = await client.get("/login")
        token = re.search(r'name="login_csrf" value="([^"]+)"', await page.text())
        assert token is not None
        resp = await client.post("/login", data={
            "username": "viewer1", "password": PASSWORD, "login_csrf": token.group(1),
            "next": target}, allow_redirects=False)
        assert resp.status == 302, await resp.text()
        assert resp.headers["Location"] == ("/cameras" if target == "/cameras" else "/")


async def test_the_language_switch_returns_to_the_page_it_was_on(world: World) -> None:
    """The form's ``next`` is the page's own path and query, which safe_next keeps as it is."""
    await world.login("admin1")
    page_path = f"/cameras/{world.camera_a}/playback?at=2026-10-25T02:30:00%2B01:00"
    page = await world.client.get(page_path)
    text = await page.text()
    form = re.search(r'<form class="langform".*?name="next" value="([^"]*)".*?'
                     r'name="csrf_token" value="([^"]*)"', text, re.S)
    assert form is not None
    resp = await world.client.post("/language", data={
        "language": "ru", "next": form.group(1).replace("&amp;", "&"), "csrf_token": form.group(2)},
        allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == page_path
