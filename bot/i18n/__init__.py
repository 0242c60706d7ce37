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
        """The catalog for a Telegram `language_code` (an IETF tag: 'ru-RU' -> ru, 'pt-br' ->
        pt_BR): the regional catalog if there is one, else the language's own, else its only
        regional catalog ('pt' -> pt_BR); English for a language without a catalog."""
        if code:
            base, _, region = code.replace("_", "-").partition("-")
            base = base.lower()
            candidates = [f"{base}_{region.split('-')[0].upper()}"] if region else []
            candidates.append(base)
            candidates += [lang for lang in self.languages if lang.partition("_")[0] == base]
            for candidate in candidates:
                if candidate in self.catalogs:
                    return candidate
        return DEFAULT_LANG

    def command_languages(self) -> dict[str, str]:
        """Each catalog's two-letter ISO 639-1 code (the only kind setMyCommands accepts) and
        the catalog users with that code get; English is the default list, without a code."""
        codes = {lang.partition("_")[0] for lang in self.catalogs} - {DEFAULT_LANG}
        return {code: self.lang_for(code) for code in sorted(codes)}

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
