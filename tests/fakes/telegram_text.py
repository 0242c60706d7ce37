"""Texts and captions as the Bot API checks them: HTML markup, entities and lengths.

The bot formats with ``parse_mode=HTML`` only, so that is the one parse mode the fake parses,
with the real server's error texts (``can't parse entities: ...``). Other parse modes, and the
few HTML features whose entities the fake does not build, are `NotModelled`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Final

from tests.fakes.telegram_errors import ApiError, Json, NotModelled, bad

MAX_TEXT: Final = 4096
MAX_CAPTION: Final = 1024


def u16(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


class _Text:
    """The plain text being built, with its running UTF-16 length."""

    __slots__ = ("n16", "parts")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.n16 = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.n16 += u16(text)

    def text(self) -> str:
        return "".join(self.parts)


def _entities_error(message: str) -> ApiError:
    return bad(f"can't parse entities: {message}")


_HTML_ENTITY_RE: Final = re.compile(r"&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|(lt|gt|amp|quot));")
_HTML_NAMED: Final = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_TAG_NAME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_ATTR_NAME_RE: Final = re.compile(r"[A-Za-z0-9_-]+")
_ATTR_VALUE_RE: Final = re.compile(r"[^\s>]+")
_HTML_TAGS: Final = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}
# A real tag whose entity needs more than a type (the custom emoji id).
_UNMODELLED_TAGS: Final = frozenset({"tg-emoji"})


def _html_entity_at(src: str, index: int) -> tuple[str, int] | None:
    match = _HTML_ENTITY_RE.match(src, index)
    if match is None:
        return None
    if match.group(3):
        return _HTML_NAMED[match.group(3)], match.end()
    code = int(match.group(1)) if match.group(1) else int(match.group(2), 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), match.end()


def _unescape_html(value: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(value):
        entity = _html_entity_at(value, index) if value[index] == "&" else None
        if entity is None:
            out.append(value[index])
            index += 1
        else:
            out.append(entity[0])
            index = entity[1]
    return "".join(out)


def parse_html(src: str) -> tuple[str, list[Json]]:
    out = _Text()
    stack: list[tuple[str, int, dict[str, str]]] = []
    entities: list[Json] = []
    index, size = 0, len(src)
    while index < size:
        char = src[index]
        if char == "&":
            entity = _html_entity_at(src, index)
            if entity is None:
                out.add("&")
                index += 1
            else:
                out.add(entity[0])
                index = entity[1]
            continue
        if char != "<":
            out.add(char)
            index += 1
            continue
        begin = _byte_offset(src, index)
        if src.startswith("</", index):
            close = src.find(">", index)
            if close < 0:
                raise _entities_error(f"Unclosed end tag at byte offset {begin}")
            name = src[index + 2 : close].strip().lower()
            if not stack:
                raise _entities_error(f"Unexpected end tag at byte offset {begin}")
            tag, start, attrs = stack.pop()
            if name != tag:
                raise _entities_error(
                    f'Unmatched end tag at byte offset {begin}, expected "</{tag}>", '
                    f'found "</{name}>"'
                )
            _close_html_tag(entities, tag, attrs, start, out.n16)
            index = close + 1
            continue
        name_match = _TAG_NAME_RE.match(src, index + 1)
        name = name_match.group(0).lower() if name_match else ""
        if name in _UNMODELLED_TAGS:
            raise NotModelled(f"the HTML tag <{name}>")
        if name_match is None or name not in _HTML_TAGS:
            raise _entities_error(f'Unsupported start tag "{name}" at byte offset {begin}')
        attrs, index = _parse_html_attributes(src, name_match.end(), name, begin)
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise _entities_error(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
        if (name == "code" and "class" in attrs) or (name == "blockquote" and attrs):
            raise NotModelled(f"attributes of the HTML tag <{name}>")
        stack.append((name, out.n16, attrs))
    if stack:
        raise _entities_error(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.text(), entities


def _parse_html_attributes(
    src: str, index: int, tag: str, begin: int
) -> tuple[dict[str, str], int]:
    """Parses the attributes of a start tag; returns them and the index after ``>``."""
    attrs: dict[str, str] = {}
    size = len(src)
    while True:
        while index < size and src[index].isspace():
            index += 1
        if index >= size:
            raise _entities_error(f"Unclosed start tag at byte offset {begin}")
        if src[index] == ">":
            return attrs, index + 1
        name_match = _ATTR_NAME_RE.match(src, index)
        if name_match is None:
            raise _entities_error(
                f'Empty attribute name in the tag "{tag}" at byte offset {_byte_offset(src, index)}'
            )
        name = name_match.group(0).lower()
        index = name_match.end()
        while index < size and src[index].isspace():
            index += 1
        value = ""
        if index < size and src[index] == "=":
            index += 1
            while index < size and src[index].isspace():
                index += 1
            if index >= size:
                raise _entities_error(f"Unclosed start tag at byte offset {begin}")
            if src[index] in "\"'":
                end = src.find(src[index], index + 1)
                if end < 0:
                    raise _entities_error(f"Unclosed start tag at byte offset {begin}")
                value = _unescape_html(src[index + 1 : end])
                index = end + 1
            else:
                value_match = _ATTR_VALUE_RE.match(src, index)
                if value_match is None:
                    raise _entities_error(f"Unclosed start tag at byte offset {begin}")
                value = _unescape_html(value_match.group(0))
                index = value_match.end()
        attrs[name] = value


def _close_html_tag(
    entities: list[Json], tag: str, attrs: dict[str, str], start: int, end: int
) -> None:
    length = end - start
    if length <= 0:
        return
    entity: Json = {"offset": start, "length": length, "type": _HTML_TAGS[tag]}
    if tag == "a":
        href = attrs.get("href", "")
        if not href:
            return  # Telegram drops links without a target, keeping the text
        entity["url"] = href
    entities.append(entity)


def _strip_formatted(text: str, entities: list[Json]) -> tuple[str, list[Json]]:
    """Trims surrounding whitespace like Telegram does, keeping entity offsets right."""
    stripped = text.strip()
    left = u16(text) - u16(text.lstrip())
    total = u16(stripped)
    result: list[Json] = []
    for entity in entities:
        start = max(0, int(entity["offset"]) - left)
        end = min(total, int(entity["offset"]) + int(entity["length"]) - left)
        if end > start:
            result.append({**entity, "offset": start, "length": end - start})
    result.sort(key=lambda e: (e["offset"], -e["length"]))
    return stripped, result


def format_text(text: str, parse_mode: Any) -> tuple[str, list[Json]]:
    """Applies ``parse_mode`` the way the real server does."""
    if parse_mode in (None, ""):
        parsed: tuple[str, list[Json]] = (text, [])
    elif not isinstance(parse_mode, str):
        raise bad("unsupported parse_mode")
    elif parse_mode.lower() == "html":
        parsed = parse_html(text)
    elif parse_mode.lower() in {"markdown", "markdownv2"}:
        raise NotModelled(f"parse_mode {parse_mode}")
    else:
        raise bad(f"unsupported parse_mode {parse_mode}")
    return _strip_formatted(*parsed)


def text_content(params: Json) -> Json:
    """``text`` and ``entities`` of a message from the request's ``text``/``parse_mode``."""
    text = params.get("text")
    if not isinstance(text, str):
        text = "" if text is None else json.dumps(text)
    formatted, entities = format_text(text, params.get("parse_mode"))
    if not formatted:
        raise bad("message text is empty")
    if u16(formatted) > MAX_TEXT:
        raise bad("message is too long")
    content: Json = {"text": formatted}
    if entities:
        content["entities"] = entities
    return content


