"""What the server sends to people, in their language: labels for the codes the core stores (audit
actions and outcomes, event types) and translations of the English messages the core and the API
produce (export failures, API errors a page shows, camera interrogation and discovery reports,
settings-form validation errors with the field's label: :func:`field_error`, talk-back ends).

The core keeps English text and codes (logs, CLI, the database); the translation happens here, at the
display edge, per request (:mod:`web.i18n` has the active language). A message is matched against
:data:`PATTERNS` (a regular expression with named groups and the ``N_``-marked template it becomes;
a group named ``inner`` holds a message of its own, translated in its turn); a message nothing
matches is shown as it is, and so is every message in English (API clients rely on its wording).
Gap and run end reasons are in :data:`web.i18n.GAP_REASONS`.
"""

from __future__ import annotations

import re

from web.i18n import GAP_REASONS, N_, current_language, gap_reason, gettext

AUDIT_ACTIONS = {
    "login": N_("sign-in"), "logout": N_("sign-out"), "grant": N_("rights granted"),
    "password_change": N_("password changed"),
    "token_create": N_("API token created"), "token_revoke": N_("API token revoked"),
    "revoke": N_("sessions revoked"), "user_create": N_("user created"),
    "user_change": N_("user changed"), "site_create": N_("site created"),
    "camera_adopt": N_("camera adopted"), "camera_change": N_("camera changed"),
    "camera_remove": N_("camera removed"), "camera_event_settings": N_("camera event settings"),
    "camera_recordings_delete": N_("camera recordings deleted"),
    "export_create": N_("export created"), "export_download": N_("export downloaded"),
    "hold_create": N_("evidence hold created"), "hold_delete": N_("evidence hold released"),
    "ptz": N_("camera turned (PTZ)"), "door_release": N_("door opened"),
    "language": N_("language changed"), "retention_change": N_("retention changed"),
    "retention.purge": N_("old footage deleted"),
}
AUDIT_OUTCOMES = {"ok": N_("done"), "failed": N_("failed"), "throttled": N_("refused: too many attempts"),
                  "denied": N_("refused")}
EVENT_TYPES = {"motion": N_("Motion"), "doorbell": N_("Doorbell"), "plate": N_("Plate"),
               "tamper": N_("Tampering"), "relay": N_("Relay"), "generic": N_("Other event")}

