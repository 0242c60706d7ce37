"""Every catalog against the English one: the same keys, placeholders, markup and commands, and
right-to-left catalogs that keep their direction (bot.i18n.check); which catalog a Telegram
language code gets; the check tool as merge time runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.i18n import DEFAULT_LANG, LOCALES_DIR, Translator
from bot.i18n.check import RTL_LANGS, load, report
from tests.fakes.telegram_errors import ApiError
from tests.fakes.telegram_text import parse_html

# Telegram's most used languages next to English and Russian (issue 20).
LANGUAGES = {"en", "ru", "es", "pt_BR", "id", "tr", "uk", "fa", "ar", "de", "hi", "uz"}
SOURCE = load(LOCALES_DIR / DEFAULT_LANG / "LC_MESSAGES" / "messages.po")


def test_the_languages_are_there() -> None:
    assert set(Translator().languages) >= LANGUAGES
    assert RTL_LANGS <= LANGUAGES


@pytest.mark.parametrize("lang", sorted(LANGUAGES - {DEFAULT_LANG}))
def test_catalog_matches_english(lang: str) -> None:
    """Every key, no extra one, no empty or fuzzy entry; the same placeholders, HTML tags,
    /commands and python-format flags; in ar/fa every placeholder and command isolated."""
    assert report(LOCALES_DIR)[lang] == []


@pytest.mark.parametrize("lang", sorted(LANGUAGES - {DEFAULT_LANG}))
def test_markup_is_what_telegram_accepts(lang: str) -> None:
    """Where the English text is valid Telegram HTML, the translation is too."""
    catalog = load(LOCALES_DIR / lang / "LC_MESSAGES" / "messages.po")
    refused = []
    for key, message in SOURCE.items():
        try:
            parse_html(message.text)
        except ApiError:
            continue  # plain text (a command description with "<prompt>")
        try:
            parse_html(catalog[key].text)
        except ApiError as exc:
            refused.append(f"{key}: {exc}")
    assert refused == []


@pytest.mark.parametrize(
    ("code", "lang"),
    [
        ("pt-br", "pt_BR"),
        ("pt-BR", "pt_BR"),
        ("pt", "pt_BR"),
        ("pt-PT", "pt_BR"),  # the only Portuguese there is beats English
        ("uk", "uk"),
        ("ar", "ar"),
        ("fa-IR", "fa"),
        ("es-419", "es"),
        ("de-AT", "de"),
        ("uz", "uz"),
        ("ru-RU", "ru"),
        ("en-GB", "en"),
        ("zz", "en"),
        ("", "en"),
        (None, "en"),
    ],
)
def test_telegram_language_code_picks_the_catalog(code: str | None, lang: str) -> None:
    assert Translator().lang_for(code) == lang


def test_command_menus_use_two_letter_codes() -> None:
    languages = Translator().command_languages()
    assert languages["pt"] == "pt_BR"
    assert set(languages.values()) == LANGUAGES - {DEFAULT_LANG}
    assert all(len(code) == 2 and code.isalpha() and code.islower() for code in languages)


def run_check(locales: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.i18n.check", str(locales)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_check_tool_passes_the_shipped_catalogs() -> None:
    done = run_check(LOCALES_DIR)
    assert done.returncode == 0, done.stdout
    assert "ar: complete" in done.stdout.splitlines()


def test_check_tool_lists_what_needs_translating(tmp_path: Path) -> None:
    shutil.copytree(LOCALES_DIR / "en", tmp_path / "en")
    de = (LOCALES_DIR / "de" / "LC_MESSAGES" / "messages.po").read_text()
    de = de.replace('msgid "edit.queued"\n', 'msgid "edit.gone"\n')  # a stale key, one missing
    de = de.replace("%(length)s Zeichen", "%(lenght)s Zeichen")
    de = de.replace("<b>Deine letzten Bearbeitungen</b>", "<b>Deine letzten Bearbeitungen")
    de = de.replace("(80%% oder mehr)", "(80% oder mehr)")
    de = de.replace("Siehe /help.", "Siehe Hilfe.")
    de = de.replace('msgid "history.busy"', '#, fuzzy\nmsgid "history.busy"')
    de = de.replace('#, python-format\nmsgid "credits.balance"', 'msgid "credits.balance"')
    (tmp_path / "de" / "LC_MESSAGES").mkdir(parents=True)
    (tmp_path / "de" / "LC_MESSAGES" / "messages.po").write_text(de)
    ar = (LOCALES_DIR / "ar" / "LC_MESSAGES" / "messages.po").read_text()
    ar = ar.replace("\u2068%(model)s\u2069", "%(model)s")  # left bare in one message
    (tmp_path / "ar" / "LC_MESSAGES").mkdir(parents=True)
    (tmp_path / "ar" / "LC_MESSAGES" / "messages.po").write_text(ar)

    done = run_check(tmp_path)

    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert "ar: 4 to fix" in lines  # the model is named in four messages
    assert "  error.input.model_unavailable: %(model)s outside a directional isolate" in lines
    assert "de: 10 to fix" in lines  # "lenght" and "80%" in two messages each
    for expected in (
        "  edit.queued: missing",
        "  edit.gone: not in en",
        "  error.input.prompt_too_long: placeholders ['lenght', 'limit'] instead of"
        " ['length', 'limit']",
        "  history.title: HTML tags ['<b>'] instead of ['<b>', '</b>']",
        "  error.unknown_command: commands [] instead of ['/help']",
        "  history.busy: fuzzy",
        "  credits.balance: python-format flag differs from en",
    ):
        assert expected in lines
    assert any(line.startswith("  limits.alert.near.daily: does not format") for line in lines)
