"""Compare every catalog with the English source: `python -m bot.i18n.check [locales dir]`.

Prints, per catalog, each message that needs a translator's attention: missing or extra
keys, empty or fuzzy entries, a python-format flag, placeholders, HTML tags or /commands
unlike English's, a `%` that formatting would trip over, and, in right-to-left catalogs, a
placeholder or /command outside a directional isolate or a line that would not read right to
left (README, Languages). Exits 1 when anything is listed, so it serves both at merge time
(what to translate) and in the tests.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from babel.messages.pofile import read_po

from bot.i18n import DEFAULT_LANG, DOMAIN, LOCALES_DIR

RTL_LANGS = frozenset({"ar", "fa"})
# First-strong (FSI), left-to-right (LRI) and right-to-left (RLI) isolates, closed by PDI.
ISOLATE_OPEN = frozenset("\u2068\u2066\u2067")
ISOLATE_CLOSE = "\u2069"
RLM = "\u200f"

PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
# Telegram's HTML tags only: "<prompt>" in a plain-text command description is not markup.
TAG = re.compile(r"</?(?:b|i|u|s|code|pre|a|tg-spoiler|blockquote)\b[^>]*>")
# A /command Telegram makes clickable: not glued to a word before it (Arabic "و/deny" is not).
COMMAND = re.compile(r"(?<![<\w/])/[a-z][a-z_]*")


@dataclass(frozen=True)
class Message:
    text: str
    python_format: bool
    fuzzy: bool


# Babel derives python-format from the msgid (a key here, never with a %), so the flag is read
# from the file itself.
FLAGGED = re.compile(r'^#,(?P<flags>.*)\n(?:#.*\n)*msgid "(?P<key>[^"]+)"', re.MULTILINE)


def load(po_file: Path) -> dict[str, Message]:
    text = po_file.read_text(encoding="utf-8")
    flagged = {
        m["key"]
        for m in FLAGGED.finditer(text)
        if "python-format" in (flag.strip() for flag in m["flags"].split(","))
    }
    with po_file.open("rb") as fh:
        catalog = read_po(fh)
    return {
        str(m.id): Message(str(m.string or ""), str(m.id) in flagged, m.fuzzy)
        for m in catalog
        if m.id
    }


def tags(text: str) -> list[str]:
    """The tag sequence, attributes dropped (a link's address may be localized)."""
    return [
        re.sub(r"\s.*", ">", tag) if not tag.startswith("</") else tag for tag in TAG.findall(text)
    ]


def outside_isolates(text: str) -> list[str]:
    """Placeholders and commands of `text` not inside a directional isolate."""
    depth, bad, position = 0, [], 0
    spans = sorted(
        [(m.start(), m.group()) for m in PLACEHOLDER.finditer(text)]
        + [(m.start(), m.group()) for m in COMMAND.finditer(text)]
    )
    for start, token in spans:
        for char in text[position:start]:
            depth += char in ISOLATE_OPEN
            depth -= char == ISOLATE_CLOSE
        position = start
        if depth <= 0:
            bad.append(token)
    return bad


def isolates_balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += char in ISOLATE_OPEN
        depth -= char == ISOLATE_CLOSE
        if depth < 0:
            return False
    return depth == 0


def first_strong(line: str) -> str | None:
    """The bidi class (L, R or AL) of the line's first strong character outside isolates and
    tags: what sets a line's direction in Telegram's clients."""
    depth = 0
    for char in TAG.sub("", line):
        if char in ISOLATE_OPEN or char == ISOLATE_CLOSE:
            depth += 1 if char in ISOLATE_OPEN else -1
        elif depth == 0 and char == RLM:
            return "R"
        elif depth == 0 and unicodedata.bidirectional(char) in ("L", "R", "AL"):
            return unicodedata.bidirectional(char)
    return None


def rtl_problems(text: str) -> Iterator[str]:
    """A right-to-left catalog's rules: placeholders and /commands sit in isolates, so the
    text around them keeps its order whatever they hold, and every line reads right to left."""
    if not isolates_balanced(text):
        yield "unbalanced directional isolates"
    for token in outside_isolates(text):
        yield f"{token} outside a directional isolate"
    for line in text.split("\n"):
        if line.strip() and first_strong(line) != "AL" and first_strong(line) != "R":
            yield f"line {line[:20]!r}… does not start right to left (prefix U+200F)"


def message_problems(lang: str, source: Message, target: Message) -> Iterator[str]:
    if not target.text:
        yield "empty"
        return
    if target.fuzzy:
        yield "fuzzy"
    if target.python_format != source.python_format:
        yield "python-format flag differs from en"
    want, got = Counter(PLACEHOLDER.findall(source.text)), Counter(PLACEHOLDER.findall(target.text))
    if want.keys() != got.keys():
        yield f"placeholders {sorted(got)} instead of {sorted(want)}"
    if want or target.python_format:
        try:
            target.text % dict.fromkeys(got, "x")
        except (ValueError, TypeError, KeyError) as exc:
            yield f"does not format ({exc}); write a literal % as %%"
    commands = sorted(COMMAND.findall(source.text))
    if sorted(COMMAND.findall(target.text)) != commands:
        yield f"commands {sorted(COMMAND.findall(target.text))} instead of {commands}"
    if tags(target.text) != tags(source.text):
        yield f"HTML tags {tags(target.text)} instead of {tags(source.text)}"
    if lang in RTL_LANGS:
        yield from rtl_problems(target.text)


def catalog_problems(
    lang: str, source: dict[str, Message], target: dict[str, Message]
) -> list[str]:
    """One line per problem, `key: what`, in the English catalog's order."""
    lines = [f"{key}: missing" for key in source if key not in target]
    lines += [f"{key}: not in {DEFAULT_LANG}" for key in target if key not in source]
    for key, message in source.items():
        if key in target:
            lines += [
                f"{key}: {problem}" for problem in message_problems(lang, message, target[key])
            ]
    return lines


def catalogs(locales_dir: Path) -> dict[str, Path]:
    return {p.parent.parent.name: p for p in sorted(locales_dir.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))}


def report(locales_dir: Path) -> dict[str, list[str]]:
    """Every catalog's problems against the English one."""
    files = catalogs(locales_dir)
    source = load(files[DEFAULT_LANG])
    return {
        lang: catalog_problems(lang, source, load(path))
        for lang, path in files.items()
        if lang != DEFAULT_LANG
    }


def main(argv: list[str]) -> int:
    locales_dir = Path(argv[0]) if argv else LOCALES_DIR
    problems = report(locales_dir)
    for lang, lines in problems.items():
        print(f"{lang}: {len(lines) or 'complete'}" + (" to fix" if lines else ""))
        for line in lines:
            print(f"  {line}")
    return 1 if any(problems.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
