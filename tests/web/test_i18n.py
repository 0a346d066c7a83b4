"""UI text: every message in the templates and code has a Russian and a Kazakh translation; dates,
times and numbers are written the way each language writes them (Babel); what the server sends to
the UI (status reasons, audit actions, export and API errors) comes out translated."""

from __future__ import annotations

import ast
import html
import re
from functools import cache
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from onvif_bridge.models import Status
from tests.web.conftest import World
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
        assert messages.translate_message(
            "camera 'Gate': SETUP of the backchannel answered RTSP 461") == \
            "«Gate» камерасы сөйлесу сеансынан бас тартты (RTSP 461)"
        assert messages.translate_message("camera ended the session (RTSP 454)") == \
            "камера сеансты аяқтады"
        i18n.activate(catalogues["en"], "en")  # English keeps the original wording (API clients)
        assert messages.translate_message("missing or invalid CSRF token") == \
            "missing or invalid CSRF token"
    finally:
        i18n.activate(catalogues["en"], "en")


# camera interrogation and discovery messages (onvif_bridge) and what ru/kk make of them: the
# camera's label and the technical detail in parentheses pass through unchanged
_LABEL = "'Gate' (127.0.0.1:8080)"
_SKEW = "set its clock (or NTP) before adopting it"
_CAMERA_MESSAGES = (
    (f"camera {_LABEL}: ok", f"камера {_LABEL}: в порядке", f"камера {_LABEL}: жарайды"),
    ("camera 127.0.0.1:8080: wrong password (HTTP 401)",
     "камера 127.0.0.1:8080: неверное имя пользователя или пароль (HTTP 401)",
     "камера 127.0.0.1:8080: пайдаланушы аты немесе құпиясөз қате (HTTP 401)"),
    (f"camera {_LABEL}: refused a request (ter:ActionNotSupported: no)",
     f"камера {_LABEL}: отклонила запрос (ter:ActionNotSupported: no)",
     f"камера {_LABEL}: сұрауды қабылдамады (ter:ActionNotSupported: no)"),
    (f"camera {_LABEL}: no ONVIF media service (only Media2, which is not supported yet); "
     "cannot stream",
     f"камера {_LABEL}: нет медиасервиса ONVIF (только Media2, он пока не поддерживается); "
     "видео получить нельзя",
     f"камера {_LABEL}: ONVIF медиа қызметі жоқ (тек Media2, ол әзірге қолдау көрсетілмейді); "
     "бейне алу мүмкін емес"),
    (f"camera {_LABEL}: no ONVIF media service (none); cannot stream",
     f"камера {_LABEL}: нет медиасервиса ONVIF; видео получить нельзя",
     f"камера {_LABEL}: ONVIF медиа қызметі жоқ; бейне алу мүмкін емес"),
    (f"camera {_LABEL}: no media profile with an RTSP stream",
     f"камера {_LABEL}: нет медиапрофиля с потоком RTSP",
     f"камера {_LABEL}: RTSP ағыны бар медиа профиль жоқ"),
    (f"camera {_LABEL}: clock is 3600 s ahead of the server's; {_SKEW}",
     f"камера {_LABEL}: её часы спешат на 3600 с относительно сервера; настройте часы (или NTP) "
     "перед добавлением",
     f"камера {_LABEL}: оның сағаты серверден 3600 с алда; қоспас бұрын сағатын (немесе NTP) "
     "баптаңыз"),
    (f"camera {_LABEL}: clock is 90 s behind the server's; {_SKEW}; camera 'Gate': x (HTTP 401)",
     f"камера {_LABEL}: её часы отстают на 90 с от сервера; настройте часы (или NTP) перед "
     "добавлением; camera 'Gate': x (HTTP 401)",
     f"камера {_LABEL}: оның сағаты серверден 90 с артта; қоспас бұрын сағатын (немесе NTP) "
     "баптаңыз; camera 'Gate': x (HTTP 401)"),
    ("no MAC address: ter:NotSupported", "MAC-адрес неизвестен: ter:NotSupported",
     "MAC мекенжайы белгісіз: ter:NotSupported"),
    ("no hostname: bad XML", "имя хоста неизвестно: bad XML", "хост аты белгісіз: bad XML"),
    ("relay outputs not listed: HTTP 500", "список релейных выходов не получен: HTTP 500",
     "реле шығыстарының тізімі алынбады: HTTP 500"),
    ("no stream URI: ter:InvalidArgVal", "нет адреса потока: ter:InvalidArgVal",
     "ағын адресі жоқ: ter:InvalidArgVal"),
    ("device 10.0.0.5:3702: its discovery reply could not be read (not XML)",
     "устройство 10.0.0.5:3702: его ответ на поиск не удалось прочитать (not XML)",
     "құрылғы 10.0.0.5:3702: оның іздеуге жауабын оқу мүмкін болмады (not XML)"),
    ("device 10.0.0.5:3702: no HTTP device address in its ProbeMatch",
     "устройство 10.0.0.5:3702: в его ответе на поиск нет HTTP-адреса устройства",
     "құрылғы 10.0.0.5:3702: оның іздеуге жауабында құрылғының HTTP адресі жоқ"),
    ("setting the clock failed: camera x: HTTP 500", "не удалось установить часы: camera x: HTTP 500",
     "сағатты орнату сәтсіз аяқталды: camera x: HTTP 500"),
)


