"""A fake Telegram Bot API server for the test suite.

The real python-telegram-bot client talks to it over HTTP on 127.0.0.1::

    async with FakeTelegram() as fake:
        app = (
            Application.builder()
            .token(fake.token)
            .base_url(fake.base_url)          # f"{fake.url}/bot"
            .base_file_url(fake.base_file_url)  # f"{fake.url}/file/bot"
            .request(fast_request())  # optional: skips reloading the CA bundle per Bot
            .get_updates_request(fast_request())
            .build()
        )
        fake.push_update(fake.photo_update(chat_id, user_id, jpeg_bytes, caption="/edit sky"))
        [call] = await fake.wait_for("sendPhoto")

Served routes:

* ``GET|POST /bot{token}/{method}`` - Bot API methods (method names are case-insensitive,
  like on the real server). A wrong token answers 401 ``Unauthorized``, a method the Bot API
  does not have answers 404 ``Not Found``.
* ``GET /file/bot{token}/{file_path}`` - the bytes of a registered file.

The fake keeps a small in-memory model: chats, the messages of every chat (existing or
deleted, incoming ones created by the update builders and outgoing ones sent by the bot),
files (id -> bytes, path), the update queue, the webhook, chat members and bot commands.
Parameters arrive like from the real client: ``application/x-www-form-urlencoded`` or
``multipart/form-data`` (non-string values JSON-encoded, uploads as file parts, InputMedia
referencing them with ``attach://<name>``) or an ``application/json`` body.

Realistic behaviours worth knowing:

* ``parse_mode`` ``HTML``, ``MarkdownV2`` and ``Markdown`` are really parsed into ``entities``;
  malformed markup answers ``400 Bad Request: can't parse entities: ...`` like Telegram does.
  Leading and trailing whitespace of texts and captions is trimmed.
* Texts are limited to 4096 and captions to 1024 characters (UTF-16 code units), inline
  ``callback_data`` to 1-64 bytes (``BUTTON_DATA_INVALID``).
* Photos must be decodable images (else ``IMAGE_PROCESS_FAILED``); the fake produces
  2-3 ``PhotoSize`` entries (real downscaled JPEG thumbnails, the uploaded bytes last).
* Only inline keyboards are echoed back as ``reply_markup`` (the real server does the same;
  reply keyboards are not part of the returned Message).
* Editing a message with the exact same content and markup answers
  ``400 Bad Request: message is not modified: ...``; editing the text or caption without
  ``reply_markup`` removes the inline keyboard, as on the real server.
* ``getUpdates`` answers ``409 Conflict`` while a webhook is set, and a newer ``getUpdates``
  terminates an older pending one with ``409 Conflict: terminated by other getUpdates request``.
* Files sent by HTTP URL are fetched by the fake (so a local fake provider can serve them);
  files sent by file_id reuse the registered bytes.
* Any other Bot API method is recorded and answers ``true``.

Updates reach the bot through :meth:`FakeTelegram.push_update` (getUpdates long polling) or
:meth:`FakeTelegram.post_webhook`. All methods must be called from the event loop that runs
the fake.

Some error texts for rare cases (media group sizes, oversized photos) are approximations.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import enum
import functools
import io
import itertools
import json
import mimetypes
import re
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self

from aiohttp import ClientError, ClientSession, ClientTimeout, web
from PIL import Image, UnidentifiedImageError
from telegram import Bot
from telegram.request import HTTPXRequest

__all__ = [
    "ApiCall",
    "FakeTelegram",
    "FileInfo",
    "canonical_method",
    "detect_entities",
    "fast_request",
    "iter_entities",
]

Json = dict[str, Any]

DEFAULT_TOKEN: Final = "123456:TEST-token-for-the-fake-telegram-api-0"

_MAX_TEXT: Final = 4096
_MAX_CAPTION: Final = 1024
_MAX_CALLBACK_ANSWER: Final = 200
_MAX_PHOTO_BYTES: Final = 10 * 1024 * 1024
_MAX_UPLOAD_BYTES: Final = 50 * 1024 * 1024
_MAX_DOWNLOAD_BYTES: Final = 20 * 1024 * 1024
_MAX_URL_PHOTO_BYTES: Final = 5 * 1024 * 1024
_MAX_URL_FILE_BYTES: Final = 20 * 1024 * 1024
_IMAGE_SUFFIXES: Final = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"})
_CHAT_MEMBER_STATUSES: Final = frozenset(
    {"creator", "administrator", "member", "restricted", "left", "kicked"}
)
_CHAT_ACTIONS: Final = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
# Update types the real server sends when no allowed_updates were ever given.
_NOT_DEFAULT_UPDATES: Final = frozenset(
    {"chat_member", "message_reaction", "message_reaction_count"}
)
_CAPTION_KEYS: Final = ("caption", "caption_entities", "show_caption_above_media")
_NOT_MODIFIED: Final = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
_QUERY_TOO_OLD: Final = (
    "Bad Request: query is too old and response timeout expired or query ID is invalid"
)

# Form fields whose value is always a string in the Bot API: never JSON-decode them, even
# when they look like a number ("42") or a literal ("true").
_STRING_FIELDS: Final = frozenset(
    {
        "action",
        "address",
        "business_connection_id",
        "callback_query_id",
        "caption",
        "currency",
        "custom_emoji_id",
        "custom_title",
        "description",
        "document",
        "emoji",
        "error_message",
        "explanation",
        "file_id",
        "first_name",
        "game_short_name",
        "inline_message_id",
        "inline_query_id",
        "invite_link",
        "ip_address",
        "language_code",
        "last_name",
        "message_effect_id",
        "name",
        "next_offset",
        "parse_mode",
        "payload",
        "phone_number",
        "photo",
        "pre_checkout_query_id",
        "provider_token",
        "query",
        "secret_token",
        "shipping_query_id",
        "short_description",
        "start_parameter",
        "sticker",
        "switch_pm_parameter",
        "switch_pm_text",
        "text",
        "title",
        "url",
        "vcard",
        "web_app_query_id",
    }
)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def fast_request(**kwargs: Any) -> HTTPXRequest:
    """A PTB ``HTTPXRequest`` that reuses one SSL context.

    Every default ``HTTPXRequest`` loads the CA bundle again (~75 ms; a Bot has two of them),
    which dominates short tests. Pass it as ``Bot(request=..., get_updates_request=...)`` or
    ``ApplicationBuilder().request(...).get_updates_request(...)``; ``kwargs`` go to
    ``HTTPXRequest`` (``httpx_kwargs`` are merged).
    """
    httpx_kwargs = {"verify": _ssl_context(), **kwargs.pop("httpx_kwargs", {})}
    return HTTPXRequest(httpx_kwargs=httpx_kwargs, **kwargs)


def _bot_api_methods() -> dict[str, str]:
    """Lower-case name -> canonical camelCase name of every Bot API method PTB knows."""
    names = {
        name
        for name in dir(Bot)
        if name[:1].islower()
        and any(char.isupper() for char in name)
        and callable(getattr(Bot, name))
    }
    names.update({"close", "logOut", "getMe", "getUpdates"})
    return {name.lower(): name for name in names}


_METHODS: Final = _bot_api_methods()


def canonical_method(name: str) -> str:
    """Canonical Bot API name for ``sendPhoto``, ``sendphoto`` or ``send_photo``.

    Raises ValueError for names the Bot API does not have (catches typos in tests).
    """
    key = name.replace("_", "").lower()
    try:
        return _METHODS[key]
    except KeyError:
        raise ValueError(f"{name!r} is not a Bot API method") from None


# --------------------------------------------------------------------------------------------
# Public records
# --------------------------------------------------------------------------------------------


@dataclass
class ApiCall:
    """One Bot API request the fake answered (wrong-token requests are not recorded)."""

    method: str
    """Canonical camelCase method name, e.g. ``sendPhoto``."""
    params: Json
    """Decoded parameters (JSON values decoded, free-text fields kept as strings)."""
    files: dict[str, bytes]
    """Uploaded file parts by form-field name (``photo``, or the attach name)."""
    file_names: dict[str, str]
    """Client-side file names of the uploaded parts."""
    response: Json
    """The JSON body the fake answered (``{"ok": true, "result": ...}`` or an error)."""
    status: int
    """HTTP status of the answer."""
    http_method: str = "POST"
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))

    @property
    def result(self) -> Any:
        return self.response.get("result")

    @property
    def error(self) -> str | None:
        """The error description, or None for a successful call."""
        return None if self.ok else str(self.response.get("description"))

    def brief(self) -> str:
        shown = {k: v for k, v in self.params.items() if k not in {"media", "results"}}
        text = json.dumps(shown, ensure_ascii=False, default=str)
        if len(text) > 160:
            text = text[:157] + "..."
        files = f" files={sorted(self.files)}" if self.files else ""
        outcome = "ok" if self.ok else f"{self.status} {self.error}"
        return f"{self.method} {text}{files} -> {outcome}"


@dataclass(frozen=True)
class FileInfo:
    """A file registered in the fake (uploaded by the bot, sent by a user or added by a test)."""

    file_id: str
    file_unique_id: str
    file_path: str
    file_size: int
    data: bytes = field(repr=False)
    kind: str = "document"
    """``photo`` or ``document``."""
    width: int | None = None
    height: int | None = None
    mime_type: str | None = None
    file_name: str | None = None

    def file_json(self) -> Json:
        """The ``File`` object getFile answers."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
            "file_path": self.file_path,
        }

    def photo_size_json(self) -> Json:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
            "width": self.width or 0,
            "height": self.height or 0,
        }

    def document_json(self) -> Json:
        doc: Json = {"file_id": self.file_id, "file_unique_id": self.file_unique_id}
        if self.file_name is not None:
            doc["file_name"] = self.file_name
        if self.mime_type is not None:
            doc["mime_type"] = self.mime_type
        doc["file_size"] = self.file_size
        return doc


