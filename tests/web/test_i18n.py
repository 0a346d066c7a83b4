"""UI text: every message in the templates and code has a Russian and a Kazakh translation; dates,
times and numbers are written the way each language writes them (Babel); what the server sends to
the UI (status reasons, audit actions, export and API errors) comes out translated."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

from web import i18n, messages
from web.i18n import choose_language, load_catalogues, parse_accept_language

ROOT = Path(__file__).resolve().parents[2]


@cache
def wanted_messages() -> frozenset[str]:
    """Every message marked in the code and templates (extracted once per run)."""
    from tools.i18n_update import extract_catalog

    return frozenset(m.id if isinstance(m.id, str) else m.id[0] for m in extract_catalog() if m.id)


def test_every_message_is_translated() -> None:
    wanted = wanted_messages()
    assert len(wanted) > 40
    for lang in ("ru", "kk"):
        with (ROOT / "web" / "translations" / lang / "LC_MESSAGES" / "messages.po").open("rb") as fh:
            catalog = read_po(fh, locale=lang)
        translated = {
            (m.id if isinstance(m.id, str) else m.id[0]) for m in catalog
            if m.id and (all(m.string) if isinstance(m.string, tuple) else m.string)
            and not m.fuzzy
        }
        missing = sorted(wanted - translated)
        assert not missing, (f"{lang}: untranslated messages {missing}; run "
                             "python tools/i18n_update.py and translate them")


def test_catalogues_load_and_plural_forms_work() -> None:
    ru = load_catalogues()["ru"]
    assert ru.gettext("Cameras") == "Камеры"
    assert [ru.ngettext("%(num)d camera", "%(num)d cameras", n) % {"num": n}
            for n in (1, 3, 5, 21)] == ["1 камера", "3 камеры", "5 камер", "21 камера"]


def test_language_choice_order() -> None:
    assert parse_accept_language("kk-KZ,ru;q=0.8,en;q=0.5") == ["kk", "ru", "en"]
    assert choose_language("", None, "kk-KZ,ru;q=0.8,en;q=0.5", "en") == "kk"
    assert choose_language("", None, "de-DE,ru;q=0.8,en;q=0.5", "en") == "ru"
    assert choose_language("en", "ru", "ru", "ru") == "en"
    assert choose_language("", "ru", "en", "en") == "ru"
    assert choose_language("", None, "", "ru") == "ru"
    assert choose_language("", None, "q=;;,", "en") == "en"


def test_no_empty_or_copied_translation() -> None:
    """Every msgstr is filled and not fuzzy in both catalogues, and Kazakh is not Russian copied:
    most entries differ from the Russian ones."""
    catalogues = {}
    for lang in ("ru", "kk"):
        with (ROOT / "web" / "translations" / lang / "LC_MESSAGES" / "messages.po").open("rb") as fh:
            catalogues[lang] = {(m.id if isinstance(m.id, str) else m.id[0]): m
                                for m in read_po(fh, locale=lang) if m.id}
        for key, m in catalogues[lang].items():
            strings = m.string if isinstance(m.string, tuple) else (m.string,)
            assert all(strings) and not m.fuzzy, (lang, key)
    same = [k for k, m in catalogues["kk"].items()
            if isinstance(m.string, str) and m.string == catalogues["ru"][k].string]
    assert len(same) < len(catalogues["kk"]) // 20, same  # units (ГБ), "оператор", "Реле"…


def test_kazakh_catalogue_and_plurals() -> None:
    kk = load_catalogues()["kk"]
    assert kk.gettext("Cameras") == "Камералар"
    assert kk.gettext("Sign out") == "Шығу"
    # Kazakh nouns stay singular after a number
    assert [kk.ngettext("%(num)d camera", "%(num)d cameras", n) % {"num": n}
            for n in (1, 2, 5)] == ["1 камера", "2 камера", "5 камера"]


# 2026-12-03 09:40:05 UTC = 14:40:05 in Almaty (UTC+5)
INSTANT_US = 1_796_290_805_000_000


def test_dates_and_numbers_per_language() -> None:
    assert i18n.format_instant(INSTANT_US, "Asia/Almaty", "en") == "Dec 3, 2026, 2:40:05\u202fPM"
    assert i18n.format_instant(INSTANT_US, "Asia/Almaty", "ru") == "3 дек. 2026\u202fг., 14:40:05"
    assert i18n.format_instant(INSTANT_US, "Asia/Almaty", "kk") == "2026\u202fж. 03 жел., 14:40:05"
    assert i18n.format_instant(INSTANT_US, "UTC", "ru") == "3 дек. 2026\u202fг., 09:40:05"
    assert i18n.format_instant(None, "UTC", "ru") == ""
    assert [i18n.format_day(INSTANT_US, "Asia/Almaty", lang) for lang in ("en", "ru", "kk")] == \
        ["Dec 3", "3 дек.", "3 жел."]
    assert i18n.format_number(12345.678, "en", decimals=1) == "12,345.7"
    assert i18n.format_number(12345.678, "ru", decimals=1) == "12\xa0345,7"
    assert i18n.format_number(12345.678, "kk", decimals=1) == "12\xa0345,7"
    # without an explicit language: the request's (set by the language middleware)
    i18n.activate(load_catalogues()["kk"], "kk")
    try:
        assert i18n.format_number(1.5) == "1,5"
        assert i18n.format_instant(INSTANT_US, "Asia/Almaty").startswith("2026\u202fж.")
    finally:
        i18n.activate(load_catalogues()["en"], "en")


def test_server_messages_are_translated() -> None:
    catalogues = load_catalogues()
    i18n.activate(catalogues["ru"], "ru")
    try:
        assert messages.translate_message("main stream: stalled: no data for 4s") == \
            "основной поток: камера перестала передавать видео: нет данных 4\xa0с"
        assert messages.translate_message("camera_lost") == "связь с камерой потеряна"
        assert messages.translate_message(
            "camera 'Gate': nothing recorded between 2026-12-03T07:00:00Z and "
            "2026-12-03T08:00:00Z") == \
            "камера «Gate»: с 2026-12-03T07:00:00Z по 2026-12-03T08:00:00Z ничего не записано"
        assert messages.translate_message("missing or invalid CSRF token") == \
            "Страница устарела; обновите её и повторите попытку."
        assert messages.translate_message("something nobody wrote down") == \
            "something nobody wrote down"
        assert messages.audit_action("login") == "вход"
        assert messages.event_type("doorbell") == "Звонок"
        assert messages.stream_kind("sub") == "дополнительный поток"
        i18n.activate(catalogues["kk"], "kk")
        assert messages.translate_message("recording is off") == "жазу өшірулі"
        assert messages.translate_message("cancelled by the user") == "пайдаланушы тоқтатты"
        i18n.activate(catalogues["en"], "en")  # English keeps the original wording (API clients)
        assert messages.translate_message("missing or invalid CSRF token") == \
            "missing or invalid CSRF token"
    finally:
        i18n.activate(catalogues["en"], "en")


def test_every_pattern_template_is_a_marked_message() -> None:
    """Each template a pattern turns into is in the catalogue, and its placeholders are groups of
    its pattern (so the % formatting cannot fail)."""
    import re

    wanted = wanted_messages()
    for pattern, template in messages.PATTERNS:
        assert template in wanted, template
        assert set(re.findall(r"%\((\w+)\)s", template)) <= set(pattern.groupindex), template