def test_camera_and_discovery_messages_are_translated() -> None:
    catalogues = load_catalogues()
    try:
        for english, russian, kazakh in _CAMERA_MESSAGES:
            i18n.activate(catalogues["ru"], "ru")
            assert messages.translate_message(english) == russian, english
            i18n.activate(catalogues["kk"], "kk")
            assert messages.translate_message(english) == kazakh, english
            i18n.activate(catalogues["en"], "en")
            assert messages.translate_message(english) == english
    finally:
        i18n.activate(catalogues["en"], "en")


def test_real_interrogation_and_discovery_reports_are_translated() -> None:
    """Messages made by the real code: an interrogation of a closed loopback port, an unreadable
    discovery reply, a clock-skew report; the discovery API's view of a report (message,
    warnings, profile errors) in Russian."""
    import asyncio
    import socket

    from onvif_bridge.client import _skew_message, interrogate
    from onvif_bridge.models import DiscoveredDevice
    from onvif_bridge.scan import report_dict, unparsed_report
    from web.views_discovery import _translated

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    report = asyncio.run(interrogate(f"127.0.0.1:{port}", "admin", "secret", timeout_s=3,
                                     name="Gate"))
    assert report.status == Status.UNREACHABLE
    device = DiscoveredDevice(endpoint="", xaddrs=(), types=(), scopes=(),
                              sender="127.0.0.1:3702", message="Unparsed", error="not XML")
    catalogues = load_catalogues()
    i18n.activate(catalogues["ru"], "ru")
    try:
        shown = _translated({**report_dict(report), "warnings": ["no hostname: ter:Fault"]})
        assert shown["message"].startswith(
            f"камера 'Gate' (127.0.0.1:{port}): не удаётся подключиться к "
            f"http://127.0.0.1:{port}/onvif/device_service ("), shown["message"]
        assert shown["warnings"] == ["имя хоста неизвестно: ter:Fault"]
        assert messages.translate_message(unparsed_report(device).message) == \
            "устройство 127.0.0.1:3702: его ответ на поиск не удалось прочитать (not XML)"
        assert messages.translate_message(_skew_message("'Gate' (127.0.0.1:80)", -120_000_000)) \
            == "камера 'Gate' (127.0.0.1:80): её часы отстают на 120 с от сервера; настройте " \
               "часы (или NTP) перед добавлением"
    finally:
        i18n.activate(catalogues["en"], "en")


def test_every_pattern_template_is_a_marked_message() -> None:
    """Each template a pattern turns into is in the catalogue, and its placeholders are groups of
    its pattern (so the % formatting cannot fail)."""
    wanted = wanted_messages()
    for pattern, template in messages.PATTERNS:
        assert template in wanted, template
        assert set(re.findall(r"%\((\w+)\)s", template)) <= set(pattern.groupindex), template


