"""The append-only audit log: who did what, when, from where.

Only :func:`record` writes to it; nothing updates or deletes rows. Call it inside the same write
transaction as the change it describes where there is one.
"""

from __future__ import annotations

import json
from typing import Any

from vms.auth import Principal
from vms.clock import Clock
from vms.db import models as m

ACTIONS = (
    "login", "logout", "password_change", "user_create", "user_change", "grant", "revoke",
    "token_create", "token_revoke", "site_create", "camera_adopt", "camera_change",
    "camera_remove", "camera_recordings_delete", "camera_move",
    "export_create", "export_download", "hold_create", "hold_delete", "ptz", "door_release", "talk",
    "language", "retention_change", "retention.purge",
)


def record(clock: Clock, action: str, *, principal: Principal | None = None, username: str = "",
           target: str = "", site_id: int | None = None, address: str = "", outcome: str = "ok",
           detail: dict[str, Any] | None = None) -> None:
    m.AuditLog.create(
        at_us=clock.now_us(),
        user=principal.user_id if principal else None,
        username=principal.username if principal else username,
        action=action, target=target[:200], site=site_id, address=address[:64], outcome=outcome,
        detail=json.dumps(detail or {}, sort_keys=True),
    )


def query(principal: Principal, *, action: str | None = None, username: str | None = None,
          from_us: int | None = None, to_us: int | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Audit rows, newest first. Non-admins see only rows about their own sites or themselves."""
    q = m.AuditLog.select().order_by(m.AuditLog.at_us.desc(), m.AuditLog.id.desc())
    if principal.site_ids is not None:
        q = q.where((m.AuditLog.site.in_(list(principal.site_ids))) |
                    (m.AuditLog.user == principal.user_id))
    if action:
        q = q.where(m.AuditLog.action == action)
    if username:
        q = q.where(m.AuditLog.username == username)
    if from_us is not None:
        q = q.where(m.AuditLog.at_us >= from_us)
    if to_us is not None:
        q = q.where(m.AuditLog.at_us < to_us)
    return [
        {"id": r.id, "at_us": r.at_us, "username": r.username, "action": r.action,
         "target": r.target, "site_id": r.site_id, "address": r.address, "outcome": r.outcome,
         "detail": json.loads(r.detail or "{}")}
        for r in q.limit(max(1, min(limit, 1000)))
    ]