# --------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------


class _ApiError(Exception):
    def __init__(self, status: int, description: str, parameters: Json | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> Json:
        body: Json = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad(description: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {description}")


@dataclass
class _WithDescription:
    """A successful result that also carries a ``description`` (setWebhook does that)."""

    result: Any
    description: str


@dataclass
class _Upload:
    data: bytes
    filename: str | None
    content_type: str | None


@dataclass
class _Fault:
    status: int
    description: str
    remaining: int
    retry_after: int | None
    when: Callable[[Json], bool] | None


@dataclass
class _Delay:
    seconds: float
    remaining: int | None


class _Default(enum.Enum):
    REGISTERED = "registered"


class _Notifier:
    """Wakes every coroutine waiting in :meth:`wait` when :meth:`notify` is called."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait(self, seconds: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, seconds)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(waiter)


Handler = Callable[[Json, dict[str, _Upload]], Awaitable[Any]]


def _u16(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _decode_field(name: str, value: str) -> Any:
    if name in _STRING_FIELDS or not value:
        return value
    if value[0] in '{["-0123456789' or value in {"true", "false", "null"}:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _now() -> int:
    return int(time.time())


def _update_type(update: Json) -> str:
    return next((key for key in update if key != "update_id"), "")


# --------------------------------------------------------------------------------------------
# Formatting: parse_mode -> (text, entities)
# --------------------------------------------------------------------------------------------


class _Text:
    __slots__ = ("n16", "parts")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.n16 = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.n16 += _u16(text)

    def text(self) -> str:
        return "".join(self.parts)


def _entities_error(message: str) -> _ApiError:
    return _bad(f"can't parse entities: {message}")


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
    "tg-emoji": "custom_emoji",
}


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


def _parse_html(src: str) -> tuple[str, list[Json]]:
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
        if name_match is None or name not in _HTML_TAGS:
            raise _entities_error(f'Unsupported start tag "{name}" at byte offset {begin}')
        attrs, index = _parse_html_attributes(src, name_match.end(), name, begin)
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise _entities_error(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
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
    kind = _HTML_TAGS[tag]
    entity: Json = {"offset": start, "length": length, "type": kind}
    if tag == "a":
        href = attrs.get("href", "")
        if not href:
            return
        entity["url"] = href
    elif tag == "tg-emoji":
        emoji_id = attrs.get("emoji-id", "")
        if not emoji_id:
            return
        entity["custom_emoji_id"] = emoji_id
    elif tag == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    elif tag == "code":
        language = attrs.get("class", "")
        if language.startswith("language-"):
            entity["_language"] = language.removeprefix("language-")
    elif tag == "pre":
        for inner in entities:
            if (
                inner["type"] == "code"
                and inner["offset"] == start
                and inner["length"] == length
                and "_language" in inner
            ):
                entity["language"] = inner["_language"]
                entities.remove(inner)
                break
    entities.append(entity)


_MDV2_RESERVED: Final = frozenset("_*[]()~`>#+-=|{}.!")
_ENTITY_NAMES: Final = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}


@dataclass
class _Open:
    kind: str
    start: int
    byte: int
    language: str = ""


def _parse_markdown_v2(src: str) -> tuple[str, list[Json]]:
    out = _Text()
    entities: list[Json] = []
    stack: list[_Open] = []
    quote: _Open | None = None
    index, size = 0, len(src)

    def close(opened: _Open, **extra: Any) -> None:
        length = out.n16 - opened.start
        if length > 0:
            entities.append(
                {"offset": opened.start, "length": length, "type": opened.kind, **extra}
            )

    while index < size:
        char = src[index]
        top = stack[-1] if stack else None
        line_start = index == 0 or src[index - 1] == "\n"
        if char == "\\" and index + 1 < size and 0 < ord(src[index + 1]) < 127:
            out.add(src[index + 1])
            index += 2
            continue
        if top is not None and top.kind in {"code", "pre"}:
            if top.kind == "pre" and src.startswith("```", index):
                stack.pop()
                close(top, **({"language": top.language} if top.language else {}))
                index += 3
            elif top.kind == "code" and char == "`":
                stack.pop()
                close(top)
                index += 1
            else:
                out.add(char)
                index += 1
            continue
        if line_start and quote is None and src.startswith("**>", index):
            quote = _Open("expandable_blockquote", out.n16, _byte_offset(src, index))
            index += 3
            continue
        if line_start and char == ">":
            if quote is None:
                quote = _Open("blockquote", out.n16, _byte_offset(src, index))
            index += 1
            continue
        if (
            quote is not None
            and quote.kind == "expandable_blockquote"
            and src.startswith("||", index)
            and (index + 2 == size or src[index + 2] == "\n")
        ):
            close(quote)
            quote = None
            index += 2
            continue
        if char == "\n" and quote is not None and not src.startswith(">", index + 1):
            close(quote)
            quote = None
            out.add(char)
            index += 1
            continue
        if char == "[" or src.startswith("![", index):
            kind = "text_link" if char == "[" else "custom_emoji"
            stack.append(_Open(kind, out.n16, _byte_offset(src, index)))
            index += 1 if char == "[" else 2
            continue
        if char == "]" and top is not None and top.kind in {"text_link", "custom_emoji"}:
            stack.pop()
            url = ""
            index += 1
            if index < size and src[index] == "(":
                chars: list[str] = []
                index += 1
                while index < size and src[index] != ")":
                    if src[index] == "\\" and index + 1 < size:
                        index += 1
                    chars.append(src[index])
                    index += 1
                if index >= size:
                    raise _entities_error(f"Can't find end of a URL at byte offset {top.byte}")
                index += 1
                url = "".join(chars)
            if url and top.kind == "text_link":
                close(top, url=url)
            elif url.startswith("tg://emoji?id="):
                close(top, custom_emoji_id=url.removeprefix("tg://emoji?id="))
            continue
        if char == "`":
            if src.startswith("```", index):
                index += 3
                newline = src.find("\n", index)
                language = ""
                if newline >= 0 and not any(c.isspace() for c in src[index:newline]):
                    language = src[index:newline]
                    index = newline + 1
                stack.append(_Open("pre", out.n16, _byte_offset(src, index), language))
            else:
                stack.append(_Open("code", out.n16, _byte_offset(src, index)))
                index += 1
            continue
        marker: tuple[str, int] | None = None
        if char == "*":
            marker = ("bold", 1)
        elif char == "_":
            marker = ("underline", 2) if src.startswith("__", index) else ("italic", 1)
        elif char == "~":
            marker = ("strikethrough", 1)
        elif src.startswith("||", index):
            marker = ("spoiler", 2)
        if marker is not None:
            kind, width = marker
            if top is not None and top.kind == kind:
                stack.pop()
                close(top)
            elif top is not None and any(opened.kind == kind for opened in stack):
                raise _entities_error(
                    f"Can't find end of {_ENTITY_NAMES[top.kind]} entity at byte offset {top.byte}"
                )
            else:
                stack.append(_Open(kind, out.n16, _byte_offset(src, index)))
            index += width
            continue
        if char in _MDV2_RESERVED:
            raise _entities_error(
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )
        out.add(char)
        index += 1
    if stack:
        top = stack[-1]
        raise _entities_error(
            f"Can't find end of {_ENTITY_NAMES[top.kind]} entity at byte offset {top.byte}"
        )
    if quote is not None:
        close(quote)
    return out.text(), entities


def _parse_markdown(src: str) -> tuple[str, list[Json]]:
    """Legacy ``Markdown``: *bold*, _italic_, `code`, ```pre```, [text](url)."""
    out = _Text()
    entities: list[Json] = []
    index, size = 0, len(src)
    kinds = {"*": "bold", "_": "italic", "`": "code"}
    while index < size:
        char = src[index]
        if char == "\\" and index + 1 < size and src[index + 1] in "_*`[":
            out.add(src[index + 1])
            index += 2
            continue
        if char not in "*_`[":
            out.add(char)
            index += 1
            continue
        unclosed = _entities_error(
            f"Can't find end of the entity starting at byte offset {_byte_offset(src, index)}"
        )
        start = out.n16
        if src.startswith("```", index):
            end = src.find("```", index + 3)
            if end < 0:
                raise unclosed
            content = src[index + 3 : end]
            language = ""
            first, newline, rest = content.partition("\n")
            if newline and first and not any(c.isspace() for c in first):
                language, content = first, rest
            out.add(content)
            if out.n16 > start:
                entity: Json = {"offset": start, "length": out.n16 - start, "type": "pre"}
                if language:
                    entity["language"] = language
                entities.append(entity)
            index = end + 3
            continue
        if char == "[":
            close = src.find("]", index + 1)
            if close < 0:
                raise unclosed
            out.add(src[index + 1 : close])
            url = ""
            index = close + 1
            if index < size and src[index] == "(":
                url_end = src.find(")", index + 1)
                if url_end < 0:
                    raise unclosed
                url = src[index + 1 : url_end]
                index = url_end + 1
            if url and out.n16 > start:
                entities.append(
                    {"offset": start, "length": out.n16 - start, "type": "text_link", "url": url}
                )
            continue
        end = src.find(char, index + 1)
        if end < 0:
            raise unclosed
        out.add(src[index + 1 : end])
        if out.n16 > start:
            entities.append({"offset": start, "length": out.n16 - start, "type": kinds[char]})
        index = end + 1
    return out.text(), entities


def _strip_formatted(text: str, entities: list[Json]) -> tuple[str, list[Json]]:
    """Trims surrounding whitespace like Telegram does, keeping entity offsets right."""
    stripped = text.strip()
    left = _u16(text) - _u16(text.lstrip())
    total = _u16(stripped)
    result: list[Json] = []
    for entity in entities:
        start = max(0, int(entity["offset"]) - left)
        end = min(total, int(entity["offset"]) + int(entity["length"]) - left)
        if end > start:
            result.append({**entity, "offset": start, "length": end - start})
    result.sort(key=lambda e: (e["offset"], -e["length"]))
    return stripped, result


def _format(text: str, parse_mode: Any, entities: Any) -> tuple[str, list[Json]]:
    """Applies ``parse_mode`` (or explicit ``entities``) the way the real server does."""
    if isinstance(entities, list) and entities:
        parsed: tuple[str, list[Json]] = (text, [dict(e) for e in entities if isinstance(e, dict)])
    elif parse_mode in (None, ""):
        parsed = (text, [])
    elif not isinstance(parse_mode, str):
        raise _bad("unsupported parse_mode")
    elif parse_mode.lower() == "html":
        parsed = _parse_html(text)
    elif parse_mode.lower() == "markdownv2":
        parsed = _parse_markdown_v2(text)
    elif parse_mode.lower() == "markdown":
        parsed = _parse_markdown(text)
    else:
        raise _bad(f"unsupported parse_mode {parse_mode}")
    return _strip_formatted(*parsed)


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
        {"offset": _u16(text[:start]), "length": _u16(text[start:end]), "type": kind}
        for start, end, kind in found
    ]


# --------------------------------------------------------------------------------------------
# The fake server
# --------------------------------------------------------------------------------------------


class FakeTelegram:
    """An in-process fake of the Telegram Bot API (see the module docstring)."""

    def __init__(self, token: str = DEFAULT_TOKEN, *, username: str = "edit_test_bot") -> None:
        bot_id, _, secret = token.partition(":")
        if not bot_id.isdigit() or not secret:
            raise ValueError(f"not a bot token: {token!r}")
        self.token = token
        self.bot_id = int(bot_id)
        self.username = username
        self.bot_user: Json = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Edit Test Bot",
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": True,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.url = ""
        self.calls: list[ApiCall] = []
        """Every answered Bot API call, in the order the answers were produced."""
        self.fetched_urls: list[str] = []
        """HTTP URLs the fake fetched because the bot sent a photo/document by URL."""
        self.downloads: list[FileInfo] = []
        """Files fetched through ``/file/bot<token>/<path>``, in order."""
        self.server_errors: list[BaseException] = []
        """Exceptions raised inside the fake itself (a 500 was answered); should stay empty."""
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = None
        self.webhook_allowed_updates: list[str] | None = None
        self.webhook_max_connections: int | None = None
        self.webhook_probes: list[bool] = []
        """For each setWebhook naming a loopback URL: whether its port accepted a TCP
        connection at that moment (the real Telegram starts sending updates at once)."""

        self._runner: web.AppRunner | None = None
        self._closing = False
        self._closed = asyncio.Event()
        self._calls_changed = _Notifier()
        self._updates_changed = _Notifier()

        self._ids = itertools.count(1)
        self._update_ids = itertools.count(100_000_001)
        self._updates: list[Json] = []
        self._allowed_updates: list[str] | None = None
        self._poll_generation = 0
        self._polls_pending = 0
        self._polling_changed = _Notifier()
        self._poll_terminated_by = ""

        self._users: dict[int, Json] = {self.bot_id: self._bot_short()}
        self._chats: dict[int, Json] = {}
        self._messages: dict[int, dict[int, Json]] = {}
        self._deleted: dict[int, set[int]] = {}
        self._last_message_id: dict[int, int] = {}
        self._sent_files: dict[int, list[bytes]] = {}
        self._blocked: dict[int, str] = {}
        self._members: dict[tuple[int, int], tuple[str, int]] = {}
        self._files: dict[str, FileInfo] = {}
        self._files_by_path: dict[str, FileInfo] = {}
        self._photo_groups: dict[str, list[FileInfo]] = {}
        self._callback_queries: dict[str, bool] = {}
        self._inline_queries: dict[str, bool] = {}
        self._commands: dict[tuple[str, str], list[Json]] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._delays: dict[str, _Delay] = {}

        self._handlers: dict[str, Handler] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "logOut": self._true,
            "close": self._true,
            "getFile": self._get_file,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "sendMediaGroup": self._send_media_group,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "editMessageMedia": self._edit_message_media,
            "deleteMessage": self._delete_message,
            "deleteMessages": self._delete_messages,
            "answerCallbackQuery": self._answer_callback_query,
            "answerInlineQuery": self._answer_inline_query,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "getChatMember": self._get_chat_member,
            "getChatAdministrators": self._get_chat_administrators,
            "getChat": self._get_chat,
            "sendChatAction": self._send_chat_action,
        }

    # ----------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Starts serving on 127.0.0.1 on a free port; sets :attr:`url`."""
        if self._runner is not None:
            raise RuntimeError("FakeTelegram already started")
        self._closing = False
        self._closed.clear()
        app = web.Application(client_max_size=_MAX_UPLOAD_BYTES + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_route("GET", "/file/bot{token}/{file_path:.+}", self._handle_file)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        """Releases pending long polls and delayed answers, then stops the server."""
        self._closing = True
        self._closed.set()
        self._updates_changed.notify()
        self._calls_changed.notify()
        self._polling_changed.notify()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """For ``Application.builder().base_url(...)`` / ``Bot(base_url=...)``."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``Application.builder().base_file_url(...)`` / ``Bot(base_file_url=...)``."""
        return f"{self.url}/file/bot"

    # ------------------------------------------------------------------------ call inspection

    def calls_of(self, method: str) -> list[ApiCall]:
        """The recorded calls of one method (``sendPhoto``, ``sendphoto`` or ``send_photo``)."""
        name = canonical_method(method)
        return [call for call in self.calls if call.method == name]

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[ApiCall], bool] | None = None,
        *,
        count: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109 - a test helper, not a network call
    ) -> list[ApiCall]:
        """Waits until ``count`` calls of ``method`` matching ``predicate`` were answered.

        Returns all matching calls so far (at least ``count``). On timeout raises
        AssertionError listing every call the fake saw.
        """
        name = canonical_method(method)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            matching = [
                call
                for call in self.calls
                if call.method == name and (predicate is None or predicate(call))
            ]
            if len(matching) >= count:
                return matching
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closing:
                seen = "\n".join(f"  {call.brief()}" for call in self.calls) or "  (none)"
                raise AssertionError(
                    f"expected {count} matching {name} call(s) within {timeout}s, got "
                    f"{len(matching)}; calls seen:\n{seen}"
                )
            await self._calls_changed.wait(remaining)

    async def wait_until_polling(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Waits until a getUpdates long poll is pending (the bot is idle, waiting for updates)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._polls_pending == 0:
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closing:
                raise AssertionError(f"no getUpdates long poll became pending within {timeout}s")
            await self._polling_changed.wait(remaining)

    def sent_message(self, call: ApiCall) -> Json:
        """The Message the fake answered for a send/edit call."""
        result = call.result
        if not call.ok or not isinstance(result, dict) or "message_id" not in result:
            raise AssertionError(f"call did not return a Message: {call.brief()}")
        return copy.deepcopy(result)

    def sent_messages(self, call: ApiCall) -> list[Json]:
        """The Messages of a call (one for sendPhoto, several for sendMediaGroup)."""
        result = call.result
        if call.ok and isinstance(result, list):
            return copy.deepcopy(result)
        return [self.sent_message(call)]

    def files_sent_to(self, chat_id: int) -> list[bytes]:
        """Bytes of every photo (largest size) and document the bot sent to a chat, in order."""
        return list(self._sent_files.get(chat_id, []))

    def message(self, chat_id: int, message_id: int) -> Json | None:
        """Current state of a message (after edits), or None if missing or deleted."""
        found = self._live_message(chat_id, message_id)
        return copy.deepcopy(found) if found is not None else None

    def is_deleted(self, chat_id: int, message_id: int) -> bool:
        return message_id in self._deleted.get(chat_id, set())

    def bot_messages(self, chat_id: int) -> list[Json]:
        """Current (non-deleted) messages the bot sent to a chat, oldest first."""
        deleted = self._deleted.get(chat_id, set())
        return [
            copy.deepcopy(message)
            for message_id, message in sorted(self._messages.get(chat_id, {}).items())
            if message_id not in deleted and message.get("from", {}).get("id") == self.bot_id
        ]

    def commands(self, *, scope: Json | None = None, language_code: str = "") -> list[Json]:
        """The bot commands set for a scope/language (as setMyCommands stored them)."""
        return copy.deepcopy(self._commands.get(self._commands_key(scope, language_code), []))

    @property
    def pending_updates(self) -> int:
        """Updates queued for getUpdates and not yet confirmed."""
        return len(self._updates)

    # ------------------------------------------------------------------------- model control

    def add_file(self, data: bytes, *, file_path_suffix: str = ".jpg") -> FileInfo:
        """Registers bytes as a Telegram file (image suffixes register a photo)."""
        suffix = file_path_suffix if file_path_suffix.startswith(".") else f".{file_path_suffix}"
        if suffix.lower() in _IMAGE_SUFFIXES:
            width, height = self._image_size(data)
            return self._register_file(
                data, kind="photo", suffix=suffix, width=width, height=height
            )
        mime = mimetypes.guess_type(f"file{suffix}")[0]
        return self._register_file(data, kind="document", suffix=suffix, mime_type=mime)

    def file(self, file_id: str) -> FileInfo:
        """A registered file by id (KeyError if unknown)."""
        return self._files[file_id]

    def register_chat(
        self,
        chat_id: int,
        *,
        chat_type: str | None = None,
        title: str | None = None,
        username: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        is_forum: bool | None = None,
    ) -> Json:
        """Registers (or re-describes) a chat; by default positive ids are private chats and
        negative ids supergroups."""
        kind = chat_type or ("private" if chat_id > 0 else "supergroup")
        chat: Json = {"id": chat_id, "type": kind}
        if kind == "private":
            user = self._users.get(chat_id, {})
            chat["first_name"] = first_name or user.get("first_name") or f"User {chat_id}"
            if last_name or user.get("last_name"):
                chat["last_name"] = last_name or user.get("last_name")
        else:
            chat["title"] = title or f"Test {kind.capitalize()} {abs(chat_id)}"
        known_username = self._users.get(chat_id, {}).get("username") if kind == "private" else None
        if username or known_username:
            chat["username"] = username or known_username
        if is_forum:
            chat["is_forum"] = True
        self._chats[chat_id] = chat
        return copy.deepcopy(chat)

    def set_chat_member(
        self, chat_id: int, user_id: int, status: str, *, until_date: int = 0
    ) -> None:
        """Sets what getChatMember answers for a user (or the bot itself) in a chat."""
        if status not in _CHAT_MEMBER_STATUSES:
            raise ValueError(f"unknown chat member status {status!r}")
        self._members[(chat_id, user_id)] = (status, until_date)

    def block_chat(self, chat_id: int, description: str | None = None) -> None:
        """Every send to the chat answers 403 (the user blocked the bot / the bot was kicked)."""
        if description is None:
            chat_type = self._chat(chat_id)["type"]
            description = (
                "Forbidden: bot was blocked by the user"
                if chat_type == "private"
                else f"Forbidden: bot was kicked from the {chat_type} chat"
            )
        self._blocked[chat_id] = description

    def unblock_chat(self, chat_id: int) -> None:
        self._blocked.pop(chat_id, None)

    def fail(
        self,
        method: str,
        status: int,
        description: str,
        *,
        times: int = 1,
        retry_after: int | None = None,
        when: Callable[[Json], bool] | None = None,
    ) -> None:
        """The next ``times`` calls of ``method`` (whose params satisfy ``when``, if given)
        answer this error instead of being executed. A 429 carries
        ``parameters.retry_after`` (default 1 second)."""
        if times < 1:
            raise ValueError("times must be >= 1")
        if status == 429 and retry_after is None:
            retry_after = 1
        self._faults.setdefault(canonical_method(method), []).append(
            _Fault(status, description, times, retry_after, when)
        )

    def delay(self, method: str, seconds: float, *, times: int | None = None) -> None:
        """Answers of ``method`` are held back ``seconds`` before the call is executed (for the
        next ``times`` calls, or until ``delay(method, 0)``)."""
        name = canonical_method(method)
        if seconds <= 0:
            self._delays.pop(name, None)
        else:
            self._delays[name] = _Delay(seconds, times)

    # ------------------------------------------------------------------------ update builders

    def user(
        self,
        user_id: int,
        *,
        first_name: str = "Alice",
        language_code: str = "en",
        username: str | None = None,
        last_name: str | None = None,
    ) -> Json:
        """A User dict (also remembered, so getChatMember/private chats use its names)."""
        user: Json = {"id": user_id, "is_bot": False, "first_name": first_name}
        if last_name is not None:
            user["last_name"] = last_name
        if username is not None:
            user["username"] = username
        user["language_code"] = language_code
        self._users[user_id] = user
        return copy.deepcopy(user)

    def text_update(
        self,
        chat_id: int,
        user: Json | int,
        text: str,
        *,
        reply_to: Json | None = None,
        entities: list[Json] | None = None,
        chat_type: str | None = None,
    ) -> Json:
        """A ``message`` update with text. Without ``entities``, bot_command, mention and url
        entities are detected like Telegram does."""
        content: Json = {"text": text}
        found = detect_entities(text) if entities is None else entities
        if found:
            content["entities"] = found
        return self._user_message_update(chat_id, user, content, reply_to, chat_type)

    def photo_update(
        self,
        chat_id: int,
        user: Json | int,
        image: bytes,
        *,
        caption: str | None = None,
        reply_to: Json | None = None,
        media_group_id: str | None = None,
        chat_type: str | None = None,
    ) -> Json:
        """A ``message`` update with a photo: 2-3 registered PhotoSizes, the given bytes
        (with their real width/height) last."""
        try:
            sizes = self._register_photo(image)
        except _ApiError as exc:
            raise ValueError(f"photo_update needs a decodable image: {exc.description}") from exc
        content: Json = {"photo": [size.photo_size_json() for size in sizes]}
        if media_group_id is not None:
            content["media_group_id"] = media_group_id
        self._add_caption(content, caption)
        return self._user_message_update(chat_id, user, content, reply_to, chat_type)

    def document_update(
        self,
        chat_id: int,
        user: Json | int,
        data: bytes,
        *,
        mime_type: str,
        file_name: str,
        caption: str | None = None,
        reply_to: Json | None = None,
        media_group_id: str | None = None,
        chat_type: str | None = None,
    ) -> Json:
        """A ``message`` update with a document (the file is registered for getFile)."""
        suffix = "." + file_name.rsplit(".", 1)[-1] if "." in file_name else ""
        info = self._register_file(
            data, kind="document", suffix=suffix, mime_type=mime_type, file_name=file_name
        )
        content: Json = {"document": info.document_json()}
        if media_group_id is not None:
            content["media_group_id"] = media_group_id
        self._add_caption(content, caption)
        return self._user_message_update(chat_id, user, content, reply_to, chat_type)

    def callback_query_update(self, user: Json | int, message: Json, data: str) -> Json:
        """A ``callback_query`` update for a button of ``message`` (e.g. ``sent_message(call)``)."""
        query_id = str(4_000_000_000_000_000_000 + next(self._ids))
        self._callback_queries[query_id] = False
        chat_id = int(message["chat"]["id"])
        return {
            "update_id": next(self._update_ids),
            "callback_query": {
                "id": query_id,
                "from": self._as_user(user),
                "message": copy.deepcopy(message),
                "chat_instance": str(abs(chat_id) * 7919 + 1_234_567),
                "data": data,
            },
        }

    def inline_query_update(
        self, user: Json | int, query: str, *, offset: str = "", chat_type: str = "sender"
    ) -> Json:
        query_id = str(5_000_000_000_000_000_000 + next(self._ids))
        self._inline_queries[query_id] = False
        return {
            "update_id": next(self._update_ids),
            "inline_query": {
                "id": query_id,
                "from": self._as_user(user),
                "query": query,
                "offset": offset,
                "chat_type": chat_type,
            },
        }

    @staticmethod
    def message_of(update: Json) -> Json:
        """The Message inside an update (message, edited_message, channel posts, or the
        message of a callback query)."""
        for key in ("message", "edited_message", "channel_post", "edited_channel_post"):
            if key in update:
                message: Json = copy.deepcopy(update[key])
                return message
        query = update.get("callback_query")
        if isinstance(query, dict) and "message" in query:
            inner: Json = copy.deepcopy(query["message"])
            return inner
        raise ValueError(f"update has no message: {sorted(update)}")

    # ------------------------------------------------------------------------------ delivery

    def push_update(self, update: Json) -> None:
        """Queues an update for getUpdates (assigns an ``update_id`` if missing)."""
        queued = copy.deepcopy(update)
        queued.setdefault("update_id", next(self._update_ids))
        self._updates.append(queued)
        self._updates_changed.notify()

    async def post_webhook(
        self, update: Json, *, secret: str | _Default | None = _Default.REGISTERED
    ) -> int:
        """POSTs an update to the webhook set with setWebhook; returns the HTTP status.

        ``X-Telegram-Bot-Api-Secret-Token`` carries the registered secret_token by default,
        ``secret`` overrides it (None omits the header).
        """
        if self.webhook_url is None:
            raise AssertionError("no webhook is set (the bot never called setWebhook)")
        token = self.webhook_secret if isinstance(secret, _Default) else secret
        headers = {"X-Telegram-Bot-Api-Secret-Token": token} if token is not None else {}
        async with (
            ClientSession(timeout=ClientTimeout(total=30)) as session,
            session.post(self.webhook_url, json=update, headers=headers) as response,
        ):
            await response.read()
            return response.status

    # --------------------------------------------------------------------------- HTTP layer

    async def _handle_api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._json(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        name = _METHODS.get(request.match_info["method"].lower())
        if name is None:
            return self._json(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        params: Json = {}
        uploads: dict[str, _Upload] = {}
        try:
            params, uploads = await self._read_params(request)
            await self._apply_delay(name)
            self._apply_fault(name, params)
            self._check_blocked(name, params)
            handler = self._handlers.get(name, self._true)
            result = await handler(params, uploads)
            body: Json
            if isinstance(result, _WithDescription):
                body = {"ok": True, "result": result.result, "description": result.description}
            else:
                body = {"ok": True, "result": result}
            status = 200
        except _ApiError as exc:
            status, body = exc.status, exc.body()
        except Exception as exc:  # noqa: BLE001 - a bug in the fake must not look like Telegram
            self.server_errors.append(exc)
            status = 500
            body = {
                "ok": False,
                "error_code": 500,
                "description": f"fake Telegram crashed: {exc!r}",
            }
        self.calls.append(
            ApiCall(
                method=name,
                params=params,
                files={key: upload.data for key, upload in uploads.items()},
                file_names={
                    key: upload.filename for key, upload in uploads.items() if upload.filename
                },
                response=copy.deepcopy(body),
                status=status,
                http_method=request.method,
            )
        )
        self._calls_changed.notify()
        return self._json(status, body)

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._json(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        info = self._files_by_path.get(request.match_info["file_path"])
        if info is None:
            return self._json(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        self.downloads.append(info)
        return web.Response(
            body=info.data, content_type=info.mime_type or "application/octet-stream"
        )

    @staticmethod
    def _json(status: int, body: Json) -> web.Response:
        return web.json_response(
            body, status=status, dumps=lambda obj: json.dumps(obj, ensure_ascii=False)
        )

    @staticmethod
    async def _read_params(request: web.Request) -> tuple[Json, dict[str, _Upload]]:
        params: Json = {key: _decode_field(key, value) for key, value in request.query.items()}
        uploads: dict[str, _Upload] = {}
        if request.method != "POST" or not request.body_exists:
            return params, uploads
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _bad("can't parse JSON encoded request body") from None
            if not isinstance(body, dict):
                raise _bad("can't parse JSON encoded request body")
            params.update(body)
        elif request.content_type in {"application/x-www-form-urlencoded", "multipart/form-data"}:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    value.file.seek(0)
                    uploads[key] = _Upload(value.file.read(), value.filename, value.content_type)
                elif isinstance(value, str):
                    params[key] = _decode_field(key, value)
                else:
                    uploads[key] = _Upload(bytes(value), None, None)
        return params, uploads

    async def _apply_delay(self, name: str) -> None:
        delay = self._delays.get(name)
        if delay is None:
            return
        if delay.remaining is not None:
            delay.remaining -= 1
            if delay.remaining <= 0:
                del self._delays[name]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), delay.seconds)

    def _apply_fault(self, name: str, params: Json) -> None:
        faults = self._faults.get(name, [])
        for fault in faults:
            if fault.when is not None and not fault.when(params):
                continue
            fault.remaining -= 1
            if fault.remaining <= 0:
                faults.remove(fault)
            parameters = {"retry_after": fault.retry_after} if fault.retry_after else None
            raise _ApiError(fault.status, fault.description, parameters)

    def _check_blocked(self, name: str, params: Json) -> None:
        sends = name.startswith("send") or name in {
            "copyMessage",
            "copyMessages",
            "forwardMessage",
            "forwardMessages",
        }
        if not sends or not self._blocked:
            return
        try:
            chat_id = self._resolve_chat(params)
        except _ApiError:
            return  # the method itself reports the bad chat_id
        if chat_id in self._blocked:
            raise _ApiError(403, self._blocked[chat_id])

    # -------------------------------------------------------------------------- model helpers

    def _bot_short(self) -> Json:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_user["first_name"],
            "username": self.username,
        }

    def _as_user(self, user: Json | int) -> Json:
        if isinstance(user, int):
            return copy.deepcopy(self._users.get(user) or self.user(user))
        self._users[int(user["id"])] = copy.deepcopy(user)
        return copy.deepcopy(user)

    def _user_json(self, user_id: int) -> Json:
        if user_id == self.bot_id:
            return self._bot_short()
        known = self._users.get(user_id)
        if known is not None:
            return copy.deepcopy(known)
        return {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}

    def _chat(self, chat_id: int, chat_type: str | None = None) -> Json:
        chat = self._chats.get(chat_id)
        if chat is None or (chat_type is not None and chat["type"] != chat_type):
            self.register_chat(chat_id, chat_type=chat_type)
            chat = self._chats[chat_id]
        return chat

    def _resolve_chat(self, params: Json, key: str = "chat_id") -> int:
        value = params.get(key)
        if value is None or value == "":
            raise _bad(f"{key} is empty")
        if isinstance(value, bool):
            raise _bad("chat not found")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            if value.lstrip("-").isdigit():
                return int(value)
            if value.startswith("@"):
                for chat_id, chat in self._chats.items():
                    if chat.get("username", "").lower() == value[1:].lower():
                        return chat_id
        raise _bad("chat not found")

    def _next_message_id(self, chat_id: int) -> int:
        message_id = self._last_message_id.get(chat_id, 0) + 1
        self._last_message_id[chat_id] = message_id
        return message_id

    def _store_message(self, chat_id: int, message: Json) -> None:
        self._messages.setdefault(chat_id, {})[int(message["message_id"])] = copy.deepcopy(message)

    def _live_message(self, chat_id: int, message_id: int) -> Json | None:
        if message_id in self._deleted.get(chat_id, set()):
            return None
        return self._messages.get(chat_id, {}).get(message_id)

    def _add_caption(self, content: Json, caption: str | None) -> None:
        if caption:
            content["caption"] = caption
            entities = detect_entities(caption)
            if entities:
                content["caption_entities"] = entities

    def _user_message_update(
        self,
        chat_id: int,
        user: Json | int,
        content: Json,
        reply_to: Json | None,
        chat_type: str | None,
    ) -> Json:
        sender = self._as_user(user)
        if chat_id not in self._chats or chat_type is not None:
            self.register_chat(chat_id, chat_type=chat_type)
        message: Json = {
            "message_id": self._next_message_id(chat_id),
            "from": sender,
            "chat": copy.deepcopy(self._chats[chat_id]),
            "date": _now(),
        }
        if reply_to is not None:
            replied = copy.deepcopy(reply_to)
            replied.pop("reply_to_message", None)
            message["reply_to_message"] = replied
        message.update(copy.deepcopy(content))
        self._store_message(chat_id, message)
        return {"update_id": next(self._update_ids), "message": message}

    # -------------------------------------------------------------------------------- files

    def _register_file(
        self,
        data: bytes,
        *,
        kind: str,
        suffix: str,
        width: int | None = None,
        height: int | None = None,
        mime_type: str | None = None,
        file_name: str | None = None,
    ) -> FileInfo:
        number = next(self._ids)
        if kind == "photo":
            prefix, unique_prefix, folder = "AgACAgIAAxkBAAI", "AQAD", "photos"
        else:
            prefix, unique_prefix, folder = "BQACAgIAAxkBAAI", "AgAD", "documents"
        info = FileInfo(
            file_id=f"{prefix}{number:08d}{self.bot_id:x}fAkEtElEgRaM",
            file_unique_id=f"{unique_prefix}{number:08d}",
            file_path=f"{folder}/file_{number}{suffix.lower()}",
            file_size=len(data),
            data=bytes(data),
            kind=kind,
            width=width,
            height=height,
            mime_type=mime_type,
            file_name=file_name,
        )
        self._files[info.file_id] = info
        self._files_by_path[info.file_path] = info
        return info

    @staticmethod
    def _image_size(data: bytes) -> tuple[int, int]:
        try:
            with Image.open(io.BytesIO(data)) as image:
                return image.size
        except Image.DecompressionBombError as exc:
            raise _bad("PHOTO_INVALID_DIMENSIONS") from exc
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise _bad("IMAGE_PROCESS_FAILED") from exc

    def _register_photo(self, data: bytes) -> list[FileInfo]:
        """Validates an uploaded photo and registers its PhotoSizes (thumbnails first)."""
        if not data:
            raise _bad("file must be non-empty")
        if len(data) > _MAX_PHOTO_BYTES:
            raise _bad("PHOTO_SAVE_FILE_INVALID")
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                width, height = image.size
                if width + height > 10_000 or max(width, height) > 20 * min(width, height):
                    raise _bad("PHOTO_INVALID_DIMENSIONS")
                longest = max(width, height)
                sides = [side for side in (90, 320) if side < longest] or [max(1, longest // 2)]
                thumbnails: list[tuple[bytes, int, int]] = []
                for side in sides:
                    thumb = image.convert("RGB")
                    thumb.thumbnail((side, side))
                    buffer = io.BytesIO()
                    thumb.save(buffer, format="JPEG", quality=80)
                    thumbnails.append((buffer.getvalue(), *thumb.size))
        except Image.DecompressionBombError as exc:
            raise _bad("PHOTO_INVALID_DIMENSIONS") from exc
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise _bad("IMAGE_PROCESS_FAILED") from exc
        sizes = [
            self._register_file(thumb, kind="photo", suffix=".jpg", width=w, height=h)
            for thumb, w, h in thumbnails
        ]
        sizes.append(
            self._register_file(data, kind="photo", suffix=".jpg", width=width, height=height)
        )
        for size in sizes:
            self._photo_groups[size.file_id] = sizes
        return sizes

    async def _input_file(
        self, value: Any, uploads: dict[str, _Upload], field_name: str | None, *, limit: int
    ) -> _Upload | FileInfo:
        """Resolves a file parameter: an upload, ``attach://name``, a file_id or an HTTP URL
        (fetched like Telegram does, at most ``limit`` bytes)."""
        if field_name is not None and field_name in uploads:
            return uploads[field_name]
        if isinstance(value, str) and value:
            if value.startswith("attach://"):
                upload = uploads.get(value.removeprefix("attach://"))
                if upload is None:
                    raise _bad(f'file "{value}" is not found in the request')
                return upload
            info = self._files.get(value)
            if info is not None:
                return info
            if value.startswith(("http://", "https://")):
                return await self._fetch_url(value, limit)
            raise _bad("wrong file identifier/HTTP URL specified")
        raise _bad(f"there is no {field_name or 'media'} in the request")

    async def _fetch_url(self, url: str, limit: int) -> _Upload:
        self.fetched_urls.append(url)
        try:
            async with (
                ClientSession(timeout=ClientTimeout(total=10)) as session,
                session.get(url) as response,
            ):
                if response.status != 200:
                    raise _bad("failed to get HTTP URL content")
                data = await response.content.read(limit + 1)
                content_type = response.content_type
        except (ClientError, TimeoutError) as exc:
            raise _bad("failed to get HTTP URL content") from exc
        if len(data) > limit:
            raise _bad("failed to get HTTP URL content")
        if content_type.startswith("text/html"):
            raise _bad("wrong type of the web page content")
        name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or None
        return _Upload(data, name, content_type)

    async def _photo_sizes(
        self, value: Any, uploads: dict[str, _Upload], field_name: str | None
    ) -> list[FileInfo]:
        source = await self._input_file(value, uploads, field_name, limit=_MAX_URL_PHOTO_BYTES)
        if isinstance(source, _Upload):
            return self._register_photo(source.data)
        if source.kind != "photo":
            raise _bad("can't use file of type Document as Photo")
        return self._photo_groups.get(source.file_id) or [source]

    async def _document(
        self, value: Any, uploads: dict[str, _Upload], field_name: str | None
    ) -> FileInfo:
        source = await self._input_file(value, uploads, field_name, limit=_MAX_URL_FILE_BYTES)
        if isinstance(source, FileInfo):
            if source.kind != "document":
                raise _bad("can't use file of type Photo as Document")
            return source
        if not source.data:
            raise _bad("file must be non-empty")
        file_name = source.filename or "document"
        suffix = "." + file_name.rsplit(".", 1)[-1] if "." in file_name else ""
        mime = source.content_type or mimetypes.guess_type(file_name)[0]
        return self._register_file(
            source.data, kind="document", suffix=suffix, mime_type=mime, file_name=file_name
        )

    # ------------------------------------------------------------------------ send helpers

    def _reply_to(self, chat_id: int, params: Json) -> Json | None:
        reply_parameters = params.get("reply_parameters")
        message_id: Any
        if isinstance(reply_parameters, dict):
            message_id = reply_parameters.get("message_id")
            allow = bool(reply_parameters.get("allow_sending_without_reply", False))
            if reply_parameters.get("chat_id") not in (None, chat_id):
                chat_id = self._resolve_chat(reply_parameters)
        elif params.get("reply_to_message_id") is not None:
            message_id = params["reply_to_message_id"]
            allow = bool(params.get("allow_sending_without_reply", False))
        else:
            return None
        try:
            target = self._live_message(chat_id, int(message_id))
        except (TypeError, ValueError):
            target = None
        if target is None:
            if allow:
                return None
            raise _bad("message to be replied not found")
        replied = copy.deepcopy(target)
        replied.pop("reply_to_message", None)
        return replied

    @staticmethod
    def _inline_markup(params: Json) -> Json | None:
        """Validates ``reply_markup``; returns it if it is an inline keyboard (echoed back)."""
        markup = params.get("reply_markup")
        if markup is None or markup == "":
            return None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        keyboard = markup.get("inline_keyboard")
        if keyboard is None:
            return None
        if not isinstance(keyboard, list) or not all(isinstance(row, list) for row in keyboard):
            raise _bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
        for row in keyboard:
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise _bad(
                        'can\'t parse inline keyboard button: Field "text" must be of type String'
                    )
                if "callback_data" in button:
                    data = str(button["callback_data"]).encode("utf-8")
                    if not 1 <= len(data) <= 64:
                        raise _bad("BUTTON_DATA_INVALID")
                elif len(button) < 2:
                    raise _bad("text buttons are unallowed in the inline keyboard")
        return markup

    @staticmethod
    def _text_content(text: Any, params: Json, *, prefix: str = "") -> Json:
        if not isinstance(text, str):
            text = "" if text is None else json.dumps(text)
        formatted, entities = _format(
            text, params.get(f"{prefix}parse_mode"), params.get(f"{prefix}entities")
        )
        if not formatted:
            raise _bad("message text is empty")
        if _u16(formatted) > _MAX_TEXT:
            raise _bad("message is too long")
        content: Json = {"text": formatted}
        if entities:
            content["entities"] = entities
        return content

    @staticmethod
    def _caption_content(item: Json) -> Json:
        caption = item.get("caption")
        if caption is None or caption == "":
            return {}
        if not isinstance(caption, str):
            caption = json.dumps(caption)
        formatted, entities = _format(caption, item.get("parse_mode"), item.get("caption_entities"))
        if _u16(formatted) > _MAX_CAPTION:
            raise _bad("message caption is too long")
        content: Json = {}
        if formatted:
            content["caption"] = formatted
        if entities:
            content["caption_entities"] = entities
        if item.get("show_caption_above_media") is True:
            content["show_caption_above_media"] = True
        return content

    def _bot_message(
        self,
        chat_id: int,
        content: Json,
        *,
        reply: Json | None,
        markup: Json | None,
        media_group_id: str | None = None,
    ) -> Json:
        message: Json = {
            "message_id": self._next_message_id(chat_id),
            "from": self._bot_short(),
            "chat": copy.deepcopy(self._chat(chat_id)),
            "date": _now(),
        }
        if reply is not None:
            message["reply_to_message"] = reply
        if media_group_id is not None:
            message["media_group_id"] = media_group_id
        message.update(content)
        if markup is not None:
            message["reply_markup"] = markup
        self._store_message(chat_id, message)
        return copy.deepcopy(message)

    def _editable(self, params: Json) -> tuple[int, Json] | None:
        """The stored message an edit targets; None for inline messages."""
        if params.get("inline_message_id"):
            return None
        chat_id = self._resolve_chat(params)
        message_id = params.get("message_id")
        if message_id is None:
            raise _bad("message identifier is not specified")
        message = self._live_message(chat_id, int(message_id))
        if message is None:
            raise _bad("message to edit not found")
        if message.get("from", {}).get("id") != self.bot_id:
            raise _bad("message can't be edited")
        return chat_id, message

    def _commit_edit(
        self,
        chat_id: int,
        message: Json,
        *,
        remove: Iterable[str] = (),
        changes: Json | None = None,
        markup: Json | None,
    ) -> Json:
        """Applies an edit (``remove`` keys, then ``changes``; the inline keyboard becomes
        ``markup``), refusing edits that change nothing like the real server."""
        edited = copy.deepcopy(message)
        for key in remove:
            edited.pop(key, None)
        edited.update(changes or {})
        edited.pop("reply_markup", None)
        if markup is not None:
            edited["reply_markup"] = markup
        compared = (
            "text",
            "entities",
            "caption",
            "caption_entities",
            "show_caption_above_media",
            "reply_markup",
        )
        unchanged = all(edited.get(key) == message.get(key) for key in compared) and all(
            _media_key(edited.get(key)) == _media_key(message.get(key))
            for key in ("photo", "document")
        )
        if unchanged:
            raise _ApiError(400, _NOT_MODIFIED)
        edited["edit_date"] = _now()
        self._messages[chat_id][int(message["message_id"])] = edited
        return copy.deepcopy(edited)

    # ------------------------------------------------------------------------------ methods

    async def _true(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        return True

    async def _get_me(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        return copy.deepcopy(self.bot_user)

    async def _get_updates(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        if self.webhook_url is not None:
            raise _ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(kind) for kind in allowed] or None
        self._poll_generation += 1
        generation = self._poll_generation
        self._poll_terminated_by = "other getUpdates request"
        self._updates_changed.notify()  # terminates an older pending long poll
        self._confirm_updates(offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if generation != self._poll_generation:
                raise _ApiError(
                    409,
                    f"Conflict: terminated by {self._poll_terminated_by}; make sure that only "
                    "one bot instance is running",
                )
            batch = self._deliverable_updates(limit)
            remaining = deadline - loop.time()
            if batch or self._closing or remaining <= 0:
                return batch
            self._polls_pending += 1
            self._polling_changed.notify()
            try:
                await self._updates_changed.wait(remaining)
            finally:
                self._polls_pending -= 1

    def _confirm_updates(self, offset: int) -> None:
        if offset > 0:
            self._updates = [u for u in self._updates if int(u["update_id"]) >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]

    def _deliverable_updates(self, limit: int) -> list[Json]:
        if self._allowed_updates is None:
            keep = [u for u in self._updates if _update_type(u) not in _NOT_DEFAULT_UPDATES]
        else:
            keep = [u for u in self._updates if _update_type(u) in self._allowed_updates]
        self._updates = keep
        return copy.deepcopy(keep[:limit])

    async def _set_webhook(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        url = params.get("url")
        if not url:
            return await self._delete_webhook(params, uploads)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and (
            not isinstance(secret, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret)
        ):
            raise _bad("secret token contains unallowed characters")
        self.webhook_url = url
        self.webhook_secret = secret
        await self._probe_webhook(url)
        allowed = params.get("allowed_updates")
        self.webhook_allowed_updates = list(allowed) if isinstance(allowed, list) else None
        max_connections = params.get("max_connections")
        self.webhook_max_connections = int(max_connections) if max_connections else 40
        if params.get("drop_pending_updates") is True:
            self._updates.clear()
        self._poll_generation += 1
        self._poll_terminated_by = "setWebhook request"
        self._updates_changed.notify()
        return _WithDescription(True, "Webhook was set")

    async def _probe_webhook(self, url: str) -> None:
        """Records whether a loopback webhook's port accepts connections (see webhook_probes)."""
        parsed = urllib.parse.urlsplit(url)
        if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
            return
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(parsed.hostname, port), 2)
        except (OSError, TimeoutError):
            self.webhook_probes.append(False)
            return
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        self.webhook_probes.append(True)

    async def _delete_webhook(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        was_set = self.webhook_url is not None
        self.webhook_url = None
        self.webhook_secret = None
        self.webhook_allowed_updates = None
        self.webhook_max_connections = None
        if params.get("drop_pending_updates") is True:
            self._updates.clear()
        return _WithDescription(
            True, "Webhook was deleted" if was_set else "Webhook is already deleted"
        )

    async def _get_webhook_info(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        info: Json = {
            "url": self.webhook_url or "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook_url is not None:
            info["max_connections"] = self.webhook_max_connections or 40
            info["ip_address"] = "127.0.0.1"
            if self.webhook_allowed_updates is not None:
                info["allowed_updates"] = list(self.webhook_allowed_updates)
        return info

    async def _get_file(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        info = self._files.get(str(params.get("file_id") or ""))
        if info is None:
            raise _bad("invalid file_id")
        if info.file_size > _MAX_DOWNLOAD_BYTES:
            raise _bad("file is too big")
        return info.file_json()

    async def _send_message(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        chat_id = self._resolve_chat(params)
        content = self._text_content(params.get("text"), params)
        reply = self._reply_to(chat_id, params)
        markup = self._inline_markup(params)
        return self._bot_message(chat_id, content, reply=reply, markup=markup)

    async def _send_photo(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        chat_id = self._resolve_chat(params)
        caption = self._caption_content(params)
        reply = self._reply_to(chat_id, params)
        markup = self._inline_markup(params)
        sizes = await self._photo_sizes(params.get("photo"), uploads, "photo")
        content: Json = {"photo": [size.photo_size_json() for size in sizes], **caption}
        if params.get("has_spoiler") is True:
            content["has_media_spoiler"] = True
        message = self._bot_message(chat_id, content, reply=reply, markup=markup)
        self._sent_files.setdefault(chat_id, []).append(sizes[-1].data)
        return message

    async def _send_document(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        chat_id = self._resolve_chat(params)
        caption = self._caption_content(params)
        reply = self._reply_to(chat_id, params)
        markup = self._inline_markup(params)
        document = await self._document(params.get("document"), uploads, "document")
        content: Json = {"document": document.document_json(), **caption}
        message = self._bot_message(chat_id, content, reply=reply, markup=markup)
        self._sent_files.setdefault(chat_id, []).append(document.data)
        return message

    async def _send_media_group(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        chat_id = self._resolve_chat(params)
        media = params.get("media")
        if not isinstance(media, list) or not all(isinstance(item, dict) for item in media):
            raise _bad("can't parse media JSON object")
        if not 2 <= len(media) <= 10:
            raise _bad("wrong number of media items: must be 2-10")
        kinds = {item.get("type") for item in media}
        if "document" in kinds and len(kinds) > 1:
            raise _bad("document can't be mixed with other media types")
        reply = self._reply_to(chat_id, params)
        prepared: list[tuple[Json, bytes]] = []
        for item in media:
            caption = self._caption_content(item)
            if item.get("type") == "photo":
                sizes = await self._photo_sizes(item.get("media"), uploads, None)
                content: Json = {"photo": [size.photo_size_json() for size in sizes]}
                if item.get("has_spoiler") is True:
                    content["has_media_spoiler"] = True
                prepared.append(({**content, **caption}, sizes[-1].data))
            elif item.get("type") == "document":
                document = await self._document(item.get("media"), uploads, None)
                prepared.append(({"document": document.document_json(), **caption}, document.data))
            else:
                raise _bad(f"the fake Telegram server does not support {item.get('type')!r} media")
        group_id = str(13_000_000_000_000_000 + next(self._ids))
        messages = []
        for content, data in prepared:
            messages.append(
                self._bot_message(
                    chat_id,
                    content,
                    reply=copy.deepcopy(reply),
                    markup=None,
                    media_group_id=group_id,
                )
            )
            self._sent_files.setdefault(chat_id, []).append(data)
        return messages

    async def _edit_message_text(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        content = self._text_content(params.get("text"), params)
        markup = self._inline_markup(params)
        target = self._editable(params)
        if target is None:
            return True
        chat_id, message = target
        if "text" not in message:
            raise _bad("there is no text in the message to edit")
        return self._commit_edit(
            chat_id, message, remove=("text", "entities"), changes=content, markup=markup
        )

    async def _edit_message_caption(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        caption = self._caption_content(params)
        markup = self._inline_markup(params)
        target = self._editable(params)
        if target is None:
            return True
        chat_id, message = target
        if "text" in message:
            raise _bad("there is no caption in the message to edit")
        return self._commit_edit(
            chat_id, message, remove=_CAPTION_KEYS, changes=caption, markup=markup
        )

    async def _edit_message_reply_markup(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        markup = self._inline_markup(params)
        target = self._editable(params)
        if target is None:
            return True
        chat_id, message = target
        return self._commit_edit(chat_id, message, markup=markup)

    async def _edit_message_media(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        media = params.get("media")
        if not isinstance(media, dict):
            raise _bad("can't parse InputMedia JSON object")
        markup = self._inline_markup(params)
        caption = self._caption_content(media)
        if media.get("type") == "photo":
            sizes = await self._photo_sizes(media.get("media"), uploads, None)
            changes: Json = {"photo": [size.photo_size_json() for size in sizes]}
            data = sizes[-1].data
        elif media.get("type") == "document":
            document = await self._document(media.get("media"), uploads, None)
            changes = {"document": document.document_json()}
            data = document.data
        else:
            raise _bad(f"the fake Telegram server does not support {media.get('type')!r} media")
        target = self._editable(params)
        if target is None:
            return True
        chat_id, message = target
        if "text" in message:
            raise _bad("there is no media in the message to edit")
        changes.update(caption)
        edited = self._commit_edit(
            chat_id,
            message,
            remove=("photo", "document", "has_media_spoiler", *_CAPTION_KEYS),
            changes=changes,
            markup=markup,
        )
        self._sent_files.setdefault(chat_id, []).append(data)
        return edited

    def _check_can_delete(self, chat_id: int, message: Json) -> None:
        chat = self._chat(chat_id)
        if chat["type"] == "private" or message.get("from", {}).get("id") == self.bot_id:
            return
        status, _ = self._members.get((chat_id, self.bot_id), ("member", 0))
        if status not in {"creator", "administrator"}:
            raise _bad("message can't be deleted")

    async def _delete_message(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        chat_id = self._resolve_chat(params)
        try:
            message_id = int(params["message_id"])
        except (KeyError, TypeError, ValueError):
            raise _bad("message identifier is not specified") from None
        message = self._live_message(chat_id, message_id)
        if message is None:
            raise _bad("message to delete not found")
        self._check_can_delete(chat_id, message)
        self._deleted.setdefault(chat_id, set()).add(message_id)
        return True

    async def _delete_messages(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        chat_id = self._resolve_chat(params)
        ids = params.get("message_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise _bad("message_ids must be a non-empty list of at most 100 identifiers")
        found = [
            (int(mid), message)
            for mid in ids
            if (message := self._live_message(chat_id, int(mid))) is not None
        ]
        if not found:
            raise _bad("message to delete not found")
        for message_id, message in found:
            self._check_can_delete(chat_id, message)
            self._deleted.setdefault(chat_id, set()).add(message_id)
        return True

    async def _answer_callback_query(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        query_id = str(params.get("callback_query_id") or "")
        if self._callback_queries.get(query_id, True):
            raise _bad(_QUERY_TOO_OLD.removeprefix("Bad Request: "))
        text = params.get("text")
        if isinstance(text, str) and len(text) > _MAX_CALLBACK_ANSWER:
            raise _bad("MESSAGE_TOO_LONG")
        self._callback_queries[query_id] = True
        return True

    async def _answer_inline_query(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        query_id = str(params.get("inline_query_id") or "")
        if self._inline_queries.get(query_id, True):
            raise _bad(_QUERY_TOO_OLD.removeprefix("Bad Request: "))
        results = params.get("results")
        if not isinstance(results, list) or len(results) > 50:
            raise _bad("can't parse inline query results JSON object")
        ids = [str(result.get("id")) for result in results if isinstance(result, dict)]
        if len(ids) != len(results) or any(not result_id for result_id in ids):
            raise _bad("RESULT_ID_INVALID")
        if len(set(ids)) != len(ids):
            raise _bad("RESULT_ID_DUPLICATE")
        self._inline_queries[query_id] = True
        return True

    @staticmethod
    def _commands_key(scope: Any, language_code: Any) -> tuple[str, str]:
        scope_json = scope if isinstance(scope, dict) else {"type": "default"}
        return json.dumps(scope_json, sort_keys=True), str(language_code or "")

    async def _set_my_commands(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not re.fullmatch(
                r"[a-z0-9_]{1,32}", str(command.get("command", ""))
            ):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad("command description must be 1-256 characters long")
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        self._commands[key] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        return copy.deepcopy(self._commands.get(key, []))

    async def _delete_my_commands(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        self._commands.pop(
            self._commands_key(params.get("scope"), params.get("language_code")), None
        )
        return True

    def _member_json(self, chat_id: int, user_id: int) -> Json:
        status, until_date = self._members.get((chat_id, user_id), ("member", 0))
        member: Json = {"user": self._user_json(user_id), "status": status}
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            member.update(
                can_be_edited=False,
                is_anonymous=False,
                can_manage_chat=True,
                can_delete_messages=True,
                can_manage_video_chats=True,
                can_restrict_members=True,
                can_promote_members=False,
                can_change_info=True,
                can_invite_users=True,
                can_post_stories=True,
                can_edit_stories=True,
                can_delete_stories=True,
                can_pin_messages=True,
                can_manage_topics=False,
            )
        elif status == "restricted":
            member.update(
                is_member=True,
                can_change_info=False,
                can_invite_users=False,
                can_pin_messages=False,
                can_send_messages=False,
                can_send_polls=False,
                can_send_other_messages=False,
                can_add_web_page_previews=False,
                can_manage_topics=False,
                until_date=until_date,
                can_send_audios=False,
                can_send_documents=False,
                can_send_photos=False,
                can_send_videos=False,
                can_send_video_notes=False,
                can_send_voice_notes=False,
                can_edit_tag=False,
                can_react_to_messages=False,
            )
        elif status == "kicked":
            member["until_date"] = until_date
        return member

    async def _get_chat_member(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        chat_id = self._resolve_chat(params)
        user_id = params.get("user_id")
        if not isinstance(user_id, int) or isinstance(user_id, bool):
            raise _bad("invalid user_id specified")
        self._chat(chat_id)
        return self._member_json(chat_id, user_id)

    async def _get_chat_administrators(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        chat_id = self._resolve_chat(params)
        if self._chat(chat_id)["type"] == "private":
            raise _bad("there are no administrators in the private chat")
        admins = [
            (status != "creator", user_id)
            for (member_chat, user_id), (status, _) in self._members.items()
            if member_chat == chat_id and status in {"creator", "administrator"}
        ]
        return [self._member_json(chat_id, user_id) for _, user_id in sorted(admins)]

    async def _get_chat(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        chat = copy.deepcopy(self._chat(self._resolve_chat(params)))
        chat.update(
            accent_color_id=0,
            max_reaction_count=11,
            accepted_gift_types={
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        )
        return chat

    async def _send_chat_action(self, params: Json, uploads: dict[str, _Upload]) -> Any:
        self._chat(self._resolve_chat(params))
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True


def _media_key(value: Any) -> Any:
    """Compares photos/documents by file_unique_id only."""
    if isinstance(value, list):
        return [item.get("file_unique_id") for item in value if isinstance(item, dict)]
    if isinstance(value, dict):
        return value.get("file_unique_id")
    return value


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
