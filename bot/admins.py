"""Who may change a group's settings: its administrators (asked with getChatMember, cached)."""

from __future__ import annotations

import logging
import time

from telegram import Bot, Chat
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import BadRequest, Forbidden

log = logging.getLogger(__name__)

ADMIN_TTL = 300.0
CACHE_MAX = 10_000
ADMIN_STATUSES = frozenset({ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR})


class AdminCache:
    """Answers "is this user an admin of this chat?", remembering answers for a few minutes."""

    def __init__(self, ttl: float = ADMIN_TTL, max_entries: int = CACHE_MAX) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._answers: dict[tuple[int, int], tuple[float, bool]] = {}

    async def may_change(
        self, bot: Bot, chat: Chat, user_id: int, *, sender_chat: Chat | None = None
    ) -> bool:
        """Private chats belong to their user; in groups only admins (anonymous ones too).

        `user_id` is a user or an actor (`bot.origin`): the group's own id is an anonymous
        admin. A message sent as a chat (`sender_chat`) speaks for that chat, whoever wrote it.
        """
        if chat.type == ChatType.PRIVATE:
            return True
        if sender_chat is not None:
            return sender_chat.id == chat.id
        if user_id == chat.id:
            return True  # an anonymous admin writing as the group
        return await self.is_admin(bot, chat.id, user_id)

    async def is_admin(self, bot: Bot, chat_id: int, user_id: int) -> bool:
        """Whether `user_id` administers the chat; a chat's id (a channel posting in the group,
        below zero like every chat id) never does, and is not looked up."""
        if user_id < 0:
            return False
        key = (chat_id, user_id)
        entry = self._answers.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        try:
            member = await bot.get_chat_member(chat_id, user_id)
        except (BadRequest, Forbidden) as exc:
            log.info("chat member lookup refused", extra={"chat_id": chat_id, "error": exc.message})
            return False  # not cached: the bot may just have been added
        answer = member.status in ADMIN_STATUSES
        self._answers.pop(key, None)
        while len(self._answers) >= self.max_entries:
            self._answers.pop(next(iter(self._answers)))
        self._answers[key] = (time.monotonic() + self.ttl, answer)
        return answer

    def forget(self, chat_id: int, user_id: int) -> None:
        self._answers.pop((chat_id, user_id), None)
