"""What nothing else handled: unknown commands and buttons, and unexpected errors."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application, CallbackQueryHandler, MessageHandler, filters

from bot.handlers.common import answer_press, incoming, reply
from bot.services import BotContext

log = logging.getLogger(__name__)


async def unknown_command(update: Update, context: BotContext) -> None:
    """A command the bot does not know (private chats only)."""
    asked = await incoming(update, context)
    if asked is None:
        return
    await reply(asked.message, asked.tr("error.unknown_command"))


async def unknown_button(update: Update, context: BotContext) -> None:
    """A button press with data no handler understands (stale or forged)."""
    query = update.callback_query
    if query is None:
        return
    services = context.services
    lang = await services.lang_for(update.effective_user, update.effective_chat)
    await answer_press(query, services.tr(lang, "error.unknown_button"))


async def on_error(update: object, context: BotContext) -> None:
    """Log the failure and tell the user something went wrong, without details."""
    log.error("handler failed", exc_info=context.error)
    if not isinstance(update, Update) or update.effective_message is None:
        return
    services = context.services
    try:
        await reply(
            update.effective_message,
            services.tr(services.lang_of(update.effective_user), "error.internal"),
        )
    except TelegramError:
        log.warning("could not report the failure to the user")


def register(application: Application) -> None:  # type: ignore[type-arg]
    application.add_handler(
        MessageHandler(filters.ChatType.PRIVATE & filters.COMMAND, unknown_command)
    )
    application.add_handler(CallbackQueryHandler(unknown_button))
    application.add_error_handler(on_error)
