"""UI text: every message in the templates and code has a Russian translation."""

from __future__ import annotations

from pathlib import Path

from babel.messages.pofile import read_po

from web.i18n import choose_language, load_catalogues, parse_accept_language

ROOT = Path(__file__).resolve().parents[2]


def test_every_message_is_translated() -> None:
    from tools.i18n_update import extract_catalog

    wanted = {m.id if isinstance(m.id, str) else m.id[0] for m in extract_catalog() if m.id}
    assert len(wanted) > 40
    for lang in ("ru",):
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
    assert choose_language("", None, "kk-KZ,ru;q=0.8,en;q=0.5", "en") == "ru"
    assert choose_language("en", "ru", "ru", "ru") == "en"
    assert choose_language("", "ru", "en", "en") == "ru"
    assert choose_language("", None, "", "ru") == "ru"
    assert choose_language("", None, "q=;;,", "en") == "en"
