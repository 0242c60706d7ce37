"""Blocked words and phrases in prompts: case-insensitive, whole words, any script.

Phrases and prompts are compared in one normal form: Unicode NFKC (full-width letters,
ligatures and composed accents become ordinary ones), case-folded (so "STRASSE" matches
"straße") and with runs of white space collapsed. A phrase matches only as whole words: the
characters around it must not be letters, combining marks or digits of any script, so
"cat" blocks "Cat!" and "CAT food" but not "category", and "кот" does not block "котлета".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from storage.moderation import PHRASE_MAX

_SEPARATORS = re.compile(r"[,;\n]+")


def normalize(text: str) -> str:
    """The form phrases are stored and compared in."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _is_word_char(char: str) -> bool:
    return char == "_" or unicodedata.category(char)[0] in "LMN"


def _whole_word_at(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else ""
    after = text[end] if end < len(text) else ""
    return not (before and _is_word_char(before)) and not (after and _is_word_char(after))


def find_blocked(prompt: str, phrases: Iterable[str]) -> str | None:
    """The first blocked phrase the prompt contains as whole words, or None."""
    text = normalize(prompt)
    for phrase in phrases:
        needle = normalize(phrase)
        if not needle:
            continue
        start = text.find(needle)
        while start != -1:
            if _whole_word_at(text, start, start + len(needle)):
                return phrase
            start = text.find(needle, start + 1)
    return None


def parse_phrases(text: str) -> tuple[list[str], list[str]]:
    """Phrases typed after /block or /unblock (separated by commas, semicolons or lines),
    normalized; and those refused as too long."""
    kept: list[str] = []
    too_long: list[str] = []
    for part in _SEPARATORS.split(text):
        phrase = normalize(part)
        if not phrase:
            continue
        if len(phrase) > PHRASE_MAX:
            too_long.append(phrase)
        elif phrase not in kept:
            kept.append(phrase)
    return kept, too_long
