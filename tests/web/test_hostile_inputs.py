"""Inputs that used to crash handlers are refused with a 400 that names the problem: JSON nested
deeper than the cap (RecursionError before), numbers no database column holds (OverflowError
before), instants outside 1970..9999, and non-ASCII digits in ids."""

from __future__ import annotations

import json
from typing import Any

from tests.web.conftest import World
from vms.clock import MAX_INSTANT_US
from web.inputs import MAX_JSON_DEPTH


async def _post(world: World, path: str, body: str | bytes, csrf: str) -> tuple[int, str]:
    resp = await world.client.post(path, data=body, headers={
        "X-CSRF-Token": csrf, "Content-Type": "application/json"})
    return resp.status, await resp.text()


async def test_deeply_nested_json_is_a_400_and_nesting_within_the_cap_is_parsed(
        world: World) -> None:
    csrf = await world.login("admin1")
    for depth in (MAX_JSON_DEPTH + 1, 5_000, 100_000):
        for body in ('{"name": ' + "[" * depth + "]" * depth + "}",
                     '{"a": ' * depth + "1" + "}" * depth):
            status, text = await _post(world, "/api/v1/sites", body, csrf)
            assert status == 400, (depth, text[:300])
            assert "nested too deeply" in text and str(MAX_JSON_DEPTH) in text, text[:300]
    inner = MAX_JSON_DEPTH - 1
    body = '{"name": "Site C", "timezone": "UTC", "x": ' + "[" * inner + "]" * inner + "}"
    status, text = await _post(world, "/api/v1/sites", body, csrf)
    assert status in (200, 201), text


async def test_numbers_out_of_range_in_bodies_are_400s(world: World) -> None:
    csrf = await world.login("admin1")
    cam = world.camera_a
    holds = f"/api/v1/cameras/{cam}/holds"
    cases: list[tuple[str, dict[str, Any], str]] = [
        # an export and a hold far beyond year 9999 (OverflowError from the database before)
        ("/api/v1/exports", {"camera_ids": [cam], "from": 10**22, "to": 10**22 + 10**6},
         "does not fit in 64 bits"),
        # the declared body schema (web/validation.py) names the field and the bound
        ("/api/v1/exports", {"camera_ids": [cam], "from": 2**62, "to": 2**62 + 10**6},
         "field 'from' must be <="),
        (holds, {"from": 2**62, "to": 2**62 + 10**6, "reason": "x"}, "field 'from' must be <="),
        (holds, {"from": -(10**20), "to": 10**6, "reason": "x"}, "does not fit in 64 bits"),
        ("/api/v1/exports", {"camera_ids": ["9" * 30], "from": 0, "to": 10**6}, "camera_ids"),
    ]
    for path, body, expected in cases:
        status, text = await _post(world, path, json.dumps(body), csrf)
        assert status == 400, (path, body, text[:300])
        assert expected in text, text[:300]
    for literal in ("1e400", "-1e400", "NaN", "Infinity", "9" * 5000):
        status, text = await _post(world, holds, f'{{"from": {literal}, "to": 1, "reason": "x"}}',
                                   csrf)
        assert status == 400, (literal[:20], text[:300])


async def test_instants_outside_the_range_are_400s_naming_the_parameter(world: World) -> None:
    await world.login("admin1")
    cam = world.camera_a
    for at in ("100000000000000000000000", "1e23", "-1", "9" * 5000, str(MAX_INSTANT_US + 1),
               "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"):
        for path, key in ((f"/api/v1/cameras/{cam}/snapshot.jpg", "at"),
                          (f"/api/v1/cameras/{cam}/timeline", "from"),
                          (f"/api/v1/cameras/{cam}/playlist.m3u8", "to"),
                          ("/api/v1/audit", "from")):
            resp = await world.client.get(path, params={key: at})
            text = await resp.text()
            assert resp.status == 400, (path, at[:30], resp.status, text[:300])
            assert f"'{key}'" in text, text[:300]


async def test_ids_and_integers_that_do_not_fit_are_not_server_errors(world: World) -> None:
    await world.login("admin1")
    for path, status in (("/api/v1/cameras?site_id=99999999999999999999", 400),
                         ("/api/v1/cameras?site_id=" + "9" * 5000, 400),
                         ("/api/v1/cameras/%C2%B2", 404),  # '²' is a digit to str.isdigit()
                         ("/api/v1/timeline?camera_ids=%C2%B2", 400),
                         ("/api/v1/audit?limit=99999999999999999999", 400)):
        resp = await world.client.get(path)
        assert resp.status == status, (path, resp.status, (await resp.text())[:300])
