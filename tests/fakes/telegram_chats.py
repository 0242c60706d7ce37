"""Users, chats, chat members and the messages of every chat (existing or deleted)."""

from __future__ import annotations

import copy
import time
from typing import Any, Final

from tests.fakes.telegram_errors import ApiError, Json, NotModelled, bad
from tests.fakes.telegram_files import FileStore, Upload

_CHAT_MEMBER_STATUSES: Final = frozenset(
    {"creator", "administrator", "member", "restricted", "left", "kicked"}
)


def now() -> int:
    return int(time.time())


class ChatState(FileStore):
    """The bot, the users and chats it knows, and every message of those chats."""

    def __init__(self, token: str, username: str) -> None:
        bot_id, _, secret = token.partition(":")
        if not bot_id.isdigit() or not secret:
            raise ValueError(f"not a bot token: {token!r}")
        super().__init__(int(bot_id))
        self.token = token
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
        self._users: dict[int, Json] = {self.bot_id: self._bot_short()}
        self._chats: dict[int, Json] = {}
        self._messages: dict[int, dict[int, Json]] = {}
        self._deleted: dict[int, set[int]] = {}
        self._last_message_id: dict[int, int] = {}
        self._sent_files: dict[int, list[bytes]] = {}
        self._blocked: dict[int, str] = {}
        self._members: dict[tuple[int, int], tuple[str, int]] = {}
        self._topics: dict[int, dict[int, Json]] = {}
        """Forum topics by chat: thread id -> the ``forum_topic_created`` service message."""

    # ------------------------------------------------------------------------- model control

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

    def register_chat(
        self,
        chat_id: int,
        *,
        chat_type: str | None = None,
        title: str | None = None,
        is_forum: bool = False,
    ) -> Json:
        """Registers (or re-describes) a chat; by default positive ids are private chats (named
        after the user of that id) and negative ids supergroups. `is_forum`: a supergroup with
        topics enabled (see `create_topic`)."""
        kind = chat_type or ("private" if chat_id > 0 else "supergroup")
        if is_forum and kind != "supergroup":
            raise ValueError("only supergroups have topics")
        chat: Json = {"id": chat_id, "type": kind}
        if kind == "private":
            user = self._users.get(chat_id, {})
            chat["first_name"] = user.get("first_name") or f"User {chat_id}"
            chat.update({key: user[key] for key in ("last_name", "username") if key in user})
        else:
            chat["title"] = title or f"Test {kind.capitalize()} {abs(chat_id)}"
        if is_forum:
            chat["is_forum"] = True
        self._chats[chat_id] = chat
        return copy.deepcopy(chat)

    def create_topic(self, chat_id: int, name: str, *, creator: Json | int = 1) -> int:
        """Creates a topic in a forum supergroup (registered as one if new) and returns its
        thread id: like on Telegram, the id of the ``forum_topic_created`` service message
        that opens it."""
        chat = self._chats.get(chat_id)
        if chat is None or not chat.get("is_forum"):
            title = chat.get("title") if chat else None
            self.register_chat(chat_id, chat_type="supergroup", title=title, is_forum=True)
        thread_id = self._next_message_id(chat_id)
        service: Json = {
            "message_id": thread_id,
            "from": self._as_user(creator),
            "chat": copy.deepcopy(self._chats[chat_id]),
            "date": now(),
            "message_thread_id": thread_id,
            "is_topic_message": True,
            "forum_topic_created": {"name": name, "icon_color": 7322096},
        }
        self._store_message(chat_id, service)
        self._topics.setdefault(chat_id, {})[thread_id] = service
        return thread_id

    def set_chat_member(
        self, chat_id: int, user_id: int, status: str, *, until_date: int = 0
    ) -> None:
        """Sets what getChatMember answers for a user (or the bot itself) in a chat."""
        if status not in _CHAT_MEMBER_STATUSES:
            raise ValueError(f"unknown chat member status {status!r}")
        self._members[(chat_id, user_id)] = (status, until_date)

    def user_deletes(self, chat_id: int, message_id: int) -> None:
        """Someone in the chat deletes a message (no update reaches the bot): it can no
        longer be replied to or edited."""
        if self._live_message(chat_id, message_id) is None:
            raise ValueError(f"no message {message_id} in chat {chat_id}")
        self._deleted.setdefault(chat_id, set()).add(message_id)

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

    # ----------------------------------------------------------------------------- inspection

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

    def _chat(self, chat_id: int) -> Json:
        chat = self._chats.get(chat_id)
        if chat is None:
            self.register_chat(chat_id)
            chat = self._chats[chat_id]
        return chat

    def _resolve_chat(self, params: Json) -> int:
        value = params.get("chat_id")
        if value is None or value == "":
            raise bad("chat_id is empty")
        if isinstance(value, bool):
            raise bad("chat not found")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            if value.lstrip("-").isdigit():
                return int(value)
            if value.startswith("@"):
                raise NotModelled("chats addressed by @username")
        raise bad("chat not found")

    def _check_blocked(self, params: Json) -> None:
        try:
            chat_id = self._resolve_chat(params)
        except ApiError:
            return  # the method itself reports the bad chat_id
        if chat_id in self._blocked:
            raise ApiError(403, self._blocked[chat_id])

    def _topic_root(self, chat_id: int, thread_id: int) -> Json:
        """The service message opening a topic; 400 for a thread the chat does not have."""
        root = self._topics.get(chat_id, {}).get(thread_id)
        if root is None:
            raise bad("message thread not found")
        return root

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

    def _bot_message(
        self,
        chat_id: int,
        content: Json,
        *,
        reply: Json | None,
        markup: Json | None,
        media_group_id: str | None = None,
        thread_id: int | None = None,
    ) -> Json:
        message: Json = {
            "message_id": self._next_message_id(chat_id),
            "from": self._bot_short(),
            "chat": copy.deepcopy(self._chat(chat_id)),
            "date": now(),
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        if reply is not None:
            message["reply_to_message"] = reply
        elif thread_id is not None:
            # Telegram shows a topic message that replies to nothing as a reply to the
            # service message that opened the topic.
            root = copy.deepcopy(self._topic_root(chat_id, thread_id))
            root.pop("reply_to_message", None)
            message["reply_to_message"] = root
        if media_group_id is not None:
            message["media_group_id"] = media_group_id
        message.update(content)
        if markup is not None:
            message["reply_markup"] = markup
        self._store_message(chat_id, message)
        return copy.deepcopy(message)

    def _can_delete(self, chat_id: int, message: Json) -> bool:
        if self._chat(chat_id)["type"] == "private":
            return True
        if message.get("from", {}).get("id") == self.bot_id:
            return True
        status, _ = self._members.get((chat_id, self.bot_id), ("member", 0))
        return status in {"creator", "administrator"}

    # ---------------------------------------------------------------------------- members

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

    async def _get_me(self, params: Json, uploads: dict[str, Upload]) -> Any:
        return copy.deepcopy(self.bot_user)

    async def _get_chat_member(self, params: Json, uploads: dict[str, Upload]) -> Any:
        chat_id = self._resolve_chat(params)
        user_id = params.get("user_id")
        if not isinstance(user_id, int) or isinstance(user_id, bool):
            raise bad("invalid user_id specified")
        self._chat(chat_id)
        return self._member_json(chat_id, user_id)
