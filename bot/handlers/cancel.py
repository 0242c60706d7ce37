"""/cancel: stop the user's latest edit in progress here, and any question the bot asked.

None of the documented provider APIs can cancel a task, so cancelling is a state change in
the database only: a task already sent may still finish at the provider, but its result is
never sent (the edit leaves `submitting`/`submitted` for `cancelled`, and results are only
accepted from those two states).
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot import pending_prompts
from bot.handlers.common import incoming, reply
from bot.rewrite import rewrite
from bot.services import BotContext


async def cancel_command(update: Update, context: BotContext) -> None:
    """Cancel the user's latest edit in progress in this chat (or say there is none)."""
    asked = await incoming(update, context)
    if asked is None:
        return
    message, user, services = asked.message, asked.user, asked.services
    outcome = await services.edits.cancel_latest(asked.origin.user_id, message.chat_id)
    if outcome is not None:
        edit, sent = outcome
        # Its "Editing…" message (or its approval request, without the Approve and Reject
        # buttons) now says "Cancelled" (it may be gone: fine).
        shown = edit.status_message_id or edit.approval_message_id
        if shown is not None:
            await rewrite(context.bot, edit.chat_id, shown, services.tr(edit.lang, "cancel.status"))
        text = asked.tr("cancel.done_sent" if sent else "cancel.done_queued")
        back = await services.db.balances.release(edit.id)  # nothing is charged (paid edits)
        if back is not None and back.amount + back.free:
            text += "\n" + asked.tr("payments.returned", edits=back.amount + back.free)
        await reply(message, text)
        return
    asked_setting = await services.db.chat_settings.drop_input(message.chat_id, user.id)
    asked_prompt = await pending_prompts.take(services, message.chat_id, asked.origin.user_id)
    if asked_setting or asked_prompt is not None:
        await reply(message, asked.tr("cancel.input"))
        return
    await reply(message, asked.tr("cancel.nothing"))


def register(application: Application) -> None:  # type: ignore[type-arg]
    application.add_handler(CommandHandler("cancel", cancel_command))
