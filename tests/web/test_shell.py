"""The web shell: health, metrics, OpenAPI, error pages, static caching, languages."""

from __future__ import annotations

from tests.web.conftest import World


async def test_healthz_and_metrics_answer_without_login(world: World) -> None:
    resp = await world.client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json()) == {"status": "ok", "database": "ok"}
    resp = await world.client.get("/metrics")
    assert resp.status == 200
    assert "vms_http_requests_total" in await resp.text()


async def test_openapi_lists_every_api_route(world: World) -> None:
    from web.keys import RULES

    resp = await world.client.get("/api/v1/openapi.json")
    doc = await resp.json()
    assert doc["openapi"].startswith("3.")
    import re

    api_rules = {(r.method, re.sub(r"{([^}:]+):[^}]*}", r"{\1}", r.path))
                 for r in world.app[RULES].values() if r.api and r.method != "HEAD"}
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == api_rules
    assert doc["paths"]["/api/v1/cameras/{id}"]["get"]["x-vms-access"] == "live"


async def test_api_errors_are_json_and_pages_are_rendered(world: World) -> None:
    resp = await world.client.get("/api/v1/no-such-thing")
    assert resp.status == 404
    assert (await resp.json())["error"]["status"] == 404
    await world.login("admin1")
    resp = await world.client.get("/no-such-page")
    assert resp.status == 404
    text = await resp.text()
    assert "<h1>404" in text and "Page not found" in text
    resp = await world.client.get("/api/v1/cameras/abc")
    assert resp.status == 404


async def test_bad_json_names_the_problem(world: World) -> None:
    resp = await world.client.post("/api/v1/auth/login", data=b"{not json",
                                   headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert "not valid JSON" in (await resp.json())["error"]["message"]
    resp = await world.client.post("/api/v1/auth/login", json={"username": 5, "password": "x"})
    assert resp.status == 400
    assert "'username' must be a string" in (await resp.json())["error"]["message"]


async def test_static_assets_carry_cache_headers(world: World) -> None:
    resp = await world.client.get("/login")
    page = await resp.text()
    start = page.index("/static/css/vms.css")
    url = page[start:page.index('"', start)]
    assert "?v=" in url
    resp = await world.client.get(url)
    assert resp.status == 200
    assert "immutable" in resp.headers["Cache-Control"]
    resp = await world.client.get("/static/css/vms.css")
    assert resp.headers["Cache-Control"] == "public, max-age=3600"
    resp = await world.client.get("/static/../vms/config.py")
    assert resp.status in (403, 404)
    resp = await world.client.get("/static/%2e%2e/%2e%2e/pyproject.toml")
    assert resp.status in (403, 404)


async def test_language_from_browser_cookie_and_user(world: World) -> None:
    resp = await world.client.get("/login", headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"})
    text = await resp.text()
    assert "Вход" in text and 'lang="ru"' in text
    resp = await world.client.get("/login", headers={"Accept-Language": "de, en;q=0.1"})
    assert "Sign in" in await resp.text()
    # an anonymous choice is kept in a cookie
    resp = await world.client.post("/language", data={"language": "ru", "next": "/login"},
                                   allow_redirects=False)
    assert resp.status == 302
    resp = await world.client.get("/login", headers={"Accept-Language": "en"})
    assert "Вход" in await resp.text()
    # a signed-in user's own choice wins over the browser and is stored
    csrf = await world.login("viewer1")
    resp = await world.client.post("/language", data={"language": "ru", "csrf_token": csrf},
                                   allow_redirects=False)
    assert resp.status == 302
    world.client.session.cookie_jar.clear()
    await world.login("viewer1")
    resp = await world.client.get("/", headers={"Accept-Language": "en"})
    text = await resp.text()
    assert "Объекты" in text and "житель" in text


async def test_language_change_of_signed_in_user_needs_csrf(world: World) -> None:
    await world.login("viewer1")
    resp = await world.client.post("/language", data={"language": "ru"}, allow_redirects=False)
    assert resp.status == 403


async def test_metrics_count_cameras_by_status(world: World) -> None:
    from web.keys import GATEWAY, SERVICES

    await world.app[GATEWAY].read(world.app[SERVICES]["metrics_refresh"])
    text = await (await world.client.get("/metrics")).text()
    assert 'vms_cameras{status="new"} 2.0' in text
