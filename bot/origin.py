"""Where a request came from, and answering it there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telegram import Bot, Message, User
from telegram.constants import ChatType

from bot.delivery import reply_to


@dataclass(frozen=True)
class Origin:
    """Where a request came from and where its answers go (a reply to `message_id`).

    `as_group`: sent by an anonymous admin writing as the group itself.
    """

    chat_id: int
    chat_type: str
    message_id: int
    user_id: int
    lang: str
    user_name: str = ""
    as_group: bool = False

    @classmethod
    def of(cls, message: Message, user: User, lang: str) -> Origin:
        sender_chat = message.sender_chat
        as_group = sender_chat is not None and sender_chat.id == message.chat_id
        return cls(
            message.chat_id,
            message.chat.type,
            message.message_id,
            user.id,
            lang,
            user_name=(sender_chat.title or "") if as_group and sender_chat else user.full_name,
            as_group=as_group,
        )

    @classmethod
    def of_press(cls, message: Message, user: User, lang: str) -> Origin:
        """A button press under `message` (the bot's): answers go under that message."""
        return cls(
            message.chat_id,
            message.chat.type,
            message.message_id,
            user.id,
            lang,
            user_name=user.full_name,
        )

    @property
    def group(self) -> bool:
        return self.chat_type != ChatType.PRIVATE


async def answer(bot: Bot, origin: Origin, text: str, **kwargs: Any) -> Message:
    """Send `text` as a reply to the origin message (still sent if that was deleted)."""
    return await bot.send_message(
        origin.chat_id,
        text,
        reply_parameters=reply_to(origin.message_id),
        **kwargs,
    )
