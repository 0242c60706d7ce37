"""Message catalogs (gettext .po files read with Babel); every user-facing text lives there.

Message ids are stable keys (`edit.queued`); each language's catalog holds the text with
python-format placeholders. `Translator.tr(lang, key, **params)` is the only way code turns
a key into text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po

log = logging.getLogger(__name__)

LOCALES_DIR = Path(__file__).with_name("locales")
DEFAULT_LANG = "en"
DOMAIN = "messages"


class Translator:
    """Looks up catalog texts by language, falling back to English."""

    def __init__(self, locales_dir: Path = LOCALES_DIR) -> None:
        self.catalogs: dict[str, dict[str, str]] = {}
        for po_file in sorted(locales_dir.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
            lang = po_file.parent.parent.name
            with po_file.open("rb") as fh:
                catalog = read_po(fh, locale=lang)
            self.catalogs[lang] = {
                str(message.id): str(message.string)
                for message in catalog
                if message.id and message.string and not message.fuzzy
            }
        if DEFAULT_LANG not in self.catalogs:
            raise RuntimeError(f"no {DEFAULT_LANG} catalog under {locales_dir}")

    @property
    def languages(self) -> list[str]:
        return sorted(self.catalogs)

    def lang_for(self, code: str | None) -> str:
        """The catalog language for a Telegram `language_code` (e.g. 'ru-RU' -> 'ru')."""
        if code:
            base = code.split("-")[0].split("_")[0].lower()
            if base in self.catalogs:
                return base
        return DEFAULT_LANG

    def tr(self, lang: str, key: str, **params: Any) -> str:
        text = self.catalogs.get(lang, {}).get(key) or self.catalogs[DEFAULT_LANG].get(key)
        if text is None:
            log.error("missing catalog text", extra={"key": key})
            text = key
        if params:
            try:
                return text % params
            except (KeyError, ValueError, TypeError):
                log.exception("bad catalog placeholders", extra={"key": key, "lang": lang})
                return text
        return text

    def keys(self, lang: str) -> Mapping[str, str]:
        return self.catalogs.get(lang, {})
