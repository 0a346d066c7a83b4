"""Configuration: ``vms.toml`` parsed into frozen, typed settings.

One table (:data:`SETTINGS`) names every key with its type, default and help text; the loader walks
it, so an unknown key, a wrong type or a bad value is rejected with the file, the key and what was
expected. ``VMS_<SECTION>_<KEY>`` environment variables override the file (for containers), e.g.
``VMS_SERVER_PORT=9000`` or ``VMS_DATA_DIR=/var/lib/vms``. Relative paths are relative to the
config file's folder (or the working directory when there is no file).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """A configuration problem, worded for the person editing the file."""


@dataclass(frozen=True)
class Setting:
    """One documented key: ``section`` is '' for top-level keys."""

    section: str
    key: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    check: Callable[[Any], Any] | None = None
    """For list settings: turns the list of strings into the stored value, or ValueError."""

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.key}" if self.section else self.key

    @property
    def env_name(self) -> str:
        return "VMS_" + self.dotted.replace(".", "_").upper()


def _networks(values: tuple[str, ...]) -> tuple[str, ...]:
    """Each entry as a normalised network (``10.0.0.1`` -> ``10.0.0.1/32``), or ValueError."""
    out = []
    for value in values:
        try:
            out.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or CIDR network "
                             "(e.g. 10.0.0.0/8)") from None
    return tuple(out)


SETTINGS: tuple[Setting, ...] = (
    Setting("", "data_dir", Path, Path("./data"),
            "Folder for the database, the key file and the default storage volume."),
    Setting("server", "host", str, "127.0.0.1", "Address the HTTP server listens on."),
    Setting("server", "port", int, 8080, "TCP port the HTTP server listens on.", minimum=0),
    Setting("server", "tls_cert", str, "", "PEM certificate file; with tls_key, serve HTTPS."),
    Setting("server", "tls_key", str, "", "PEM private key file for tls_cert."),
    Setting("server", "metrics_token", str, "",
            "Bearer token required by /metrics; empty: /metrics answers without a login."),
    Setting("server", "session_hours", int, 12, "Lifetime of a login session, hours.", minimum=1),
    Setting("server", "password_threads", int, 1,
            "Threads that check passwords (argon2id: ~64 MiB and ~0.15 s of 1–2 cores each), at "
            "low priority; when 16 sign-ins per thread wait, more are answered 503.", minimum=1),
    Setting("server", "default_language", str, "en",
            "UI language when neither the user nor the browser picks one.", choices=("en", "ru", "kk")),
    Setting("server", "trusted_proxies", tuple, (),
            "Reverse proxies (addresses or CIDRs, e.g. [\"127.0.0.1/32\"]) whose "
            "X-Forwarded-For and X-Forwarded-Proto are believed: the client's address (login "
            "throttling, audit, sessions) and https (the Secure cookie) come from them; "
            "empty: those headers are ignored.", check=_networks),
    Setting("database", "url", str, "",
            "Empty: SQLite file vms.sqlite3 in data_dir. postgresql://user@host:port/db: PostgreSQL."),
    Setting("recording", "segment_seconds", int, 60, "Length of a recorded segment, seconds.",
            minimum=1),
    Setting("recording", "ffmpeg_path", str, "",
            "ffmpeg binary to use; empty: the one bundled with imageio-ffmpeg."),
    Setting("recording", "rtsp_transport", str, "tcp", "Default RTSP transport for recording.",
            choices=("tcp", "udp")),
    Setting("export", "concurrency", int, 2,
            "Exports made at the same time; more wait in the queue.", minimum=1),
    Setting("export", "max_kb_per_s", int, 0,
            "Cap on how fast an export copies recorded video, kilobytes a second, so exports "
            "never starve the recorders' disks; 0: no cap.", minimum=0),
    Setting("export", "muxer", str, "auto",
            "auto: copy the recorded samples straight into the MP4 (ffmpeg for segments that "
            "cannot be read that way); ffmpeg: always ffmpeg's concat demuxer.",
            choices=("auto", "ffmpeg")),
    Setting("retention", "continuous_days", int, 30,
            "Days to keep continuous recordings; a site or camera may override it (`vms retention "
            "set`); 0: no age limit (kept until space is needed).", minimum=0),
    Setting("retention", "event_days", int, 90,
            "Days to keep recordings inside an event's keep window (never less than "
            "continuous_days); a site or camera may override it; 0: no age limit.", minimum=0),
    Setting("retention", "exports_days", int, 30,
            "Days a finished export's file and manifest are kept in <data_dir>/exports (and the "
            "recordings it covers protected); unless held; 0: kept forever.", minimum=0),
    Setting("logging", "level", str, "INFO", "Log level.",
            choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    Setting("logging", "format", str, "text", "Log line format: text or json (one object a line).",
            choices=("text", "json")),
    Setting("cameras", "snapshot_hosts_allowed", str, "",
            "Hosts (names or IP addresses, comma-separated) besides each camera's own that a "
            "camera's ONVIF snapshot URL may name; empty: a snapshot comes only from the host "
            "the camera was adopted at."),
    Setting("events", "max_open_seconds", int, 3600,
            "An interval event (motion, tamper…) whose \"off\" never arrives is closed this many "
            "seconds after it started, and marked so in its data (closed: max_open).", minimum=1),
    Setting("intercom", "pulse_seconds", int, 1,
            "How long a door release holds the relay active, seconds: asked of the camera as a "
            "Monostable relay where it supports that delay, else the server sets it active and, "
            "this long after, inactive again.", minimum=1),
    Setting("intercom", "ring_seconds", int, 30,
            "How long a doorbell rings on the site's open pages; a ring nobody answered (door "
            "opened or call acknowledged) within it is a missed call.", minimum=5),
    Setting("intercom", "pulses_per_minute", int, 6,
            "Door releases one user may ask of one camera in any 60 s; more are refused (429 "
            "with Retry-After) and audited.", minimum=1),
    Setting("mqtt", "url", str, "", "MQTT broker, e.g. mqtt://127.0.0.1:1883; empty: off."),
    Setting("mqtt", "topic_prefix", str, "vms", "Prefix of every MQTT topic we publish."),
    Setting("mqtt", "discovery", bool, True,
            "Publish Home Assistant MQTT discovery configs (each camera's motion, doorbell and "
            "tamper as binary sensors, its last plate as a sensor)."),
    Setting("mqtt", "discovery_prefix", str, "homeassistant",
            "Topic prefix Home Assistant reads discovery configs from."),
    Setting("cluster", "node_name", str, "",
            "This node's name in a cluster (PostgreSQL database.url only); empty: the host name."),
    Setting("cluster", "advertise_url", str, "",
            "How the other nodes reach this node's API, e.g. http://10.0.0.5:8080; empty: "
            "http://<server.host>:<server.port>."),
    Setting("cluster", "max_cameras", int, 0,
            "Most cameras this node records; 0: no cap (cameras are balanced by count).",
            minimum=0),
    Setting("cluster", "lease_seconds", int, 10,
            "Lifetime of a camera lease and of a node's heartbeat, seconds (database clock): a "
            "crashed node's cameras are recorded elsewhere after about half this long (its "
            "database session ends with it), a node cut off or hung after about this long.",
            minimum=2),
)

VOLUME_SETTINGS: tuple[Setting, ...] = (
    Setting("storage.volumes", "name", str, None, "Volume name, unique."),
    Setting("storage.volumes", "path", Path, None,
            "Folder that holds recordings (relative: to the config file)."),
    Setting("storage.volumes", "max_bytes", int, 0, "Cap on bytes used; 0: no cap.", minimum=0),
    Setting("storage.volumes", "min_free_bytes", int, 0,
            "Keep at least this many bytes free on the file system.", minimum=0),
    Setting("storage.volumes", "min_free_percent", int, 0,
            "Keep at least this percentage of the file system free (with min_free_bytes: the "
            "larger of the two).", minimum=0),
)


@dataclass(frozen=True)
class Volume:
    name: str
    path: Path
    max_bytes: int = 0
    min_free_bytes: int = 0
    min_free_percent: int = 0
    implicit: bool = False
    """The default volume (``<data_dir>/recordings``, no ``[[storage.volumes]]`` configured): the
    one volume the server creates (and marks) itself; never read from a config file."""

    def floor_bytes(self, total_bytes: int) -> int:
        """Bytes to keep free on a file system of ``total_bytes``: the larger of
        ``min_free_bytes`` and ``min_free_percent`` of it."""
        return max(self.min_free_bytes, total_bytes * self.min_free_percent // 100)


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    tls_cert: str = ""
    tls_key: str = ""
    metrics_token: str = ""
    session_hours: int = 12
    password_threads: int = 1
    default_language: str = "en"
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = ""


@dataclass(frozen=True)
class RecordingSettings:
    segment_seconds: int = 60
    ffmpeg_path: str = ""
    rtsp_transport: str = "tcp"


@dataclass(frozen=True)
class ExportSettings:
    concurrency: int = 2
    max_kb_per_s: int = 0
    muxer: str = "auto"


@dataclass(frozen=True)
class RetentionSettings:
    continuous_days: int = 30
    event_days: int = 90
    exports_days: int = 30


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "INFO"
    format: str = "text"


@dataclass(frozen=True)
class CamerasSettings:
    snapshot_hosts_allowed: str = ""

    @property
    def snapshot_hosts(self) -> tuple[str, ...]:
        """``snapshot_hosts_allowed`` as a list of hosts."""
        return tuple(h for h in self.snapshot_hosts_allowed.replace(",", " ").split() if h)


@dataclass(frozen=True)
class EventsSettings:
    max_open_seconds: int = 3600


@dataclass(frozen=True)
class IntercomSettings:
    pulse_seconds: int = 1
    ring_seconds: int = 30
    pulses_per_minute: int = 6


@dataclass(frozen=True)
class MqttSettings:
    url: str = ""
    topic_prefix: str = "vms"
    discovery: bool = True
    discovery_prefix: str = "homeassistant"


@dataclass(frozen=True)
class ClusterSettings:
    node_name: str = ""
    advertise_url: str = ""
    max_cameras: int = 0
    lease_seconds: int = 10


@dataclass(frozen=True)
class Settings:
    """Everything the server is told, resolved to absolute paths."""

    data_dir: Path
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    recording: RecordingSettings = field(default_factory=RecordingSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    cameras: CamerasSettings = field(default_factory=CamerasSettings)
    events: EventsSettings = field(default_factory=EventsSettings)
    intercom: IntercomSettings = field(default_factory=IntercomSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    volumes: tuple[Volume, ...] = ()
    source: str = "<defaults>"

    @property
    def database_url(self) -> str:
        """The effective database URL (SQLite in data_dir when none is set)."""
        if self.database.url:
            return self.database.url
        return f"sqlite:///{self.data_dir / 'vms.sqlite3'}"

    @property
    def clustered(self) -> bool:
        """PostgreSQL: this server is a node of a cluster (vms/cluster.py), alone or not."""
        return self.database_url.startswith(("postgresql:", "postgres:"))

    @property
    def node_name(self) -> str:
        """This node's name (``[cluster] node_name``, else the host name)."""
        if self.cluster.node_name:
            return self.cluster.node_name
        import socket

        return socket.gethostname()

    @property
    def advertise_url(self) -> str:
        """How the other nodes reach this one (``[cluster] advertise_url``, else host:port)."""
        if self.cluster.advertise_url:
            return self.cluster.advertise_url.rstrip("/")
        scheme = "https" if self.server.tls_cert else "http"
        host = self.server.host if self.server.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self.server.port}"

    @property
    def key_file(self) -> Path:
        return self.data_dir / "secret.key"

    def ffmpeg_exe(self) -> str:
        if self.recording.ffmpeg_path:
            return self.recording.ffmpeg_path
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())