# Latin words a translated page may show: what the person typed, the schedule's day syntax (the
# parser reads mon..sun), names of things and units
_LATIN_OK = {"mon", "fri", "sun", "sat", "HLS", "MSE", "RTSP", "UTC", "MAC", "ONVIF", "CIDR"}


def _english_words(text: str, sent: str = "") -> list[str]:
    typed = set(re.findall(r"[A-Za-z]+", sent))
    return [w for w in re.findall(r"[A-Za-z]{2,}", html.unescape(text))
            if w not in _LATIN_OK and w not in typed]


@pytest.mark.engines("sqlite")  # translations only: no query differs by engine
async def test_the_server_speaks_the_pages_language(world: World) -> None:
    """One signed-in world (its setup is the cost) for what the server puts on pages for scripts
    and forms: settings-form errors, discovery status labels, playback error labels."""
    await _settings_form_errors_are_translated(world)
    await _every_discovery_status_has_a_label(world)
    await _playback_errors_are_labelled(world)


async def _settings_form_errors_are_translated(world: World) -> None:
    """The camera page's recording-settings form (recording, schedule, streams, retention) and the
    event-settings form, refused in Russian and Kazakh: the error names the field by its label
    and says what is wrong without English words; in English it keeps the core's wording."""
    csrf = await world.login("admin1")
    url = f"/cameras/{world.camera_a}/recording-settings"
    bad = [{"event_pre_s": "9000"}, {"event_post_s": "soon"},
           {"schedule": "someday 07:00-19:00"}, {"schedule": "mon-fri 07:00-25:00"},
           {"schedule": "weekdays"}, {"main.record": "maybe"},
           {"retention.continuous_days": "-1"}, {"retention.event_days": "99999"},
           {"retention.max_bytes": "0"}]
    seen: dict[str, set[str]] = {}
    for lang in ("ru", "kk"):
        for form in bad:
            resp = await world.client.post(url, data={"csrf_token": csrf, **form},
                                           headers={"Accept-Language": lang},
                                           allow_redirects=False)
            assert resp.status == 400, form
            page = await resp.text()
            found = re.search(r'<p class="error" role="alert">(.*?)</p>', page, re.S)
            assert found, (lang, form)
            error = html.unescape(found[1])
            assert re.search("[а-яА-ЯәіңғүұқөһӘІҢҒҮҰҚӨҺ]", error), (lang, form, error)
            assert not _english_words(error, " ".join(form.values())), (lang, form, error)
            seen.setdefault(lang, set()).add(error)
        assert len(seen[lang]) == len(bad)  # each error says its own thing
    assert "основной поток" in " ".join(seen["ru"])  # streams.main.record: the stream by name
    assert any("3600" in e and "9000" in e for e in seen["kk"])
    resp = await world.client.post(url, data={"csrf_token": csrf, "event_pre_s": "9000"},
                                   headers={"Accept-Language": "en"}, allow_redirects=False)
    assert "event_pre_s: must be between 0 and 3600 seconds, got 9000" in await resp.text()
    # the event-settings form: a refused post is an error page in the person's language
    for lang in ("ru", "kk"):
        resp = await world.client.post(f"/cameras/{world.camera_a}/events/settings",
                                       data={"csrf_token": csrf, "kept": "sneeze"},
                                       headers={"Accept-Language": lang}, allow_redirects=False)
        assert resp.status == 400
        page = html.unescape(await resp.text())
        assert "sneeze" in page and "unknown event type" not in page, lang