def caption_content(item: Json) -> Json:
    """``caption`` and ``caption_entities`` of a request or an InputMedia item."""
    caption = item.get("caption")
    if caption is None or caption == "":
        return {}
    if not isinstance(caption, str):
        caption = json.dumps(caption)
    formatted, entities = format_text(caption, item.get("parse_mode"))
    if u16(formatted) > MAX_CAPTION:
        raise bad("message caption is too long")
    content: Json = {}
    if formatted:
        content["caption"] = formatted
    if entities:
        content["caption_entities"] = entities
    return content


_COMMAND_RE: Final = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,64}(?:@[A-Za-z][A-Za-z0-9_]{2,31})?")
_MENTION_RE: Final = re.compile(r"(?<![\w@/])@[A-Za-z][A-Za-z0-9_]{3,31}(?!\w)")
_URL_RE: Final = re.compile(r"\bhttps?://[^\s<>\"]+")


def detect_entities(text: str) -> list[Json]:
    """The entities Telegram detects in user texts: bot_command, mention and url."""
    found: list[tuple[int, int, str]] = []
    taken: list[range] = []
    for kind, pattern in (("bot_command", _COMMAND_RE), ("url", _URL_RE), ("mention", _MENTION_RE)):
        for match in pattern.finditer(text):
            start, end = match.start(), match.end()
            if kind == "url":
                while end > start and text[end - 1] in ".,;:!?)'":
                    end -= 1
            if any(start < r.stop and r.start < end for r in taken):
                continue
            taken.append(range(start, end))
            found.append((start, end, kind))
    found.sort()
    return [
        {"offset": u16(text[:start]), "length": u16(text[start:end]), "type": kind}
        for start, end, kind in found
    ]


def iter_entities(text: str, entities: Iterable[Json]) -> list[tuple[str, str]]:
    """``(type, covered text)`` pairs, decoding UTF-16 offsets (handy in assertions)."""
    encoded = text.encode("utf-16-le")
    return [
        (
            str(entity["type"]),
            encoded[2 * entity["offset"] : 2 * (entity["offset"] + entity["length"])].decode(
                "utf-16-le"
            ),
        )
        for entity in entities
    ]