_SECTIONS: dict[str, type] = {
    "server": ServerSettings,
    "database": DatabaseSettings,
    "recording": RecordingSettings,
    "export": ExportSettings,
    "retention": RetentionSettings,
    "logging": LoggingSettings,
    "cameras": CamerasSettings,
    "events": EventsSettings,
    "intercom": IntercomSettings,
    "mqtt": MqttSettings,
    "cluster": ClusterSettings,
}

_TYPE_NAMES = {str: "a string", int: "an integer", Path: "a path (string)", bool: "true or false",
               tuple: "a list of strings"}


_BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True,
               "false": False, "0": False, "no": False, "off": False}


def _coerce(source: str, setting: Setting, value: Any, *, from_env: bool = False) -> Any:
    where = f"{source}: {setting.dotted}"
    expected = _TYPE_NAMES.get(setting.type, setting.type.__name__)
    if setting.type is tuple:
        if from_env and isinstance(value, str):  # comma-separated in the environment
            value = [part for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected {expected}, got {type(value).__name__} {value!r}")
        try:
            return setting.check(tuple(value)) if setting.check else tuple(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if setting.type is bool:
        if from_env and isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            value = _BOOL_WORDS[value.strip().lower()]
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected {expected}, got {type(value).__name__} {value!r}")
        return value
    if from_env:
        if setting.type is int:
            try:
                value = int(value)
            except ValueError:
                raise ConfigError(f"{where}: expected {expected}, got {value!r}") from None
    if setting.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected {expected}, got {type(value).__name__} {value!r}")
        if setting.minimum is not None and value < setting.minimum:
            raise ConfigError(f"{where}: must be >= {setting.minimum}, got {value}")
        return value
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected {expected}, got {type(value).__name__} {value!r}")
    if setting.choices and value not in setting.choices:
        raise ConfigError(f"{where}: expected one of {', '.join(setting.choices)}, got {value!r}")
    if setting.type is Path:
        return Path(value)
    return value


def _resolve(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else (base / path).resolve()


def load_settings(path: Path | None = None, *, env: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read ``path`` (may be None: defaults only), apply ``VMS_*`` env and ``overrides``.

    ``overrides`` uses dotted keys (``{"server.port": 0}``) and is for the CLI and tests.
    """
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    source = "<defaults>"
    base = Path.cwd()
    if path is not None:
        source = str(path)
        base = path.resolve().parent
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{source}: file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
    by_section: dict[str, dict[str, Setting]] = {}
    for s in SETTINGS:
        by_section.setdefault(s.section, {})[s.key] = s

    values: dict[str, dict[str, Any]] = {sec: {} for sec in by_section}
    for key, value in data.items():
        if key in by_section[""]:
            values[""][key] = _coerce(source, by_section[""][key], value)
        elif key == "storage":
            continue
        elif key in by_section and key != "":
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: [{key}] must be a table, got {type(value).__name__}")
            for sub, subval in value.items():
                if sub not in by_section[key]:
                    known = ", ".join(sorted(by_section[key]))
                    raise ConfigError(f"{source}: unknown key {key}.{sub} (known: {known})")
                values[key][sub] = _coerce(source, by_section[key][sub], subval)
        else:
            known = ", ".join(sorted([k for k in by_section if k] + list(by_section[""]) + ["storage"]))
            raise ConfigError(f"{source}: unknown key {key!r} (known: {known})")

    for s in SETTINGS:
        if s.env_name in env:
            values[s.section][s.key] = _coerce(f"environment {s.env_name}", s, env[s.env_name],
                                               from_env=True)
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.rpartition(".")
        setting = by_section.get(section, {}).get(key)
        if setting is None:
            raise ConfigError(f"override: unknown key {dotted}")
        if setting.type is tuple:
            value = _coerce("override", setting, value)
        values[section][key] = value if setting.type is not Path else Path(value)

    data_dir = _resolve(base, values[""].get("data_dir", Path("./data")))
    volumes = _load_volumes(source, base, data.get("storage"), data_dir)
    sections = {name: cls(**values[name]) for name, cls in _SECTIONS.items()}
    settings = Settings(data_dir=data_dir, volumes=volumes, source=source, **sections)
    if values["cluster"] and not settings.clustered:
        raise ConfigError(f"{source}: [cluster] {', '.join(sorted(values['cluster']))}: a cluster "
                          "needs a PostgreSQL database.url (with SQLite the server is one node)")
    return settings


def _load_volumes(source: str, base: Path, storage: Any, data_dir: Path) -> tuple[Volume, ...]:
    if storage is None:
        return (Volume(name="main", path=data_dir / "recordings", implicit=True),)
    if not isinstance(storage, dict):
        raise ConfigError(f"{source}: [storage] must be a table")
    for key in storage:
        if key != "volumes":
            raise ConfigError(f"{source}: unknown key storage.{key} (known: volumes)")
    raw = storage.get("volumes", [])
    if not isinstance(raw, list) or not all(isinstance(v, dict) for v in raw):
        raise ConfigError(f"{source}: storage.volumes must be an array of tables ([[storage.volumes]])")
    known = {s.key: s for s in VOLUME_SETTINGS}
    volumes: list[Volume] = []
    for i, entry in enumerate(raw):
        kwargs: dict[str, Any] = {}
        for key, value in entry.items():
            if key not in known:
                raise ConfigError(
                    f"{source}: unknown key storage.volumes[{i}].{key} (known: {', '.join(known)})")
            kwargs[key] = _coerce(source, known[key], value)
        for required in ("name", "path"):
            if required not in kwargs:
                raise ConfigError(f"{source}: storage.volumes[{i}] needs {required!r}")
        kwargs["path"] = _resolve(base, kwargs["path"])
        if kwargs.get("min_free_percent", 0) > 99:
            raise ConfigError(f"{source}: storage.volumes[{i}].min_free_percent must be 0..99, "
                              f"got {kwargs['min_free_percent']}")
        volumes.append(Volume(**kwargs))
    names = [v.name for v in volumes]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: storage.volumes names must be unique, got {names}")
    if not volumes:
        return (Volume(name="main", path=data_dir / "recordings", implicit=True),)
    return tuple(volumes)


def find_config(explicit: str | None) -> Path | None:
    """``--config`` if given, else ``./vms.toml`` if present, else ``$VMS_CONFIG``, else None."""
    if explicit:
        return Path(explicit)
    local = Path("vms.toml")
    if local.exists():
        return local
    env_path = os.environ.get("VMS_CONFIG")
    return Path(env_path) if env_path else None
