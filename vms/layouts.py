"""Saved live-view layouts: a user's named grids (tiles per side, which camera in which tile).

Each user keeps their own layouts (``LiveLayout`` rows, migration 014); nobody else reads or
changes them, administrators included. Site rules hold at both ends: a layout can only be saved
with cameras its user may see (another site's camera is "not found", as everywhere), and a layout
is always read through the user's current scope, so a camera whose site was taken away since (or
that was removed) comes back as an empty tile (``None``), never by name or id. The functions run on
the database gateway's threads (reads on the pool, changes through the writer).
"""

from __future__ import annotations

import json
from typing import Any

import peewee as pw

from vms.auth import Principal
from vms.catalog import NotFound, scope_cameras
from vms.clock import Clock
from vms.db import models as m

GRID_SIZES = (1, 2, 3, 4)
"""Tiles per side."""
MAX_LAYOUTS = 100
"""Layouts one user may keep."""
NAME_MAX = 100


class LayoutError(ValueError):
    """A layout that cannot be saved as asked (a duplicate name, too many layouts)."""


def _visible(principal: Principal, camera_ids: set[int]) -> set[int]:
    """The cameras among ``camera_ids`` that ``principal`` may watch now (in service)."""
    if not camera_ids:
        return set()
    query = (m.Camera.select(m.Camera.id)
             .where(m.Camera.id.in_(sorted(camera_ids)) & m.Camera.archived_us.is_null()))
    return {c.id for c in scope_cameras(query, principal)}


def _tiles(grid: int, camera_ids: list[int | None]) -> list[int | None]:
    tiles = list(camera_ids[:grid * grid])
    return tiles + [None] * (grid * grid - len(tiles))


def _view(row: m.LiveLayout, visible: set[int]) -> dict[str, Any]:
    stored = json.loads(row.camera_ids or "[]")
    tiles = [c if isinstance(c, int) and c in visible else None for c in stored]
    return {"id": row.id, "name": row.name, "grid": row.grid,
            "camera_ids": _tiles(row.grid, tiles),
            "created_us": row.created_us, "updated_us": row.updated_us}


def _own(principal: Principal, layout_id: int) -> m.LiveLayout:
    row = (m.LiveLayout.select()
           .where((m.LiveLayout.id == layout_id) & (m.LiveLayout.user == principal.user_id))
           .first())
    if row is None:
        raise NotFound(f"no layout {layout_id}")
    return row


def _stored_ids(rows: list[m.LiveLayout]) -> set[int]:
    out: set[int] = set()
    for row in rows:
        out.update(c for c in json.loads(row.camera_ids or "[]") if isinstance(c, int))
    return out


def list_layouts(principal: Principal) -> list[dict[str, Any]]:
    """The user's layouts by name, each read through the user's current scope."""
    rows = list(m.LiveLayout.select().where(m.LiveLayout.user == principal.user_id)
                .order_by(m.LiveLayout.name, m.LiveLayout.id))
    visible = _visible(principal, _stored_ids(rows))
    return [_view(r, visible) for r in rows]


def get_layout(principal: Principal, layout_id: int) -> dict[str, Any]:
    row = _own(principal, layout_id)
    return _view(row, _visible(principal, _stored_ids([row])))


def save_layout(clock: Clock, principal: Principal, layout_id: int | None, name: str, grid: int,
                camera_ids: list[int | None]) -> dict[str, Any]:
    """Create (``layout_id`` None) or replace one of the user's layouts. :class:`NotFound` for a
    camera the user may not see (or a layout not theirs), :class:`LayoutError` otherwise."""
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise LayoutError(f"a layout name has 1 to {NAME_MAX} characters")
    if grid not in GRID_SIZES:
        raise LayoutError(f"grid must be one of {', '.join(map(str, GRID_SIZES))}")
    if len(camera_ids) > grid * grid:
        raise LayoutError(f"a {grid}×{grid} grid has {grid * grid} tiles, not {len(camera_ids)}")
    wanted = {c for c in camera_ids if c is not None}
    missing = wanted - _visible(principal, wanted)
    if missing:
        raise NotFound(f"no camera {min(missing)}")
    tiles = json.dumps(_tiles(grid, camera_ids))
    now = clock.now_us()
    clash = m.LiveLayout.select().where((m.LiveLayout.user == principal.user_id)
                                        & (m.LiveLayout.name == name))
    if layout_id is None:
        count = m.LiveLayout.select().where(m.LiveLayout.user == principal.user_id).count()
        if count >= MAX_LAYOUTS:
            raise LayoutError(f"at most {MAX_LAYOUTS} layouts per user")
        if clash.exists():
            raise LayoutError(f"you already have a layout named {name!r}")
        try:
            row = m.LiveLayout.create(user=principal.user_id, name=name, grid=grid,
                                      camera_ids=tiles, created_us=now, updated_us=now)
        except pw.IntegrityError:
            raise LayoutError(f"you already have a layout named {name!r}") from None
    else:
        row = _own(principal, layout_id)
        if clash.where(m.LiveLayout.id != row.id).exists():
            raise LayoutError(f"you already have a layout named {name!r}")
        row.name, row.grid, row.camera_ids, row.updated_us = name, grid, tiles, now
        row.save()
    return _view(row, wanted)


def delete_layout(principal: Principal, layout_id: int) -> None:
    _own(principal, layout_id).delete_instance()