async def _every_discovery_status_has_a_label(world: World) -> None:
    """discovery.js shows a device's status through the page's data-status-<code> labels: every
    status a scan can report (Status, and "pending" before a device is examined) has one, in
    Russian and Kazakh not the English wording, and the script shows no code itself."""
    script = (ROOT / "web" / "static" / "js" / "discovery.js").read_text()
    assert 'getAttribute("data-status-" + code)' in script
    assert "textContent = d.status" not in script
    await world.login("admin1")
    labels: dict[str, dict[str, str]] = {}
    for lang in ("en", "ru", "kk"):
        resp = await world.client.get("/discovery", headers={"Accept-Language": lang})
        assert resp.status == 200
        page = await resp.text()
        labels[lang] = {code: html.unescape(text) for code, text in
                        re.findall(r'data-status-([a-z_]+)="([^"]*)"', page)}
    codes = {str(s) for s in Status} | {"pending"}
    for lang in ("ru", "kk"):
        assert codes <= set(labels[lang]), (lang, codes - set(labels[lang]))
        for code in codes:
            assert labels[lang][code] and labels[lang][code] != labels["en"][code], (lang, code)
            assert not _english_words(labels[lang][code]), (lang, code, labels[lang][code])


def test_scripts_show_no_english_literals() -> None:
    """No script puts an English literal where people read it (textContent, title, alert…):
    words come from the page's data-* labels, rendered with _() in the person's language."""
    shown = re.compile(
        r"(?:textContent|innerText|title|placeholder|ariaLabel)\s*=\s*[\"'`][^\"'`$]*[A-Za-z]{2}"
        r"|(?:alert|confirm|prompt)\(\s*[\"'`]"
        r"|setAttribute\(\s*[\"'](?:title|aria-label|placeholder)[\"']\s*,\s*[\"'`][^\"'`$]*[A-Za-z]{2}")
    found = [f"{path.name}:{n}: {line.strip()}"
             for path in sorted((ROOT / "web" / "static" / "js").glob("*.js"))
             for n, line in enumerate(path.read_text().splitlines(), 1) if shown.search(line)]
    assert not found, found
    playback = (ROOT / "web" / "static" / "js" / "playback.js").read_text()
    assert "textContent = data.details" not in playback  # hls.js codes are not words


async def _playback_errors_are_labelled(world: World) -> None:
    """The playback page gives playback.js its error words in the person's language."""
    await world.login("admin1")
    names = ("unsupported", "network-error", "media-error", "playback-error")
    texts: dict[str, list[str]] = {}
    for lang in ("en", "ru", "kk"):
        resp = await world.client.get(f"/cameras/{world.camera_a}/playback",
                                      headers={"Accept-Language": lang})
        assert resp.status == 200
        page = await resp.text()
        texts[lang] = [html.unescape(re.search(rf'data-label-{n}="([^"]*)"', page)[1])
                       for n in names]
    for lang in ("ru", "kk"):
        for en, text in zip(texts["en"], texts[lang], strict=True):
            assert text and text != en and not _english_words(text), (lang, text)


# --- every refusal discovery and adoption compose reaches ru and kk people in their language ---

_REFUSAL_CALLS = {"OnboardingError", "bad_request", "DiscoveryTargetError", "ScanJobNotFound",
                  "TooManyScans", "HTTPNotFound", "HTTPServiceUnavailable", "HTTPTooManyRequests",
                  "HTTPBadRequest", "json_error"}
_REFUSAL_FILES = ("onvif_bridge/adopt.py", "onvif_bridge/scan.py", "onvif_bridge/scan_jobs.py",
                  "web/views_discovery.py", "onvif_bridge/discovery.py",
                  "onvif_bridge/configure.py")
# what each f-string placeholder of those messages stands for, as the code fills it in (a new
# placeholder fails the test below until it gets a sample here)
_SAMPLES = {
    "report.message": "camera 'Gate' (127.0.0.1:8080): ok", "report.address": "127.0.0.1:8080",
    "cam.name!r": "'Gate'", "camera.name!r": "\"Gate's\"", "onvif_url!r": "'gate.local/x y'",
    "redact_url(rtsp_url)!r": "'rtsp://***@10.0.0.5/s'", "site_id": "7", "camera_id": "7",
    "exc": "UNIQUE constraint failed: camera.mac", "MAX_TIMEOUT_S:g": "30", "key": "fps",
    "key!r": "'reboot'", "spec!r": "'10.0.0.0/33'", "spec": "10.0.0.0/8", "port": "70000",
    "text!r": "'http'", "network.num_addresses": "16777216", "MAX_RANGE_ADDRESSES": "65536",
    "type(exc).__name__": "OSError", "MAX_GOP_S:g": "2", "self.gop_s:g": "5", "name": "width",
    "request.stream": "sub",
}
# Latin a translation may keep: protocol and program names, the address syntax, JSON literals and
# stream codes (the API's own words), and what the message quotes (the person's input, field codes)
_KEPT = {"ONVIF", "RTSP", "URL", "CIDR", "HTTP", "http", "https", "rtsp", "NTP", "IPv", "ffmpeg",
         "JSON", "true", "false", "main", "sub"}


