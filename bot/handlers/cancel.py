"""/cancel: stop the user's latest edit in progress here, and any question the bot asked.

None of the documented provider APIs can cancel a task, so cancelling is a state change in
the database only: a task already sent may still finish at the provider, but its result is
never sent (the edit leaves `submitting`/`submitted` for `cancelled`, and results are only
accepted from those two states).
"""

from __future__ import annotations

import logging

from telegram import Bot, Update
from telegram.error import BadRequest
from telegram.ext import Application, CommandHandler

from bot.handlers.common import reply
from bot.handlers.edit import PENDING_PROMPT_MAX_AGE
from bot.services import BotContext
from domain.edit import Edit

log = logging.getLogger(__name__)


async def cancel_command(update: Update, context: BotContext) -> None:
    """Cancel the user's latest edit in progress in this chat (or say there is none)."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    services = context.services
    lang = await services.lang_for(user, message.chat)
    outcome = await services.edits.cancel_latest(user.id, message.chat_id)
    if outcome is not None:
        edit, sent = outcome
        await _mark_status(context.bot, edit, services.tr(edit.lang, "cancel.status"))
        await reply(
            message, services.tr(lang, "cancel.done_sent" if sent else "cancel.done_queued")
        )
        return
    asked_setting = await services.prefs.drop_input(message.chat_id, user.id)
    asked_prompt = await services.db.prompts.take(
        message.chat_id, user.id, max_age=PENDING_PROMPT_MAX_AGE
    )
    if asked_setting or asked_prompt is not None:
        await reply(message, services.tr(lang, "cancel.input"))
        return
    await reply(message, services.tr(lang, "cancel.nothing"))


async def _mark_status(bot: Bot, edit: Edit, text: str) -> None:
    """Turn the edit's "Editing…" message (or its approval request, dropping the Approve and
    Reject buttons) into "Cancelled" (it may be gone: fine)."""
    message_id = edit.status_message_id or edit.approval_message_id
    if message_id is None:
        return
    try:
        await bot.edit_message_text(text, chat_id=edit.chat_id, message_id=message_id)
    except BadRequest as exc:
        log.info("status message not updated", extra={"edit_id": edit.id, "error": exc.message})


def register(application: Application) -> None:  # type: ignore[type-arg]
    application.add_handler(CommandHandler("cancel", cancel_command))
