"""Group admins remove a result the bot posted: the 🗑 Remove button under it, or /remove as a
reply to it. Members pressing the button are refused; the removal is kept for /modlog.

Bots may delete their own messages (within 48 hours of sending); when Telegram still refuses
(400 "message can't be deleted") the admin is told to give the bot the right to delete.
"""

from __future__ import annotations

import logging
import time

from telegram import Bot, Message, Update, User
from telegram.error import BadRequest, Forbidden
from telegram.ext import Application, CallbackQueryHandler, CommandHandler

from bot.buttons import REMOVE_PATTERN, RemovePress, parse_remove
from bot.handlers.common import admin_command, answer_press, edit_press, reply
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


async def _record(services: Services, edit_id: int, chat_id: int, admin: User) -> None:
    """Note who removed the result (for /modlog)."""
    edit = await services.db.edits.get(edit_id)
    if edit is None or edit.chat_id != chat_id:
        return
    await services.edits.note_removal(edit_id, by_name=admin.full_name, at=time.time())
    log.info("result removed", extra={"edit_id": edit_id, "admin_id": admin.id})


async def on_remove_button(update: Update, context: BotContext) -> None:
    """🗑 Remove under a result: admins only; deletes the result's messages."""
    pressed = await edit_press(
        update,
        context,
        parse_remove,
        lambda press: press.edit_id,
        admins_only="remove.admins_only",
    )
    if pressed is None:
        return
    services = context.services
    query, message, edit, press, lang = pressed
    ids = [message.message_id, *press.others]
    outcome = await delete_result(context.bot, message.chat_id, ids)
    if outcome == "remove.done":
        await _record(services, edit.id, message.chat_id, query.from_user)
    await answer_press(query, services.tr(lang, outcome), alert=outcome == "remove.no_rights")


async def remove_command(update: Update, context: BotContext) -> None:
    """/remove as a reply to a message of the bot (a result): admins only."""
    checked = await admin_command(update, context, refusal="remove.admins_only")
    if checked is None:
        return
    message, user, services, lang = checked.message, checked.user, checked.services, checked.lang
    target = message.reply_to_message
    if target is None or target.from_user is None or target.from_user.id != context.bot.id:
        await reply(message, services.tr(lang, "remove.usage"))
        return
    press = _result_buttons(target)
    ids = [target.message_id, *(press.others if press else ())]
    outcome = await delete_result(context.bot, message.chat_id, ids)
    if outcome == "remove.done" and press is not None:
        await _record(services, press.edit_id, message.chat_id, user)
    await reply(message, services.tr(lang, outcome))


def _result_buttons(message: Message) -> RemovePress | None:
    """The result a message carries buttons of (its other messages too), if any."""
    markup = message.reply_markup
    if markup is None:
        return None
    for row in markup.inline_keyboard:
        for button in row:
            if isinstance(button.callback_data, str):
                press = parse_remove(button.callback_data)
                if press is not None:
                    return press
    return None


def register(application: Application) -> None:  # type: ignore[type-arg]
    application.add_handler(CommandHandler("remove", remove_command))
    # Before results.register: its pattern (any r1: button) would take these too.
    application.add_handler(CallbackQueryHandler(on_remove_button, pattern=REMOVE_PATTERN))
