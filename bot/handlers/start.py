"""/start and /help: what the bot does and how to use it."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import Application, CommandHandler

from bot.handlers.common import reply
from bot.services import BotContext


async def start(update: Update, context: BotContext) -> None:
    """Greet the user and explain the bot."""
    message = update.effective_message
    if message is None:
        return
    services = context.services
    lang = await services.lang_for(update.effective_user, message.chat)
    await reply(message, services.tr(lang, "start.text"), parse_mode=ParseMode.HTML)


async def help_command(update: Update, context: BotContext) -> None:
    """Explain every way to ask for an edit."""
    message = update.effective_message
    if message is None:
        return
    services = context.services
    lang = await services.lang_for(update.effective_user, message.chat)
    text = services.tr(lang, "help.text", bot=context.bot.username)
    await reply(message, text, parse_mode=ParseMode.HTML)


def register(application: Application) -> None:  # type: ignore[type-arg]
    application.add_handler(CommandHandler("start", start))
    application.add_handler(CommandHandler("help", help_command))
