"""Group admins remove a result the bot posted: the 🗑 Remove button under it, or /remove as a
reply to it. Members pressing the button are refused; the removal is kept on the edit (for
/modlog, and so that the result is never sent again: `bot.policy.resend_refusal`).

What is deleted comes from the database, never from the button: every message recorded as
carrying that edit's result in this chat (`db.result_messages`: the delivery, /history
reposts, "As file"), and only when the pressed (or replied-to) message is one of them.

Bots may delete their own messages (within 48 hours of sending); when Telegram still refuses
(400 "message can't be deleted") the admin is told to give the bot the right to delete.
"""

from __future__ import annotations

import logging
import time

from telegram import Bot, Update, User
from telegram.error import BadRequest, Forbidden
from telegram.ext import Application, CallbackQueryHandler, CommandHandler

from bot.buttons import REMOVE_PATTERN, parse_remove
from bot.handlers.common import admin_command, answer_press, carries_result, edit_press, reply
from bot.origin import replied_to
from bot.services import BotContext, Services

log = logging.getLogger(__name__)


async def delete_result(bot: Bot, chat_id: int, message_ids: list[int]) -> str:
    """Delete the result messages; the catalog key of the outcome (Telegram's 400/403 mapped)."""
    try:
        await bot.delete_messages(chat_id, sorted(set(message_ids)))
    except BadRequest as exc:
        if "not found" in exc.message.lower():
            return "remove.gone"
        log.info("result not removed", extra={"chat_id": chat_id, "error": exc.message})
        return "remove.no_rights"
    except Forbidden as exc:
        log.info("result not removed", extra={"chat_id": chat_id, "error": exc.message})
        return "remove.no_rights"
    return "remove.done"


async def remove_result(
    bot: Bot, services: Services, edit_id: int, chat_id: int, admin: User
) -> str:
    """Delete every recorded message of the edit's result in the chat and note the removal
    (also when they were gone already); the catalog key of the outcome."""
    message_ids = await services.db.result_messages.of_edit(edit_id, chat_id)
    outcome = await delete_result(bot, chat_id, message_ids)
    if outcome != "remove.no_rights":
        await services.edits.note_removal(edit_id, by_name=admin.full_name, at=time.time())
        log.info("result removed", extra={"edit_id": edit_id, "admin_id": admin.id})
    return outcome


async def on_remove_button(update: Update, context: BotContext) -> None:
    """🗑 Remove under a result: admins only; deletes the result's messages."""
    pressed = await edit_press(
        update,
        context,
        parse_remove,
        lambda edit_id: edit_id,
        made_for=carries_result,
        admins_only="remove.admins_only",
    )
    if pressed is None:
        return
    services = context.services
    query, message, edit, _edit_id, lang = pressed
    outcome = await remove_result(context.bot, services, edit.id, message.chat_id, query.from_user)
    await answer_press(query, services.tr(lang, outcome), alert=outcome == "remove.no_rights")


async def remove_command(update: Update, context: BotContext) -> None:
    """/remove as a reply to a result of the bot: admins only."""
    checked = await admin_command(update, context, refusal="remove.admins_only")
    if checked is None:
        return
    message, user, services, lang = checked.message, checked.user, checked.services, checked.lang
    target = replied_to(message)
    edit_id = None
    if target is not None:
        edit_id = await services.db.result_messages.edit_of(message.chat_id, target.message_id)
    if edit_id is None:
        await reply(message, services.tr(lang, "remove.usage"))
        return
    outcome = await remove_result(context.bot, services, edit_id, message.chat_id, user)
    await reply(message, services.tr(lang, outcome))


def register(application: Application) -> None:  # type: ignore[type-arg]
    application.add_handler(CommandHandler("remove", remove_command))
    # Before results.register: its pattern (any r1: button) would take these too.
    application.add_handler(CallbackQueryHandler(on_remove_button, pattern=REMOVE_PATTERN))
