"""Smoke test of the web shell in a real browser: sign in, navigate, switch language, sign out."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser

PASSWORD = "browser-pass-123"


async def test_sign_in_navigate_switch_language_sign_out(browser: Any, live_app: Any) -> None:
    app, base = live_app
    from web.keys import ACCOUNTS, GATEWAY

    accounts = app[ACCOUNTS]

    def seed() -> None:
        accounts.create_site("Courtyard 7", "Asia/Almaty")
        accounts.create_user("chair", PASSWORD, "viewer", ["Courtyard 7"])

    await app[GATEWAY].write(seed)
    page = await browser.new_page(locale="en-US")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    await page.goto(f"{base}/cameras")
    assert "/login" in page.url
    await page.fill("input[name=username]", "chair")
    await page.fill("input[name=password]", "wrong-password")
    await page.click("button[type=submit]")
    assert await page.locator("p.error").inner_text() == "Wrong username or password."

    await page.fill("input[name=username]", "chair")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/cameras")
    errors.clear()  # the refused attempt above answered 401, which the console reports
    assert await page.locator("h1").inner_text() == "Cameras"
    assert await page.locator(".whoami").inner_text() == "chair · viewer"
    # the stylesheet really loaded (layout applied)
    bg = await page.evaluate("getComputedStyle(document.querySelector('.topbar')).backgroundColor")
    assert bg == "rgb(29, 35, 48)"

    await page.click("text=Home")
    assert "Courtyard 7" in await page.locator("main").inner_text()
    # admin pages are not offered to a resident
    assert await page.locator("a[href='/admin/users']").count() == 0

    await page.select_option("select[name=language]", "ru")  # autosubmits via vms.js
    await page.wait_for_load_state("load")
    await page.wait_for_function("document.documentElement.lang === 'ru'")
    assert await page.locator("h1").inner_text() == "Объекты"
    assert "житель" in await page.locator(".whoami").inner_text()

    # the user name leads to the account page: an API token is made, shown once, revoked
    await page.click(".whoami")
    await page.wait_for_url(f"{base}/account")
    await page.fill("#add-token input[name=name]", "wall display")
    await page.select_option("#add-token select[name=scope]", "read")
    await page.click("#add-token button[type=submit]")
    assert (await page.locator("#new-token code").inner_text()).startswith("vms_")
    assert "чтение" in await page.locator("#token-table").inner_text()
    await page.goto(f"{base}/account")
    assert await page.locator("#new-token").count() == 0
    await page.click("#token-table button[type=submit]")
    await page.wait_for_url(f"{base}/account")
    assert "отозван" in await page.locator("#token-table").inner_text()

    await page.click("#logout")
    await page.wait_for_url(f"{base}/login")
    assert await page.locator("h1").inner_text() == "Вход"
    assert not errors, errors
