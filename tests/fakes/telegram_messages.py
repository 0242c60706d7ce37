"""The Bot API methods that send, edit and delete the bot's messages, and its command lists.

Only inline keyboards are echoed back as ``reply_markup`` (the real server does the same;
reply keyboards and force_reply are not part of the returned Message). Editing a message with
the exact same content and markup answers ``message is not modified``; editing the text
without ``reply_markup`` removes the inline keyboard, as on the real server.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any, Final

from tests.fakes.telegram_chats import now
from tests.fakes.telegram_errors import ApiError, Json, NotModelled, bad
from tests.fakes.telegram_files import Upload
from tests.fakes.telegram_text import caption_content, text_content
from tests.fakes.telegram_updates import UpdateFeed

_NOT_MODIFIED: Final = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)


def _inline_markup(params: Json) -> Json | None:
    """Validates ``reply_markup``; returns it if it is an inline keyboard (echoed back)."""
    markup = params.get("reply_markup")
    if markup is None or markup == "":
        return None
    if not isinstance(markup, dict):
        raise bad("can't parse reply keyboard markup JSON object")
    keyboard = markup.get("inline_keyboard")
    if keyboard is None:
        return None
    if not isinstance(keyboard, list) or not all(isinstance(row, list) for row in keyboard):
        raise bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
    for row in keyboard:
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                raise bad(
                    'can\'t parse inline keyboard button: Field "text" must be of type String'
                )
            if "callback_data" in button:
                data = str(button["callback_data"]).encode("utf-8")
                if not 1 <= len(data) <= 64:
                    raise bad("BUTTON_DATA_INVALID")
            elif len(button) < 2:
                raise bad("text buttons are unallowed in the inline keyboard")
    return markup


def _commands_key(scope: Any, language_code: Any) -> tuple[str, str]:
    scope_json = scope if isinstance(scope, dict) else {"type": "default"}
    return json.dumps(scope_json, sort_keys=True), str(language_code or "")


class MessageMethods(UpdateFeed):
    """sendMessage, sendPhoto, sendDocument, sendMediaGroup, editMessageText, deleteMessage(s)
    and setMyCommands."""

    def __init__(self, token: str, username: str) -> None:
        super().__init__(token, username)
        self._commands: dict[tuple[str, str], list[Json]] = {}

    def commands(self, *, scope: Json | None = None, language_code: str = "") -> list[Json]:
        """The bot commands set for a scope/language (as setMyCommands stored them)."""
        return copy.deepcopy(self._commands.get(_commands_key(scope, language_code), []))

    # ------------------------------------------------------------------------ send helpers

    def _reply_to(self, chat_id: int, params: Json) -> Json | None:
        reply_parameters = params.get("reply_parameters")
        if reply_parameters is None:
            return None
        if not isinstance(reply_parameters, dict):
            raise bad("can't parse reply parameters JSON object")
        message_id: Any = reply_parameters.get("message_id")
        allow = bool(reply_parameters.get("allow_sending_without_reply", False))
        if reply_parameters.get("chat_id") not in (None, chat_id):
            chat_id = self._resolve_chat(reply_parameters)
        try:
            target = self._live_message(chat_id, int(message_id))
        except (TypeError, ValueError):
            target = None
        if target is None:
            if allow:
                return None
            raise bad("message to be replied not found")
        replied = copy.deepcopy(target)
        replied.pop("reply_to_message", None)
        return replied

    def _thread(self, chat_id: int, params: Json, reply: Json | None) -> int | None:
        """The forum topic a sent message lands in: ``message_thread_id`` (a topic of this
        forum, else 400), else the topic of the message it replies to, else none (in a forum:
        the General topic, where a reply to a deleted message lands)."""
        value = params.get("message_thread_id")
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad("message thread not found")
            if not self._chat(chat_id).get("is_forum"):
                raise bad("message thread not found")
            self._topic_root(chat_id, value)
            return value
        if reply is not None and reply.get("is_topic_message"):
            return int(reply["message_thread_id"])
        return None

    def _editable(self, params: Json) -> tuple[int, Json]:
        """The stored message an edit targets."""
        chat_id = self._resolve_chat(params)
        message_id = params.get("message_id")
        if message_id is None:
            raise bad("message identifier is not specified")
        message = self._live_message(chat_id, int(message_id))
        if message is None:
            raise bad("message to edit not found")
        if message.get("from", {}).get("id") != self.bot_id:
            raise bad("message can't be edited")
        return chat_id, message

    # ------------------------------------------------------------------------------ methods

    async def _send_message(self, params: Json, uploads: dict[str, Upload]) -> Any:
        chat_id = self._resolve_chat(params)
        content = text_content(params)
        reply = self._reply_to(chat_id, params)
        thread = self._thread(chat_id, params, reply)
        markup = _inline_markup(params)
        return self._bot_message(chat_id, content, reply=reply, markup=markup, thread_id=thread)

    async def _send_photo(self, params: Json, uploads: dict[str, Upload]) -> Any:
        chat_id = self._resolve_chat(params)
        caption = caption_content(params)
        reply = self._reply_to(chat_id, params)
        thread = self._thread(chat_id, params, reply)
        markup = _inline_markup(params)
        sizes = self._photo_sizes(params.get("photo"), uploads, "photo")
        content: Json = {"photo": [size.photo_size_json() for size in sizes], **caption}
        message = self._bot_message(chat_id, content, reply=reply, markup=markup, thread_id=thread)
        self._sent_files.setdefault(chat_id, []).append(sizes[-1].data)
        return message

    async def _send_document(self, params: Json, uploads: dict[str, Upload]) -> Any:
        chat_id = self._resolve_chat(params)
        caption = caption_content(params)
        reply = self._reply_to(chat_id, params)
        thread = self._thread(chat_id, params, reply)
        markup = _inline_markup(params)
        document = self._document(params.get("document"), uploads, "document")
        content: Json = {"document": document.document_json(), **caption}
        message = self._bot_message(chat_id, content, reply=reply, markup=markup, thread_id=thread)
        self._sent_files.setdefault(chat_id, []).append(document.data)
        return message

    async def _send_media_group(self, params: Json, uploads: dict[str, Upload]) -> Any:
        chat_id = self._resolve_chat(params)
        media = params.get("media")
        if not isinstance(media, list) or not all(isinstance(item, dict) for item in media):
            raise bad("can't parse media JSON object")
        if not 2 <= len(media) <= 10:
            raise bad("wrong number of media items: must be 2-10")
        reply = self._reply_to(chat_id, params)
        thread = self._thread(chat_id, params, reply)
        prepared: list[tuple[Json, bytes]] = []
        for item in media:
            unknown = sorted(set(item) - {"type", "media", "caption", "parse_mode"})
            if item.get("type") != "photo" or unknown:
                raise NotModelled(f"media group items other than photos with captions: {item}")
            sizes = self._photo_sizes(item.get("media"), uploads, None)
            content: Json = {"photo": [size.photo_size_json() for size in sizes]}
            prepared.append(({**content, **caption_content(item)}, sizes[-1].data))
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
                    thread_id=thread,
                )
            )
            self._sent_files.setdefault(chat_id, []).append(data)
        return messages

    async def _edit_message_text(self, params: Json, uploads: dict[str, Upload]) -> Any:
        content = text_content(params)
        markup = _inline_markup(params)
        chat_id, message = self._editable(params)
        if "text" not in message:
            raise bad("there is no text in the message to edit")
        edited = copy.deepcopy(message)
        edited.pop("entities", None)
        edited.pop("reply_markup", None)
        edited.update(content)
        if markup is not None:
            edited["reply_markup"] = markup
        if all(edited.get(key) == message.get(key) for key in ("text", "entities", "reply_markup")):
            raise ApiError(400, _NOT_MODIFIED)
        edited["edit_date"] = now()
        self._messages[chat_id][int(message["message_id"])] = edited
        return copy.deepcopy(edited)

    def _delete(self, chat_id: int, message_ids: list[int]) -> bool:
        found = [
            (message_id, message)
            for message_id in message_ids
            if (message := self._live_message(chat_id, message_id)) is not None
        ]
        if not found:
            raise bad("message to delete not found")
        for message_id, message in found:
            if not self._can_delete(chat_id, message):
                raise bad("message can't be deleted")
            self._deleted.setdefault(chat_id, set()).add(message_id)
        return True

    async def _delete_message(self, params: Json, uploads: dict[str, Upload]) -> Any:
        chat_id = self._resolve_chat(params)
        try:
            message_id = int(params["message_id"])
        except (KeyError, TypeError, ValueError):
            raise bad("message identifier is not specified") from None
        return self._delete(chat_id, [message_id])

    async def _delete_messages(self, params: Json, uploads: dict[str, Upload]) -> Any:
        chat_id = self._resolve_chat(params)
        ids = params.get("message_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise bad("message_ids must be a non-empty list of at most 100 identifiers")
        return self._delete(chat_id, [int(message_id) for message_id in ids])

    async def _set_my_commands(self, params: Json, uploads: dict[str, Upload]) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not re.fullmatch(
                r"[a-z0-9_]{1,32}", str(command.get("command", ""))
            ):
                raise bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise bad("command description must be 1-256 characters long")
        # Telegram takes a two-letter ISO 639-1 code only ("pt", never "pt-br" or "pt_BR").
        if not re.fullmatch(r"(?:[a-z]{2})?", str(params.get("language_code") or "")):
            raise bad("invalid language code specified")
        key = _commands_key(params.get("scope"), params.get("language_code"))
        self._commands[key] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True