def _sample(node: ast.expr) -> tuple[str, str] | None:
    """The message a string or f-string node makes, with each placeholder's sample; and the
    samples (what the message passes through as it is)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value, ""
    if not isinstance(node, ast.JoinedStr):
        return None
    out, filled = [], []
    for part in node.values:
        if isinstance(part, ast.Constant):
            out.append(str(part.value))
            continue
        assert isinstance(part, ast.FormattedValue)
        key = ast.unparse(part.value)
        if part.conversion == ord("r"):
            key += "!r"
        if part.format_spec is not None:
            key += ":" + ast.unparse(part.format_spec)[2:-1]
        assert key in _SAMPLES, f"add a sample for the placeholder {{{key}}} to _SAMPLES"
        out.append(_SAMPLES[key])
        filled.append(_SAMPLES[key])
    return "".join(out), " ".join(filled)


def _composed_refusals() -> list[tuple[str, str, str]]:
    """(where, message, placeholders' samples) for every message the discovery and adoption code
    composes for a person: the first argument of a refusal (``OnboardingError(…)``,
    ``bad_request(…)``, ``HTTP…(text=…)`` …) and a scan job's ``error``, as string or f-string;
    messages passed through from elsewhere (``str(exc)``) are those files' own."""
    found = []
    for name in _REFUSAL_FILES:
        tree = ast.parse((ROOT / name).read_text())
        for node in ast.walk(tree):
            texts: list[ast.expr] = []
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called in _REFUSAL_CALLS:
                    position = 1 if called == "json_error" else 0
                    texts += node.args[position:position + 1]
                    texts += [k.value for k in node.keywords if k.arg == "text"]
            elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple) \
                    and isinstance(node.value, ast.Tuple):
                texts += [value for target, value in zip(node.targets[0].elts, node.value.elts,
                                                         strict=False)
                          if isinstance(target, ast.Attribute) and target.attr == "error"]
            for text in texts:
                sample = _sample(text)
                if sample is not None:
                    found.append((f"{name}:{node.lineno}", *sample))
    return found


def test_every_discovery_and_adoption_refusal_is_translated() -> None:
    """Every message onvif_bridge/adopt.py, scan.py, scan_jobs.py, discovery.py, configure.py and
    web/views_discovery.py compose for a person (API errors the discovery and camera pages show,
    a scan's error) comes out in Russian and Kazakh: changed, in Cyrillic, with no English word
    left but names (ONVIF, RTSP…), the address syntax and what the message quotes."""
    refusals = _composed_refusals()
    assert len(refusals) > 50, refusals  # the collector sees them
    catalogues = load_catalogues()
    untranslated = []
    try:
        for lang in ("ru", "kk"):
            i18n.activate(catalogues[lang], lang)
            for where, english, filled in refusals:
                shown = messages.translate_message(english)
                quoted = re.findall(r"'[^']*'|\"[^\"]*\"|\S+[._]\S+", english)
                kept = _KEPT | set(re.findall(r"[A-Za-z]+", " ".join([*quoted, filled])))
                left = [w for w in re.findall(r"[A-Za-z]{2,}", shown) if w not in kept]
                if shown == english or not re.search("[а-яәіңғүұқөһ]", shown) or left:
                    untranslated.append(f"{lang} {where}: {english!r} -> {shown!r} {left}")
        i18n.activate(catalogues["en"], "en")
        assert all(messages.translate_message(e) == e for _, e, _ in refusals)
    finally:
        i18n.activate(catalogues["en"], "en")
    assert not untranslated, "\n".join(untranslated)
