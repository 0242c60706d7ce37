"""Updates the bot does not act on: edited messages and business-account messages.

Editing an earlier message is not a new request (answering it would repeat a hint or start
a second paid edit), and a business message belongs to a business connection the bot does
not answer through. They are stopped before every other handler group; the intake marks
them done like any other update.
"""

from __future__ import annotations

from typing import Final

from telegram import Update
from telegram.ext import Application, ApplicationHandlerStop, MessageHandler, filters

from bot.services import BotContext

GROUP: Final = -100  # before every other handler group
IGNORED: Final = filters.UpdateType.EDITED | filters.UpdateType.BUSINESS_MESSAGES


async def stop(update: Update, context: BotContext) -> None:
    raise ApplicationHandlerStop


def register(application: Application) -> None:  # type: ignore[type-arg]
    application.add_handler(MessageHandler(IGNORED, stop), group=GROUP)