_NAME = r"'(?P<name>[^']*)'"
_LABEL = r"""(?P<label>(?:'[^']*'|"[^"]*") \(\S+\)|\S+)"""
_QNAME = r"""(?P<q>['"])(?P<name>.*?)(?P=q)"""
"""A name as Python's ``repr`` quotes it (double quotes when it holds a ``'``)."""
_QTARGET = r"""(?P<target>'.*'|".*")"""
_SKEW_END = r"the server's; set its clock \(or NTP\) before adopting it"
PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(rx), text) for rx, text in (
    # export failures (recorder/export.py, recorder/export_plan.py, recorder/export_writer.py)
    (r"^cancelled by the user$", N_("cancelled by the user")),
    (r"^internal error; see the server log$", N_("internal error; see the server log")),
    (r"^choose at least one camera$", N_("Choose at least one camera.")),
    (r"^at most (?P<count>\d+) cameras per export$", N_("at most %(count)s cameras per export")),
    (r"^the end of the range must be after its start$",
     N_("the end of the range must be after its start")),
    (r"^a range of at most 24 hours can be exported at once$",
     N_("a range of at most 24 hours can be exported at once")),
    (r"^camera (?P<name>\d+) no longer exists$", N_("camera %(name)s no longer exists")),
    (rf"^camera {_NAME}: nothing recorded between (?P<start>\S+) and (?P<end>\S+)$",
     N_("camera “%(name)s”: nothing recorded between %(start)s and %(end)s")),
    (rf"^camera {_NAME}: recorded file .* is missing$",
     N_("camera “%(name)s”: a recorded file is missing")),
    (rf"^camera {_NAME}: ffmpeg failed: .*$", N_("camera “%(name)s”: the video could not be written")),
    (rf"^camera {_NAME}: ffmpeg wrote no readable video.*$",
     N_("camera “%(name)s”: the video could not be written")),
    (rf"^camera {_NAME}: storage volume .*$",
     N_("camera “%(name)s”: a storage volume is unavailable")),
    (rf"^camera {_NAME}: none of the .*$", N_("camera “%(name)s”: the recorded files are unreadable")),
    (r"^file error: .*$", N_("file error on the server")),
    (r"^.* is not a local time \(expected YYYY-MM-DDTHH:MM\)$",
     N_("not a local time (expected YYYY-MM-DDTHH:MM)")),
    (r"^.* does not exist in (?P<tz>\S+) \(clocks were moved forward\)$",
     N_("this time does not exist in %(tz)s (clocks were moved forward)")),
    (r"^the file of export (?P<id>\d+) is gone from the server$",
     N_("the file of this export is gone from the server")),
    # recording status reasons (recorder/run.py, recorder/supervisor.py)
    (r"^recording$", N_("recording")),
    (r"^starting$", N_("starting")),
    (r"^connecting to camera$", N_("connecting to the camera")),
    (r"^stalled: no data for (?P<seconds>[\d.]+)s$",
     N_("camera stopped sending: no data for %(seconds)s s")),
    (r"^camera lost: .*$", N_("connection to the camera lost")),
    (r"^wrong username or password for .*$", N_("wrong camera password")),
    (r"^not recording$", N_("not recording")),
    (r"^recording is off$", N_("recording is off")),
    (r"^scheduled: outside the recording window$", N_("outside the recording schedule")),
    (r"^event mode: buffering pre-roll, keeping events$",
     N_("event mode: buffering pre-roll, keeping events")),
    (r"^ffmpeg (died of signal|exited with code) .*$", N_("recording failed")),
    (r"^stopped$", N_("stopped")),
    # camera interrogation and discovery (onvif_bridge/client.py, scan.py, adopt.py): the camera's
    # label ('Name' (host:port) or host:port) and the technical detail stay as they are
    (rf"^camera {_LABEL}: ok$", N_("camera %(label)s: ok")),
    (rf"^camera {_LABEL}: wrong password \((?P<detail>.*)\)$",
     N_("camera %(label)s: wrong user name or password (%(detail)s)")),
    (rf"^camera {_LABEL}: refused a request \((?P<detail>.*)\)$",
     N_("camera %(label)s: refused a request (%(detail)s)")),
    (rf"^camera {_LABEL}: no ONVIF media service \(only Media2, which is not supported yet\); "
     r"cannot stream$",
     N_("camera %(label)s: no ONVIF media service (only Media2, which is not supported yet); "
        "cannot stream")),
    (rf"^camera {_LABEL}: no ONVIF media service \(none\); cannot stream$",
     N_("camera %(label)s: no ONVIF media service; cannot stream")),
    (rf"^camera {_LABEL}: no media profile with an RTSP stream$",
     N_("camera %(label)s: no media profile with an RTSP stream")),
    (rf"^camera {_LABEL}: clock is (?P<seconds>\d+) s ahead of {_SKEW_END}; (?P<detail>.+)$",
     N_("camera %(label)s: its clock is %(seconds)s s ahead of the server's; set its clock (or "
        "NTP) before adopting it; %(detail)s")),
    (rf"^camera {_LABEL}: clock is (?P<seconds>\d+) s ahead of {_SKEW_END}$",
     N_("camera %(label)s: its clock is %(seconds)s s ahead of the server's; set its clock (or "
        "NTP) before adopting it")),
    (rf"^camera {_LABEL}: clock is (?P<seconds>\d+) s behind {_SKEW_END}; (?P<detail>.+)$",
     N_("camera %(label)s: its clock is %(seconds)s s behind the server's; set its clock (or "
        "NTP) before adopting it; %(detail)s")),
    (rf"^camera {_LABEL}: clock is (?P<seconds>\d+) s behind {_SKEW_END}$",
     N_("camera %(label)s: its clock is %(seconds)s s behind the server's; set its clock (or "
        "NTP) before adopting it")),
    (rf"^camera {_LABEL}: no answer to (?P<operation>\w+) within (?P<seconds>[\d.]+) s$",
     N_("camera %(label)s: no answer to %(operation)s within %(seconds)s s")),
    (rf"^camera {_LABEL}: cannot reach (?P<url>\S+) \((?P<detail>.*)\)$",
     N_("camera %(label)s: cannot reach %(url)s (%(detail)s)")),
    (r"^no MAC address: (?P<detail>.*)$", N_("no MAC address: %(detail)s")),
    (r"^no hostname: (?P<detail>.*)$", N_("no hostname: %(detail)s")),
    (r"^relay outputs not listed: (?P<detail>.*)$", N_("relay outputs not listed: %(detail)s")),
    (r"^no stream URI: (?P<detail>.*)$", N_("no stream URI: %(detail)s")),
    (r"^device (?P<label>\S+): its discovery reply could not be read \((?P<detail>.*)\)$",
     N_("device %(label)s: its discovery reply could not be read (%(detail)s)")),
    (r"^device (?P<label>\S+): no HTTP device address in its ProbeMatch$",
     N_("device %(label)s: no HTTP device address in its discovery reply")),
    (r"^setting the clock failed: (?P<detail>.*)$", N_("setting the clock failed: %(detail)s")),
    (r"^this camera is already adopted into a site you do not manage; .*$",
     N_("this camera is already adopted into a site you do not manage; ask an administrator to "
        "move or remove it")),
    (r"^site_id is required: you see several sites \(or none\)$",
     N_("choose a site: you see several sites (or none)")),
    (r"^camera could not be stored: (?P<detail>.*)$",
     N_("camera could not be stored: %(detail)s")),
    # adoption and onboarding refusals (onvif_bridge/adopt.py, configure.py), discovery scans
    # (onvif_bridge/discovery.py, scan_jobs.py) and the discovery API's own (web/views_discovery.py)
    (rf"^camera {_LABEL}: ok: no media profile with an RTSP stream$",
     N_("camera %(label)s: no media profile with an RTSP stream")),
    (r"^no site (?P<id>\d+)$", N_("site %(id)s does not exist or is not yours")),
    (rf"^camera {_QNAME} was removed \(archived\): .*$",
     N_("camera “%(name)s” was removed (archived): it takes no commands; its recordings can "
        "still be played")),
    (rf"^camera {_QNAME} was added by RTSP URL and has no ONVIF address$",
     N_("camera “%(name)s” was added by RTSP URL and has no ONVIF address")),
    (r"^onvif_url (?P<q>['\"])(?P<url>.*)(?P=q): expected .*$",
     N_("“%(url)s” is not an ONVIF address: expected http://host[:port]/… or host[:port]")),
    (r"^rtsp_url (?P<q>['\"])(?P<url>.*)(?P=q): expected .*$",
     N_("“%(url)s” is not an RTSP URL: expected rtsp://host[:port]/path")),
    (r"^give exactly one of 'onvif_url' and 'rtsp_url'$",
     N_("give either an ONVIF address or an RTSP URL")),
    (rf"^camera {_QNAME} has no stream$", N_("camera “%(name)s” has no video stream")),
    (rf"^camera {_QNAME} offers no ONVIF snapshot$",
     N_("camera “%(name)s” offers no ONVIF snapshot")),
    (rf"^camera {_QNAME}: no ffmpeg for a snapshot from its RTSP stream \((?P<detail>.*)\)$",
     N_("camera “%(name)s”: the server has no ffmpeg to take a snapshot from its RTSP stream "
        "(%(detail)s)")),
    (r"^(?P<address>\S+): no snapshot URI$", N_("%(address)s: the device offers no snapshot")),
    (r"^snapshot (?P<url>\S+): not an http\(s\) URL; refused$",
     N_("the snapshot address %(url)s is not an http(s) URL; refused")),
    (r"^snapshot (?P<url>\S+): host (?P<host>\S+) is not the camera's own .*$",
     N_("the snapshot address %(url)s is on another host (%(host)s) than the camera; refused "
        "(an administrator may allow it: cameras.snapshot_hosts_allowed)")),
    (r"^camera onboarding is not running on this server$",
     N_("adopting cameras is not running on this server")),
    (r"^encoder checks are not running on this server$",
     N_("camera settings checks are not running on this server")),
    (r"^camera discovery is not running on this server$",
     N_("camera discovery is not running on this server")),
    (r"^no such discovery job$", N_("this scan is no longer on the server; start a new one")),
    (r"^no such device in this scan \(yet\)$", N_("no such device in this scan (yet)")),
    (r"^too many discovery scans running; wait for one to finish$",
     N_("too many scans are running; wait for one to finish")),
    (r"^the scan failed: (?P<detail>.*)$", N_("the scan failed: %(detail)s")),
    (r"^field 'targets' is required.*$", N_("Give a subnet or at least one address.")),
    (r"^field 'xaddrs' must name at least one camera$", N_("Choose at least one camera.")),
    (r"^field 'timeout_s' must be a number in \(0, (?P<maximum>[\d.]+)\]$",
     N_("the scan's waiting time must be more than 0 and at most %(maximum)s seconds")),
    (r"^field 'devices' must be a list of device indexes$",
     N_("the devices must be given as a list of their numbers in the scan")),
    (r"^nothing to adopt: no device of this scan is ready .*$",
     N_("Nothing to adopt: no device of this scan answered these credentials with a video "
        "stream.")),
    (r"^nothing to configure: .*$",
     N_("nothing to configure: give a recording profile, a name, NTP servers, the clock or a "
        "restart")),
    (r"^(field|query parameter) '(?P<field>[\w.]+)' must be true or false$",
     N_("“%(field)s” must be true or false")),
    (r"^(field|query parameter) '(?P<field>[\w.]+)' must be a number$",
     N_("“%(field)s” must be a number")),
    (r"^(field|query parameter) '(?P<field>[\w.]+)' must be an object$",
     N_("“%(field)s” must be an object")),
    (r"^query parameter 'stream' must be main or sub$",
     N_("the stream must be main or sub")),
    (r"^profile: (?P<inner>.*)$", N_("recording profile: %(inner)s")),
    (r"^stream must be 'main' or 'sub'$", N_("the stream must be main or sub")),
    (r"^a camera name is 1 to 200 characters$", N_("a camera name is 1 to 200 characters")),
    (r"^(?P<inner>.*); update the camera's credentials$",
     N_("%(inner)s; update the camera's credentials")),
    (rf"^camera {_QNAME} has no ONVIF profile for its (?P<kind>main|sub) stream$",
     N_("camera “%(name)s” has no ONVIF profile for this stream (%(kind)s)")),
    (r"^gop_s must be in \(0, (?P<maximum>[\d.]+)\] seconds so recordings cut cleanly, not "
     r"(?P<value>\S+)$",
     N_("the keyframe interval must be more than 0 and at most %(maximum)s s so recordings cut "
        "cleanly, not %(value)s")),
    (r"^give both width and height, or neither$", N_("give both width and height, or neither")),
    (r"^(?P<field>width|height|bitrate_kbps) must be positive$",
     N_("“%(field)s” must be more than 0")),
    (r"^fps must be in \(0, 120\]$", N_("the frame rate must be more than 0 and at most 120")),
    (r"^empty discovery target$", N_("an empty address to scan")),
    (rf"^discovery target {_QTARGET}: port (?P<port>.*) is not a number$",
     N_("address to scan %(target)s: the port %(port)s is not a number")),
    (rf"^discovery target {_QTARGET}: port (?P<port>\d+) out of range$",
     N_("address to scan %(target)s: the port %(port)s is out of range (1–65535)")),
    (rf"^discovery target {_QTARGET}: missing '\]'$",
     N_("address to scan %(target)s: a “]” is missing")),
    (rf"^discovery target {_QTARGET}: bad port$",
     N_("address to scan %(target)s: bad port")),
    (rf"^discovery target {_QTARGET}: no host$",
     N_("address to scan %(target)s: no host")),
    (rf"^discovery target {_QTARGET}: .*$",
     N_("address to scan %(target)s: not a host, host:port or CIDR range")),
    (r"^discovery range (?P<range>\S+) has (?P<count>\d+) addresses; the limit is "
     r"(?P<limit>\d+) .*$",
     N_("the range %(range)s has %(count)s addresses; at most %(limit)s can be scanned at once "
        "(an IPv4 /16): split it into smaller ranges")),
    # API errors the pages show (web/middleware.py, web/views_*.py)
    (r"^missing or invalid CSRF token$", N_("The page is out of date; reload it and try again.")),
    (r"^your role \((?P<role>\w+)\) does not allow this.*$", N_("Your role does not allow this.")),
    (r"^this API token's scope .*$", N_("This API token's scope does not allow this.")),
    (r"^sign in first.*$", N_("Sign in first.")),
    (r"^invalid, expired or revoked API token$", N_("invalid, expired or revoked API token")),
    (r"^no such (camera|export|recording)$|^no camera \d+$", N_("Not found.")),
    (r"^nothing recorded in this range$", N_("Nothing recorded here")),
    (r"^the recording's file is missing$", N_("recorded files missing")),
    (r"^the export service is not running$", N_("the export service is not running")),
    # another node of the cluster (web/cluster_proxy.py, recorder/export.py)
    (rf"^the camera is recorded by node {_NAME}, which cannot be reached now$",
     N_("the camera is recorded by cluster node “%(name)s”, which cannot be reached now")),
    (rf"^.* is on node {_NAME}, which cannot be reached now$",
     N_("it is kept on cluster node “%(name)s”, which cannot be reached now")),
    (rf"^.* is on node {_NAME}, which could not serve it$",
     N_("cluster node “%(name)s” could not serve it")),
    (rf"^the file is on node {_NAME}, which is no longer part of the cluster$",
     N_("the file is on cluster node “%(name)s”, which is no longer part of the cluster")),
    (rf"^export \d+ is being made on node {_NAME}: cancel it there$",
     N_("this export is being made on cluster node “%(name)s”: cancel it there")),
    (r"^internal server error; the server log has the details$",
     N_("Something went wrong on the server.")),
    # talk-back (recorder/backchannel.py, sent by web/views_talk.py)
    (r"^camera ended the session.*$", N_("the camera ended the session")),
    (r"^the server is stopping$", N_("the server is stopping")),
    (rf"^camera {_NAME}: (DESCRIBE|SETUP of the backchannel|PLAY) answered RTSP (?P<status>\d+)$",
     N_("camera “%(name)s” refused the talk session (RTSP %(status)s)")),
    # settings-form validation (recorder/settings.py, recorder/schedule.py, vms/retention.py,
    # web/views_retention.py, vms/events.py): the message after the field, see field_error
    (r"^must be a whole number of seconds, got .*$", N_("must be a whole number of seconds")),
    (r"^must be between 0 and (?P<maximum>\d+) seconds, got (?P<value>-?\d+)$",
     N_("must be between 0 and %(maximum)s seconds, got %(value)s")),
    (r"^must be true or false \(yes/no\), got .*$", N_("must be yes or no")),
    (r"^must be a volume name \(a string\), got .*$|^unknown volume .*$",
     N_("no such storage volume")),
    (r"^unknown (field|member) \(known: .*\)$", N_("unknown field")),
    (r"^must be one of (?P<known>[\w, -]+), got (?P<value>.*)$",
     N_("must be one of %(known)s, got %(value)s")),
    (r"^must be a list of windows, e\.g\. .*$|^schedule must be a JSON list of windows$"
     r"|^schedule is not JSON: .*$|^each window needs .*$",
     N_("write one window a line, e.g. mon-fri 07:00-19:00")),
    (r"^line (?P<line>\d+): '(?P<text>[^']*)' is not 'DAYS HH:MM-HH:MM'.*$",
     N_("line %(line)s: “%(text)s” is not a window like mon-fri 07:00-19:00")),
    (r"^line (?P<line>\d+): unknown day '(?P<day>[^']*)'.*$",
     N_("line %(line)s: unknown day “%(day)s” (use mon…sun, e.g. mon-fri)")),
    (r"^unknown day '(?P<day>[^']*)'.*$", N_("unknown day “%(day)s” (use mon…sun, e.g. mon-fri)")),
    (r"^line (?P<line>\d+): bad time '(?P<time>[^']*)'.*$",
     N_("line %(line)s: bad time “%(time)s” (use HH:MM)")),
    (r"^bad time '(?P<time>[^']*)'.*$", N_("bad time “%(time)s” (use HH:MM)")),
    (r"^camera \d+ has no (main|sub) stream$", N_("the camera has no such stream")),
    (r"^expected a whole number or blank, got .*$|^expected an integer or null, got .*$",
     N_("must be a whole number, or blank")),
    (r"^must be at least 1 byte \(null: no cap\), got .*$",
     N_("must be at least 1 byte (blank: no cap)")),
    (r"^must be 0\.\.(?P<maximum>\d+) days .*$",
     N_("must be 0 to %(maximum)s days (0: no age limit; blank: as the site)")),
    (r"^'(kept|recorded)': expected a list of event types$", N_("expected a list of event types")),
    (r"^unknown event type\(s\) (?P<names>[^(]*) \(known: .*\)$",
     N_("unknown event type(s) %(names)s")),
    # last: a camera's name before a message of its own (onvif_bridge/adopt.py's snapshot refusals)
    (rf"^camera {_QNAME}: (?P<inner>.+)$", N_("camera “%(name)s”: %(inner)s")),
))

