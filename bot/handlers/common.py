"""Helpers shared by handlers: who is asking and in what language, answering messages and
button presses, and resolving a press that names an edit."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from telegram import CallbackQuery, Message, Update, User
from telegram.constants import ChatType
from telegram.error import BadRequest

from bot.buttons import shorten
from bot.delivery import reply_to
from bot.origin import Origin
from bot.services import BotContext, Services
from domain.edit import Edit

CALLBACK_ANSWER_MAX = 200

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Incoming:
    """A message for a handler, with who sent it, the services and where answers go (the
    origin carries the reply language)."""

    message: Message
    user: User
    services: Services
    origin: Origin

    @property
    def lang(self) -> str:
        return self.origin.lang

    def tr(self, key: str, **params: Any) -> str:
        return self.services.tr(self.origin.lang, key, **params)


async def incoming(update: Update, context: BotContext) -> Incoming | None:
    """The update's message and sender, in the reader's language; None for an update without
    both, or one that speaks for nobody (an automatic forward from a linked channel: see
    `bot.origin`)."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return None
    services = context.services
    origin = Origin.of(message, user, await services.lang_for(user, message.chat))
    return None if origin is None else Incoming(message, user, services, origin)


async def reply(message: Message, text: str, **kwargs: Any) -> Message:
    """Answer a message as a reply to it, still sent if the message was deleted meanwhile."""
    return await message.reply_text(
        text,
        reply_parameters=reply_to(message.message_id),
        **kwargs,
    )


async def answer_press(
    query: CallbackQuery, text: str | None = None, *, alert: bool = False
) -> None:
    """Answer a button press (once: a repeated update finds it answered, which is only logged)."""
    if text is not None:
        text = shorten(text, CALLBACK_ANSWER_MAX)
    try:
        await query.answer(text, show_alert=alert)
    except BadRequest as exc:
        if not query_expired(exc):
            raise
        log.info("button press answered before", extra={"query_id": query.id})


def query_expired(exc: BadRequest) -> bool:
    """Telegram refused to answer a button press or inline query: it was answered already,
    or the answer came too late for the user to see it. Nothing is left to do about it."""
    return "query is too old" in exc.message.lower()


async def admin_command(
    update: Update, context: BotContext, *, refusal: str = "moderation.admins_only"
) -> Incoming | None:
    """The command if a group admin sent it (anonymous admins included); otherwise answer
    why not (catalog key `refusal`) and return None."""
    asked = await incoming(update, context)
    if asked is None:
        return None
    message, services = asked.message, asked.services
    if message.chat.type == ChatType.PRIVATE:
        await reply(message, asked.tr("moderation.groups_only"))
        return None
    if not await services.admins.may_change(context.bot, message.chat, asked.origin.user_id):
        await reply(message, asked.tr(refusal))
        return None
    return asked


P = TypeVar("P")
# Whether the pressed message is one the button's edit made (see `edit_press`).
MadeFor = Callable[[Services, Message, Edit], Awaitable[bool]]


async def carries_result(services: Services, message: Message, edit: Edit) -> bool:
    """The pressed message is one the bot posted with this edit's result (as recorded)."""
    found = await services.db.result_messages.edit_of(message.chat_id, message.message_id)
    return found == edit.id


class EditPress(NamedTuple, Generic[P]):
    """A button press about one edit, resolved: who pressed, where, which edit, what data
    (unpacks as `query, message, edit, data, lang`)."""

    query: CallbackQuery
    message: Message
    edit: Edit
    data: P
    lang: str

    @property
    def origin(self) -> Origin:
        """Answers to the press go under the pressed message."""
        return Origin.of_press(self.message, self.query.from_user, self.lang)


async def edit_press(
    update: Update,
    context: BotContext,
    parse: Callable[[str], P | None],
    edit_id: Callable[[P], int],
    *,
    own_anywhere: bool = False,
    made_for: MadeFor | None = None,
    admins_only: str | None = None,
) -> EditPress[P] | None:
    """Resolve a button press naming an edit; answer stale or forged presses and return None.

    Callback data may be forged, so the edit it names is checked against the database: it
    must belong to the chat the button is in (`own_anywhere`: in the presser's private chat,
    any edit of theirs, as /history lists there), and with `made_for`, the pressed message
    must be one that edit made; anything else is refused like an unknown button. With
    `admins_only` (a catalog key), only the chat's admins may press it; anyone else is told
    so in an alert.
    """
    query = update.callback_query
    if query is None or query.data is None:
        return None
    services = context.services
    message = query.message
    lang = await services.lang_for(query.from_user, message.chat if message else None)
    data = parse(query.data)
    edit = await services.db.edits.get(edit_id(data)) if data is not None else None
    if (
        data is None
        or edit is None
        or not isinstance(message, Message)
        or not _in_chat(edit, message, query.from_user, own_anywhere)
        or (made_for is not None and not await made_for(services, message, edit))
    ):
        await answer_press(query, services.tr(lang, "error.unknown_button"))
        return None
    if admins_only is not None and not await services.admins.may_change(
        context.bot, message.chat, query.from_user.id
    ):
        await answer_press(query, services.tr(lang, admins_only), alert=True)
        return None
    return EditPress(query, message, edit, data, lang)


def _in_chat(edit: Edit, message: Message, presser: User, own_anywhere: bool) -> bool:
    """The edit belongs to the chat of the pressed message (or, `own_anywhere`, is the
    presser's own and the press is in their private chat)."""
    if edit.chat_id == message.chat_id:
        return True
    private = message.chat.type == ChatType.PRIVATE
    return own_anywhere and private and edit.user_id == presser.id
