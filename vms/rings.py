"""Doorbell rings: which were answered, and the missed calls.

A doorbell event (``Event.type == 'doorbell'``, stored by :mod:`vms.events`) rings on the open
pages of its site's users for ``[intercom] ring_seconds``. It is answered when, within that
window, someone opens a door of its camera (:func:`answer_by_door`, called in the door pulse's
transaction) or acknowledges it from a ringing page (:func:`acknowledge`); the answer is a
``RingAnswer`` row. A doorbell event whose window has passed without one is a missed call
(:func:`missed_calls`). Everything is scoped by the asking principal's sites; sync functions, run
them through the gateway (writes on the writer).
"""

from __future__ import annotations

from typing import Any

import peewee as pw

from vms.auth import Principal
from vms.db import models as m

HOWS = ("door", "ack")


class RingNotFound(LookupError):
    """No doorbell event with this id in the principal's sites."""


class RingOver(ValueError):
    """The ring's window has passed: it is a missed call now (or was answered)."""


def answer_by_door(camera_id: int, principal: Principal | None, username: str, now_us: int,
                   window_us: int) -> list[tuple[int, int]]:
    """Mark the camera's unanswered doorbell events of the last ``window_us`` as answered by a
    door pulse; returns (event id, site id) of each (for the pages still ringing)."""
    rows = list(m.Event.select(m.Event.id, m.Event.site)
                .join(m.RingAnswer, pw.JOIN.LEFT_OUTER, on=(m.RingAnswer.event == m.Event.id))
                .where(m.Event.camera == camera_id, m.Event.type == "doorbell",
                       m.Event.start_us >= now_us - window_us, m.Event.start_us <= now_us,
                       m.RingAnswer.id.is_null()).tuples())
    for event_id, _site in rows:
        m.RingAnswer.create(event=event_id, user=principal.user_id if principal else None,
                            username=(principal.username if principal else username)[:64],
                            how="door", at_us=now_us)
    return [(int(e), int(s)) for e, s in rows]


def acknowledge(principal: Principal, event_id: int, now_us: int,
                window_us: int) -> dict[str, Any]:
    """Answer a ringing doorbell event without opening the door (idempotent: a second
    acknowledgement returns the first answer). RingNotFound, RingOver."""
    query = m.Event.select().where(m.Event.id == event_id, m.Event.type == "doorbell")
    if principal.site_ids is not None:
        query = query.where(m.Event.site.in_(sorted(principal.site_ids)))
    event = query.first()
    if event is None:
        raise RingNotFound(f"no doorbell event {event_id}")
    answer = m.RingAnswer.get_or_none(m.RingAnswer.event == event.id)
    if answer is None:
        if now_us > event.start_us + window_us:
            raise RingOver(f"doorbell event {event_id} rang more than {window_us // 1_000_000} s "
                           "ago: it is a missed call now")
        answer = m.RingAnswer.create(event=event.id, user=principal.user_id,
                                     username=principal.username[:64], how="ack", at_us=now_us)
    return {"event_id": event.id, "site_id": event.site_id, "camera_id": event.camera_id,
            "how": answer.how, "username": answer.username, "at_us": answer.at_us}


def ringing(principal: Principal, now_us: int, window_us: int) -> list[dict[str, Any]]:
    """Doorbell events of the principal's sites still ringing (in their window, unanswered),
    oldest first: what a page opened during a ring shows."""
    query = (m.Event.select(m.Event, m.Camera).join(m.Camera)
             .join_from(m.Event, m.RingAnswer, pw.JOIN.LEFT_OUTER,
                        on=(m.RingAnswer.event == m.Event.id))
             .where(m.Event.type == "doorbell", m.Event.start_us > now_us - window_us,
                    m.Event.start_us <= now_us, m.RingAnswer.id.is_null()))
    if principal.site_ids is not None:
        query = query.where(m.Event.site.in_(sorted(principal.site_ids)))
    return [{"id": e.id, "camera_id": e.camera_id, "camera_name": e.camera.name,
             "site_id": e.site_id, "start_us": e.start_us}
            for e in query.order_by(m.Event.start_us, m.Event.id).limit(20)]


def missed_calls(principal: Principal, now_us: int, window_us: int, *,
                 camera_id: int | None = None, before_us: int | None = None,
                 limit: int = 100) -> list[dict[str, Any]]:
    """Doorbell events of the principal's sites whose window has passed unanswered, newest
    first; ``before_us`` pages on (``start_us`` of the last one shown)."""
    query = (m.Event.select(m.Event, m.Camera, m.Site).join(m.Camera)
             .join(m.Site, on=(m.Camera.site == m.Site.id))
             .join_from(m.Event, m.RingAnswer, pw.JOIN.LEFT_OUTER,
                        on=(m.RingAnswer.event == m.Event.id))
             .where(m.Event.type == "doorbell", m.Event.start_us <= now_us - window_us,
                    m.RingAnswer.id.is_null()))
    if principal.site_ids is not None:
        query = query.where(m.Event.site.in_(sorted(principal.site_ids)))
    if camera_id is not None:
        query = query.where(m.Event.camera == camera_id)
    if before_us is not None:
        query = query.where(m.Event.start_us < before_us)
    rows = query.order_by(m.Event.start_us.desc(), m.Event.id.desc()).limit(max(1, min(limit, 500)))
    return [{"id": e.id, "camera_id": e.camera_id, "camera_name": e.camera.name,
             "site_id": e.site_id, "site_name": e.camera.site.name,
             "timezone": e.camera.site.timezone, "start_us": e.start_us,
             "snapshot_url": f"/api/v1/cameras/{e.camera_id}/snapshot.jpg?at={e.start_us}"}
            for e in rows]


__all__ = ["HOWS", "RingNotFound", "RingOver", "acknowledge", "answer_by_door", "missed_calls", "ringing"]
