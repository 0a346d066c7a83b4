"""What the MQTT bridge (vms/mqtt.py) publishes: slugs, topics, JSON payloads and Home Assistant
discovery configs, as pure functions of a camera's row and an event (no I/O, no broker).

Topics (``<prefix>`` is ``[mqtt] topic_prefix``):

- ``<prefix>/availability`` — ``online``/``offline``, retained (the broker's last will says
  ``offline`` when the server dies);
- ``<prefix>/<site>/<camera>/<type>`` — one JSON message per event, QoS 1, not retained;
- ``<prefix>/<site>/<camera>/<type>/state`` — retained: ``ON``/``OFF`` for motion, doorbell and
  tamper (a pulse turns ``ON``, then ``OFF`` after a few seconds), the last plate's text for plate;
- ``<discovery_prefix>/<component>/<node>/<camera uuid>_<type>/config`` — retained Home Assistant
  discovery configs (``<node>`` is the topic prefix with ``/`` as ``_``).

Slugs: the name lower-cased, Cyrillic (Russian and Kazakh letters) transliterated to Latin, every
run of other characters a ``-``, at most 48 characters; an empty result is ``camera-<id>`` (or
``site-<id>``). When two cameras of a site (or two sites) come to the same slug, the one with the
lower id keeps it and the others get ``-<id>`` appended, so a slug changes only when its own name
changes or a clash appears.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from vms.bus import CameraEvent
from vms.clock import us_to_datetime

BINARY_TYPES = ("motion", "doorbell", "tamper")
"""Event types shown as Home Assistant binary sensors (``ON``/``OFF`` state topics)."""
SENSOR_TYPES = ("plate",)
"""Event types shown as Home Assistant sensors (the state topic holds the last value)."""
STATE_TYPES = BINARY_TYPES + SENSOR_TYPES
ON, OFF = "ON", "OFF"
SLUG_MAX = 48

_TRANSLIT = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
    "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh",
    "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya",
    # Kazakh
    "ә": "a", "ғ": "g", "қ": "q", "ң": "n", "ө": "o", "ұ": "u", "ү": "u", "һ": "h", "і": "i",
}
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_NOT_NODE = re.compile(r"[^a-zA-Z0-9_-]+")

_DEVICE_CLASS = {"motion": "motion", "tamper": "tamper"}
_ICON = {"doorbell": "mdi:doorbell", "plate": "mdi:car", "motion": "mdi:motion-sensor",
         "tamper": "mdi:shield-alert"}
_LABEL = {"motion": "Motion", "doorbell": "Doorbell", "tamper": "Tamper", "plate": "Plate"}


def slugify(name: str) -> str:
    """``"Ворота №2 (North)"`` → ``"vorota-2-north"``; ``""`` for a name with nothing usable."""
    text = "".join(_TRANSLIT.get(ch, ch) for ch in name.lower())
    return _NOT_SLUG.sub("-", text).strip("-")[:SLUG_MAX].rstrip("-")


def node_id(topic_prefix: str) -> str:
    """The Home Assistant discovery node id for a topic prefix (``a/b`` → ``a_b``)."""
    return _NOT_NODE.sub("_", topic_prefix).strip("_") or "vms"


def unique_slugs(items: Iterable[tuple[int, str]], fallback: str) -> dict[int, str]:
    """id → slug for (id, name) pairs: a clash is resolved in favour of the lowest id."""
    out: dict[int, str] = {}
    taken: set[str] = set()
    for ident, name in sorted(items):
        slug = slugify(name) or f"{fallback}-{ident}"
        if slug in taken:
            slug = f"{slug}-{ident}"
        taken.add(slug)
        out[ident] = slug
    return out


@dataclass(frozen=True)
class CameraInfo:
    """What the bridge knows of a camera: enough for topics, payloads and discovery."""

    id: int
    uuid: str
    name: str
    slug: str
    site_id: int
    site: str
    site_slug: str
    manufacturer: str = ""
    model: str = ""
    firmware: str = ""
    archived: bool = False


def camera_infos(rows: Iterable[tuple[int, str, str, int, str, str, str, str, bool]]
                 ) -> dict[int, CameraInfo]:
    """CameraInfo by camera id from rows ``(id, uuid, name, site_id, site name, manufacturer,
    model, firmware, archived)``. Archived cameras get no slug of their own (their topics are
    freed for the others)."""
    rows = list(rows)
    sites = unique_slugs({(r[3], r[4]) for r in rows}, "site")
    by_site: dict[int, list[tuple[int, str]]] = {}
    for r in rows:
        if not r[8]:
            by_site.setdefault(r[3], []).append((r[0], r[2]))
    slugs: dict[int, str] = {}
    for cams in by_site.values():
        slugs.update(unique_slugs(cams, "camera"))
    return {r[0]: CameraInfo(id=r[0], uuid=r[1], name=r[2],
                             slug=slugs.get(r[0], f"camera-{r[0]}"), site_id=r[3], site=r[4],
                             site_slug=sites[r[3]], manufacturer=r[5], model=r[6],
                             firmware=r[7], archived=r[8])
            for r in rows}


def unknown_camera(camera_id: int, site_id: int) -> CameraInfo:
    """For an event of a camera the database does not know (yet)."""
    return CameraInfo(id=camera_id, uuid="", name="", slug=f"camera-{camera_id}",
                      site_id=site_id, site="", site_slug=f"site-{site_id}")


class Topics:
    """Every topic the bridge uses, from the prefix settings."""

    def __init__(self, prefix: str, discovery_prefix: str) -> None:
        self.prefix = prefix.strip("/") or "vms"
        self.discovery_prefix = discovery_prefix.strip("/") or "homeassistant"
        self.node = node_id(self.prefix)

    @property
    def availability(self) -> str:
        return f"{self.prefix}/availability"

    def event(self, cam: CameraInfo, type_: str) -> str:
        return f"{self.prefix}/{cam.site_slug}/{cam.slug}/{type_}"

    def state(self, cam: CameraInfo, type_: str) -> str:
        return f"{self.event(cam, type_)}/state"

    def discovery(self, cam: CameraInfo, type_: str) -> str:
        component = "binary_sensor" if type_ in BINARY_TYPES else "sensor"
        return f"{self.discovery_prefix}/{component}/{self.node}/{cam.uuid}_{type_}/config"

    @property
    def discovery_filter(self) -> str:
        """Every discovery config of this node (to find stale ones on the broker)."""
        return f"{self.discovery_prefix}/+/{self.node}/+/config"

    def object_of(self, topic: str) -> str | None:
        """``<camera uuid>_<type>`` from a discovery config topic of this node, or None."""
        parts = topic.split("/")
        disc = self.discovery_prefix.split("/")
        if (len(parts) != len(disc) + 4 or parts[:len(disc)] != disc
                or parts[len(disc) + 1] != self.node or parts[-1] != "config"):
            return None
        return parts[len(disc) + 2]


def iso_time(at_us: int) -> str:
    """``2026-12-03T07:24:09.123456Z``."""
    return us_to_datetime(at_us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_payload(cam: CameraInfo, event: CameraEvent) -> dict[str, Any]:
    """The JSON message of one event."""
    return {"camera_id": event.camera_id, "camera": cam.name, "camera_uuid": cam.uuid,
            "site_id": event.site_id, "site": cam.site, "type": event.type, "state": event.state,
            "at_us": event.at_us, "time": iso_time(event.at_us), "event_id": event.event_id,
            "topic": event.topic, "data": event.data}


def state_value(event: CameraEvent) -> str | None:
    """The retained state an event sets, or None (types without a state topic). A pulse
    (``state`` None) of a binary type is ``ON`` here; the bridge turns it ``OFF`` later."""
    if event.type in BINARY_TYPES:
        return OFF if event.state is False else ON
    if event.type == "plate":
        plate = event.data.get("plate")
        return str(plate) if plate is not None else None
    return None


def discovery_config(topics: Topics, cam: CameraInfo, type_: str) -> dict[str, Any]:
    """The Home Assistant MQTT discovery config of one camera's entity of ``type_``."""
    config: dict[str, Any] = {
        "name": _LABEL[type_],
        "unique_id": f"{topics.node}_{cam.uuid}_{type_}",
        "object_id": f"{cam.site_slug}_{cam.slug}_{type_}".replace("-", "_"),
        "state_topic": topics.state(cam, type_),
        "json_attributes_topic": topics.event(cam, type_),
        "json_attributes_template": "{{ value_json.data | tojson }}",
        "availability_topic": topics.availability,
        "payload_available": "online",
        "payload_not_available": "offline",
        "icon": _ICON[type_],
        "device": {
            "identifiers": [f"{topics.node}_{cam.uuid}"],
            "name": cam.name,
            "manufacturer": cam.manufacturer or None,
            "model": cam.model or None,
            "sw_version": cam.firmware or None,
            "suggested_area": cam.site,
        },
        "origin": {"name": "vms"},
    }
    config["device"] = {k: v for k, v in config["device"].items() if v is not None}
    if type_ in BINARY_TYPES:
        config["payload_on"] = ON
        config["payload_off"] = OFF
        if type_ in _DEVICE_CLASS:
            config["device_class"] = _DEVICE_CLASS[type_]
    return config
