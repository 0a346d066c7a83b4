"""What the API fuzz (test_fuzz_api.py) found, each pinned by a test of its own.

Each of these was a 500 (or a wrong answer) before: numbers too large for the database's integers
reaching it as ids or instants, digits that Python's ``str.isdigit`` accepts but ``int`` does not,
and request bodies breaking their declared schema being acted on. Each must now be a 4xx whose
message names the field.
"""

from __future__ import annotations

from typing import Any

from tests.web.conftest import World

HUGE = "10923946350543917056"  # > 2**63 - 1: no database integer holds it


async def _error(resp: Any) -> str:
    body = await resp.json()
    return str(body["error"]["message"])


async def test_ids_beyond_64_bits_are_refused_before_the_database(world: World) -> None:
    csrf = await world.login("admin1")
    resp = await world.client.get(f"/api/v1/cameras?site_id={HUGE}")
    assert resp.status == 400, await resp.text()
    assert "site_id" in await _error(resp)
    resp = await world.client.get(f"/live?site_id={HUGE}")
    assert resp.status == 400, await resp.text()
    resp = await world.client.post("/api/v1/cameras/bulk", headers={"X-CSRF-Token": csrf}, json={
        "site_id": int(HUGE), "xaddrs": ["http://127.0.0.1:9/onvif/device_service"]})
    assert resp.status == 400, await resp.text()
    # refused while the body is parsed (web.inputs: 64-bit integers only) or at the field
    assert "64 bits" in await _error(resp) or "site_id" in await _error(resp)
    resp = await world.client.post("/api/v1/cameras", headers={"X-CSRF-Token": csrf}, json={
        "site_id": int(HUGE), "rtsp_url": "rtsp://127.0.0.1:9/x"})
    assert resp.status == 400, await resp.text()
    assert "64 bits" in await _error(resp) or "site_id" in await _error(resp)


async def test_instants_beyond_the_calendar_are_refused(world: World) -> None:
    csrf = await world.login("admin1")
    far = "175784278357142314942464"
    for url in (f"/api/v1/audit?to={far}", f"/api/v1/cameras/{world.camera_a}/timeline?from={far}",
                f"/api/v1/cameras/{world.camera_a}/snapshot.jpg?at={far}",
                f"/api/v1/cameras/{world.camera_a}/holds?to=-{far}"):
        resp = await world.client.get(url)
        assert resp.status == 400, (url, await resp.text())
        assert "outside the supported range" in await _error(resp)
    resp = await world.client.post(f"/api/v1/cameras/{world.camera_a}/holds",
                                   headers={"X-CSRF-Token": csrf},
                                   json={"from": int(far), "to": int(far) + 1, "reason": "case 7"})
    assert resp.status == 400, await resp.text()
    assert "64 bits" in await _error(resp) or "'from'" in await _error(resp)
    resp = await world.client.post(f"/api/v1/cameras/{world.camera_a}/holds",
                                   headers={"X-CSRF-Token": csrf},
                                   json={"from": 2**62, "to": 2**62 + 1, "reason": "case 7"})
    assert resp.status == 400, await resp.text()
    assert "from" in await _error(resp)


async def test_digits_that_are_not_decimal_are_not_ids(world: World) -> None:
    await world.login("admin1")
    resp = await world.client.get("/api/v1/cameras/%C2%B2")  # '²': isdigit() but not int()
    assert resp.status == 404, await resp.text()
    resp = await world.client.get("/api/v1/timeline?camera_ids=1,%C2%B2")
    assert resp.status == 400, await resp.text()
    assert "camera_ids" in await _error(resp)


async def test_a_username_with_a_trailing_newline_is_refused(world: World) -> None:
    """``re.match`` with ``$`` accepts one trailing newline: "auditor\n" became a user."""
    csrf = await world.login("admin1")
    resp = await world.client.post("/api/v1/users", headers={"X-CSRF-Token": csrf}, json={
        "username": "auditor\n", "password": "long-enough-1", "role": "viewer"})
    assert resp.status == 400, await resp.text()
    assert "auditor" in await _error(resp)
    users = (await (await world.client.get("/api/v1/users")).json())["users"]
    assert not [u for u in users if u["username"].startswith("auditor")]


async def test_a_body_breaking_its_schema_is_refused_naming_the_field(world: World) -> None:
    csrf = await world.login("admin1")
    # before: bool("false") is True, so this revoked viewer1's grant of Site A
    resp = await world.client.post("/api/v1/users/viewer1/grants", headers={"X-CSRF-Token": csrf},
                                   json={"site": "Site A", "revoke": "false"})
    assert resp.status == 400, await resp.text()
    assert await _error(resp) == "field 'revoke' must be true or false, got 'false'"
    users = (await (await world.client.get("/api/v1/users")).json())["users"]
    assert next(u for u in users if u["username"] == "viewer1")["sites"] == ["Site A"]
    # nested fields are named by their path
    resp = await world.client.post(f"/api/v1/cameras/{world.camera_a}/configure",
                                   headers={"X-CSRF-Token": csrf},
                                   json={"profile": {"width": "wide"}})
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error["message"] == "field 'profile.width' must be an integer, got 'wide'"
    assert error["field"] == "profile.width"
    resp = await world.client.post("/api/v1/sites", headers={"X-CSRF-Token": csrf},
                                   json={"timezone": "UTC"})
    assert resp.status == 400
    assert await _error(resp) == "field 'name' is required"


async def test_a_token_id_beyond_64_bits_is_not_found(world: World) -> None:
    """Found by the fuzz after the API-token routes landed: int() of a 27-digit id reached the
    database (a 500)."""
    csrf = await world.login("admin1")
    resp = await world.client.delete("/api/v1/tokens/302929499931090429086269440",
                                     headers={"X-CSRF-Token": csrf})
    assert resp.status == 404, await resp.text()


async def test_a_nul_character_in_a_query_parameter_is_refused_naming_it(world: World) -> None:
    """PostgreSQL refuses NUL in text: ``/api/v1/audit?action=a%00b`` was a 500 there."""
    await world.login("admin1")
    for url in ("/api/v1/audit?action=a%00b", "/api/v1/events?type=%00",
                f"/api/v1/cameras/{world.camera_a}/timeline?x%00y=1"):
        resp = await world.client.get(url)
        assert resp.status == 400, (url, await resp.text())
        message = await _error(resp)
        assert "NUL" in message and ("action" in message or "type" in message
                                      or "x\\x00y" in message), message
    resp = await world.client.get("/api/v1/audit?action=a")
    assert resp.status == 200