FIELDS = {"recording_mode": N_("Mode"), "schedule": N_("Schedule"),
          "event_pre_s": N_("Event pre-roll (seconds)"),
          "event_post_s": N_("Event post-roll (seconds)"), "volume": N_("Storage volume"),
          "record": N_("Record this stream"), "rtsp_transport": N_("RTSP transport"),
          "continuous_days": N_("Keep continuous footage (days, 0: no age limit)"),
          "event_days": N_("Keep event footage (days, 0: no age limit)"),
          "max_bytes": N_("Cap on this camera's recordings (bytes, blank: no cap)"),
          "kept": N_("Keep in the event list"), "recorded": N_("Triggers recording")}
"""Labels of the settings forms' fields, for :func:`field_error` (as the forms label them)."""


_STREAM_PREFIX = re.compile(r"^(?P<kind>main|sub) stream: (?P<rest>.*)$")


def translate_message(text: str) -> str:
    """``text`` in the active language when it is one of the known messages (or a gap/run end
    reason code), else unchanged."""
    prefixed = _STREAM_PREFIX.match(text or "")
    if prefixed:
        kind = gettext(N_("main stream") if prefixed["kind"] == "main" else N_("sub stream"))
        return f"{kind}: {translate_message(prefixed['rest'])}"
    if text in GAP_REASONS:
        return gap_reason(text)
    if current_language() == "en":  # the original wording: API clients and tests rely on it
        return text
    for pattern, template in PATTERNS:
        found = pattern.match(text or "")
        if found:
            translated = gettext(template)
            values = found.groupdict()
            if values.get("inner"):  # a message inside a message: translated in its turn
                values["inner"] = translate_message(values["inner"])
            return translated % values if values else translated
    return text


