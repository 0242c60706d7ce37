"""Where a request came from, who asked, and answering it there.

Who asked (the "actor") is decided here, once, for every consumer (bans, who may edit,
approval, limits, pending prompts, /ban by reply, history): the user who sent the message,
or the chat it was sent as (`sender_chat`). A member posting "as a channel" is that channel
(its id, negative like every chat id, and its title), never the user behind it and never
Telegram's shared placeholder account for channel posts. An anonymous admin writing as the
group itself is the group, an admin of it. Telegram's service account (777000: posts of a
linked channel automatically forwarded into its discussion group) is nobody: such a message
asks the bot for nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from telegram import Bot, Message, User
from telegram.constants import ChatType

from bot.delivery import reply_to

SERVICE_ACCOUNT_ID: Final = 777000  # "Telegram": automatic forwards, service notices


class Actor(NamedTuple):
    """Who a message speaks for: a user id, or a chat id (below zero) with its title."""

    id: int
    name: str


def actor_of(message: Message, user: User) -> Actor | None:
    """Who sent `message` (`user` is its `from`): None for an automatic forward of a linked
    channel's post or anything else from Telegram's service account."""
    if message.is_automatic_forward or user.id == SERVICE_ACCOUNT_ID:
        return None
    sender = message.sender_chat
    if sender is not None:
        return Actor(sender.id, sender.title or sender.effective_name or str(sender.id))
    return Actor(user.id, user.full_name)


def topic_of(message: Message) -> int | None:
    """The forum topic `message` is in (its `message_thread_id`), or None outside topics.

    Only a topic message's thread id names a topic: in a group without topics the field is
    the first message of a reply chain, which Telegram refuses as a thread to send to.
    """
    return message.message_thread_id if message.is_topic_message else None


def replied_to(message: Message) -> Message | None:
    """The message `message` replies to, or None.

    In a forum topic, Telegram shows a message that replies to nothing as a reply to the
    service message that opened the topic: that is no reply (to /ban its creator, say).
    """
    replied = message.reply_to_message
    if replied is None or replied.forum_topic_created is not None:
        return None
    return replied


@dataclass(frozen=True)
class Origin:
    """Where a request came from and where its answers go (a reply to `message_id`, in the
    forum topic `thread_id`).

    `user_id` is the actor's id (see the module doc): a user, or the chat the message was
    sent as. Answers name the topic as well as the message they reply to: a reply to a
    deleted message (still sent) would otherwise land in the forum's General topic.
    """

    chat_id: int
    chat_type: str
    message_id: int
    user_id: int
    lang: str
    user_name: str = ""
    thread_id: int | None = None

    @classmethod
    def of(cls, message: Message, user: User, lang: str) -> Origin | None:
        """The origin of `message`, or None when it speaks for nobody (`actor_of`)."""
        actor = actor_of(message, user)
        if actor is None:
            return None
        return cls(
            message.chat_id,
            message.chat.type,
            message.message_id,
            actor.id,
            lang,
            user_name=actor.name,
            thread_id=topic_of(message),
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
            thread_id=topic_of(message),
        )

    @property
    def group(self) -> bool:
        return self.chat_type != ChatType.PRIVATE

    @property
    def as_group(self) -> bool:
        """An anonymous admin, writing as the group itself: an admin of it."""
        return self.group and self.user_id == self.chat_id


async def answer(bot: Bot, origin: Origin, text: str, **kwargs: Any) -> Message:
    """Send `text` as a reply to the origin message (still sent if that was deleted), in its
    forum topic."""
    return await bot.send_message(
        origin.chat_id,
        text,
        reply_parameters=reply_to(origin.message_id),
        message_thread_id=origin.thread_id,
        **kwargs,
    )
