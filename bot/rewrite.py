"""Rewriting a message the bot sent (its text and buttons), where Telegram may refuse.

The message may be gone, too old to edit, or already say the same thing; which refusals are
only logged is the caller's choice (`tolerate`), anything else is raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from telegram import Bot, InlineKeyboardMarkup, Message
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError

from bot.telegram_limits import limit_args

log = logging.getLogger(__name__)


def refused(exc: TelegramError) -> bool:
    """Telegram refused this edit (400): the message is gone, too old, or unchanged."""
    return isinstance(exc, BadRequest)


def unchanged(exc: TelegramError) -> bool:
    """The message already shows this (pressing the current value again)."""
    return isinstance(exc, BadRequest) and "not modified" in exc.message.lower()


def any_error(exc: TelegramError) -> bool:
    """Best effort: nothing about this edit is worth failing for."""
    return True


async def redraw(bot: Bot, menu: Message, view: tuple[str, InlineKeyboardMarkup | None]) -> None:
    """Show a menu's new view (HTML text and buttons) in place; pressing the current value
    again changes nothing."""
    text, markup = view
    await rewrite(
        bot, menu.chat_id, menu.message_id, text, html=True, markup=markup, tolerate=unchanged
    )


async def rewrite(
    bot: Bot,
    chat_id: int,
    message_id: int,
    text: str,
    *,
    html: bool = False,
    markup: InlineKeyboardMarkup | None = None,
    tolerate: Callable[[TelegramError], bool] = refused,
    optional: bool = False,
) -> bool:
    """Replace the message's text and buttons (none unless `markup`); False if a tolerated
    refusal left it as it was. `optional`: dropped (`Crowded`, a TelegramError) rather than
    queued when its chat or the bot has no room under Telegram's limits now
    (bot/telegram_limits.py)."""
    try:
        await bot.edit_message_text(
            text,
            chat_id=chat_id,
            message_id=message_id,
            parse_mode=ParseMode.HTML if html else None,
            reply_markup=markup,
            **limit_args(bot, optional=optional),
        )
    except TelegramError as exc:
        if not tolerate(exc):
            raise
        log.info(
            "message not rewritten",
            extra={"chat_id": chat_id, "message_id": message_id, "error": exc.message},
        )
        return False
    return True
