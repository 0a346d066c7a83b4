"""UI languages: Babel catalogues loaded from ``web/translations``, chosen per request.

Templates use Jinja's i18n extension (``{{ _("Cameras") }}``); Python code uses :func:`gettext`.
The language is the user's own choice when set, else the ``vms_lang`` cookie, else the browser's
``Accept-Language``, else the configured default. Catalogues are ``.po`` files compiled in memory at
start-up, so no binary ``.mo`` files live in the repository. Dates, times and numbers shown in pages
are formatted for the same language with Babel's locale data (:func:`format_instant`,
:func:`format_number`).
"""

from __future__ import annotations

import contextvars
import io
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"
LANGUAGES: dict[str, str] = {"en": "English", "ru": "Русский", "kk": "Қазақша"}

_NULL = NullTranslations()
_current: contextvars.ContextVar[NullTranslations | None] = contextvars.ContextVar(
    "vms_translations", default=None)
_current_lang: contextvars.ContextVar[str] = contextvars.ContextVar("vms_language", default="en")


def load_catalogues(directory: Path = TRANSLATIONS_DIR) -> dict[str, NullTranslations]:
    catalogues: dict[str, NullTranslations] = {"en": NullTranslations()}
    for lang in LANGUAGES:
        po_path = directory / lang / "LC_MESSAGES" / "messages.po"
        if lang == "en" or not po_path.exists():
            continue
        with po_path.open("rb") as fh:
            catalog = read_po(fh, locale=lang)
        buf = io.BytesIO()
        write_mo(buf, catalog)
        buf.seek(0)
        catalogues[lang] = Translations(buf)
    return catalogues


def parse_accept_language(header: str) -> list[str]:
    """Language codes from an Accept-Language header, best first."""
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        piece = part.strip()
        if not piece:
            continue
        lang, _, params = piece.partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        weighted.append((-q, index, lang.strip().lower().split("-")[0]))
    return [lang for _, _, lang in sorted(weighted) if lang]


def choose_language(user_language: str, cookie: str | None, accept: str, default: str) -> str:
    for candidate in (user_language, cookie or ""):
        if candidate in LANGUAGES:
            return candidate
    for lang in parse_accept_language(accept):
        if lang in LANGUAGES:
            return lang
    return default if default in LANGUAGES else "en"


def activate(translations: NullTranslations, lang: str = "en") -> None:
    _current.set(translations)
    _current_lang.set(lang if lang in LANGUAGES else "en")


def current_language() -> str:
    return _current_lang.get()


def format_instant(instant_us: int | None, tz_name: str = "UTC", lang: str | None = None,
                   width: str = "medium") -> str:
    """An instant (UTC microseconds) as local date and time in ``tz_name``, written the way the
    language writes it (``3 дек. 2026 г., 14:40:05``; ``2026 ж. 03 жел., 14:40:05``); ``""`` for
    None."""
    if instant_us is None:
        return ""
    moment = datetime.fromtimestamp(int(instant_us) / 1_000_000, tz=UTC)
    return format_datetime(moment, width, tzinfo=ZoneInfo(tz_name or "UTC"),
                           locale=lang or current_language())


def format_day(instant_us: int | None, tz_name: str = "UTC", lang: str | None = None) -> str:
    """Day and abbreviated month of an instant (chart axis labels): ``3 дек.``, ``Dec 3``."""
    if instant_us is None:
        return ""
    moment = datetime.fromtimestamp(int(instant_us) / 1_000_000, tz=UTC)
    local = moment.astimezone(ZoneInfo(tz_name or "UTC"))
    return format_date(local, "MMM d" if (lang or current_language()) == "en" else "d MMM",
                       locale=lang or current_language())


def format_number(value: float | int, lang: str | None = None, decimals: int | None = None) -> str:
    """A number with the language's separators (``12 345,7`` in Russian and Kazakh)."""
    pattern = None if decimals is None else "#,##0" + ("." + "0" * decimals if decimals else "")
    return format_decimal(value, format=pattern, locale=lang or current_language())


def gettext(message: str) -> str:
    return (_current.get() or _NULL).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return (_current.get() or _NULL).ngettext(singular, plural, n)


def N_(message: str) -> str:  # noqa: N802 - the conventional name extractors look for
    """Mark a message for extraction without translating it here."""
    return message


# Words that templates translate from data (roles, camera states, recording modes, API-token
# scopes and states).
DYNAMIC_TERMS = (
    N_("admin"), N_("installer"), N_("operator"), N_("viewer"),
    N_("new"), N_("recording"), N_("reconnecting"), N_("auth_failed"), N_("error"),
    N_("stopped"), N_("offline"), N_("online"), N_("archived"),
    N_("continuous"), N_("scheduled"), N_("event"), N_("off"),
    N_("read"), N_("control"), N_("active"), N_("expired"), N_("revoked"),
)

# Why footage is missing: run end reasons and timeline gap reasons (codes from recorder/run.py and
# recorder/timeline.py), as people read them.
GAP_REASONS = {
    "stall": N_("camera stopped sending"),
    "camera_lost": N_("connection to the camera lost"),
    "shutdown": N_("server stopped"),
    "config_change": N_("settings changed"),
    "schedule": N_("outside the recording schedule"),
    "disk_full": N_("disk full"),
    "volume_unavailable": N_("storage volume unavailable"),
    "auth_failed": N_("wrong camera password"),
    "error": N_("recording failed"),
    "crash_recovered": N_("server stopped unexpectedly"),
    "missing": N_("recorded files missing"),
    "not_recorded": N_("not recorded"),
    "recording": N_("still recording"),
    "retention": N_("deleted by the retention policy"),
    "node_lost": N_("the recording server stopped; another took over"),
    "handover": N_("moved to another recording server"),
    "lease_lost": N_("recording server lost contact with the database"),
    "crash": N_("recorder crashed"),
}

# What kind of hole a timeline gap is (recorder/timeline.py ``gap_kind``).
GAP_KINDS = {
    "gap": N_("Recording gap"),
    "not_recorded": N_("Not recorded"),
    "purged": N_("Deleted by retention"),
    "recording": N_("Still recording"),
}


def gap_reason(code: str) -> str:
    """The translated label of a run end reason or gap reason; an unknown code as it is."""
    label = GAP_REASONS.get(code or "")
    return gettext(label) if label is not None else code
