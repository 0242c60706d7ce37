"""/start and /help: what the bot does and how to use it."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import Application, CommandHandler

from bot.handlers.common import incoming, reply
from bot.services import BotContext


async def start(update: Update, context: BotContext) -> None:
    """Greet the user and explain the bot."""
    asked = await incoming(update, context)
    if asked is None:
        return
    await reply(asked.message, asked.tr("start.text"), parse_mode=ParseMode.HTML)


async def help_command(update: Update, context: BotContext) -> None:
    """Explain every way to ask for an edit."""
    asked = await incoming(update, context)
    if asked is None:
        return
    text = asked.tr("help.text", bot=context.bot.username) + "\n\n" + asked.tr("help.imagine")
    await reply(asked.message, text, parse_mode=ParseMode.HTML)


def register(application: Application) -> None:  # type: ignore[type-arg]
    application.add_handler(CommandHandler("start", start))
    application.add_handler(CommandHandler("help", help_command))