def audit_action(code: str) -> str:
    label = AUDIT_ACTIONS.get(code)
    return gettext(label) if label else code


def audit_outcome(code: str) -> str:
    label = AUDIT_OUTCOMES.get(code)
    return gettext(label) if label else code


def event_type(code: str) -> str:
    label = EVENT_TYPES.get(code)
    return gettext(label) if label else code


def stream_kind(kind: str) -> str:
    if kind in ("main", "sub"):
        return gettext(N_("main stream") if kind == "main" else N_("sub stream"))
    return kind


def event_type_labels() -> dict[str, str]:
    """Every event type's label in the active language (for scripts that add rows)."""
    return {code: gettext(label) for code, label in EVENT_TYPES.items()}


def field_error(field: str, message: str) -> str:
    """A settings form's validation error (``SettingsError``/``PolicyError``: the field's code,
    ``streams.main.record`` …, and the English message) as the form shows it: in English as the
    core words it (``field: message``), else the field's label and the translated message."""
    if current_language() == "en":
        return f"{field}: {message}"
    parts = field.split(".")
    words = []
    if parts[0] == "streams" and len(parts) > 1:
        words.append(stream_kind(parts[1]))
        parts = parts[2:]
    for part in parts:
        label = FIELDS.get(part)
        words.append(gettext(label) if label else part)
    return f"{' · '.join(words)}: {translate_message(message)}"
