"""An edit's status message rewritten to say where the edit is (`Progress`).

One line says where the edit is; a second says how long it should still take, when known
(texts from the message catalogs). Each rewrite is tried once: a refusal (the message is
gone, already says this, flood control) leaves it as it was, and the next news takes the
next turn rather than waiting out a flood wait.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from functools import partial

from telegram import Bot
from telegram.error import TelegramError

from bot.i18n import Translator
from bot.lifecycle.context import Progress
from bot.rewrite import any_error, rewrite
from domain.edit import Edit

log = logging.getLogger(__name__)


async def show_status(bot: Bot, translator: Translator, edit: Edit, progress: Progress) -> None:
    if edit.status_message_id is None:
        return
    text = status_text(translator, edit, progress)
    # Optional: progress never queues ahead of results under Telegram's flood limits.
    await rewrite(
        bot, edit.chat_id, edit.status_message_id, text, tolerate=any_error, optional=True
    )


async def clear_status(bot: Bot, edit: Edit) -> None:
    """The result is out: the status message goes (best effort)."""
    if edit.status_message_id is None:
        return
    try:
        await bot.delete_message(edit.chat_id, edit.status_message_id)
    except TelegramError:
        log.info("status message already gone", extra={"edit_id": edit.id})


async def show_place(
    bot: Bot, translator: Translator, edit: Edit, position: int, wait: float
) -> None:
    """The edit waits for its provider account's turn: its place in line and a rough wait."""
    if edit.status_message_id is None:
        return
    tr = partial(translator.tr, edit.lang)
    head = tr("imagine.queued" if not edit.inputs else "edit.queued")
    text = f"{head}\n{tr('edit.in_line', position=position, seconds=math.ceil(wait))}"
    await rewrite(
        bot, edit.chat_id, edit.status_message_id, text, tolerate=any_error, optional=True
    )


def status_text(translator: Translator, edit: Edit, progress: Progress) -> str:
    tr = partial(translator.tr, edit.lang)
    left = progress.left
    if progress.stage == "busy":
        return tr("status.busy", time=_duration(tr, left or 0))
    drawing = not edit.inputs  # /imagine: no photo to speak of
    if progress.stage == "sent":
        head = tr("status.sent")
    elif progress.percent is not None:
        head = tr("status.drawing" if drawing else "status.running", percent=progress.percent)
    else:
        head = tr("imagine.queued" if drawing else "edit.queued")
    if left is None:
        return head
    tail = tr("status.soon") if left == 0 else tr("status.eta", time=_duration(tr, left))
    return f"{head}\n{tail}"


def _duration(tr: Callable[..., str], seconds: int) -> str:
    """`Progress.left` in words: seconds below a minute, whole minutes above."""
    if seconds < 60:
        return tr("status.seconds", n=max(seconds, 1))
    return tr("status.minutes", n=seconds // 60)
