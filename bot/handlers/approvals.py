"""Approval mode: a member's request in a group waits for an admin's ✅ Approve or ❌ Reject.

The request is recorded as `awaiting_approval` and posted with two buttons
(`bot.approval_panel`); nothing is downloaded, uploaded or spent until an admin approves. A
decision is one conditional state change (`EditService.approve`/`reject`), so two admins
pressing at once, or a press racing the expiry, decide exactly once. The member is told the
decision as a reply to the request; requests nobody decides on expire after
APPROVAL_TIMEOUT (the sweeper, `EditService`).
"""

from __future__ import annotations

import html
import logging

from telegram import Message, Update
from telegram.ext import Application, CallbackQueryHandler

from bot.approval_panel import PATTERN, parse, preview, requester
from bot.handlers.common import answer_press, edit_press
from bot.origin import Origin, answer
from bot.rewrite import rewrite
from bot.services import BotContext, Services
from domain.edit import Edit

log = logging.getLogger(__name__)


async def is_its_panel(_services: Services, message: Message, edit: Edit) -> bool:
    """The pressed message is the request posted for this edit (not another one's)."""
    return edit.approval_message_id == message.message_id


async def on_decision(update: Update, context: BotContext) -> None:
    """✅ Approve or ❌ Reject pressed: admins only; decide once, tell the member."""
    pressed = await edit_press(
        update,
        context,
        parse,
        lambda parsed: parsed[1],
        made_for=is_its_panel,
        admins_only="approval.admins_only",
    )
    if pressed is None:
        return
    services = context.services
    query, message, edit, parsed, lang = pressed
    approve, _ = parsed
    name = query.from_user.full_name
    if approve:
        decided = await services.edits.approve(edit.id, by=query.from_user.id, by_name=name)
    else:
        decided = await services.edits.reject(edit.id, by=query.from_user.id, by_name=name)
    if decided is None:
        current = await services.db.edits.get(edit.id) or edit
        state = services.tr(lang, f"history.state.{current.state.value}")
        await answer_press(query, services.tr(lang, "approval.already", state=state))
        return
    outcome = "approved" if approve else "rejected"
    await answer_press(query, services.tr(lang, f"approval.toast.{outcome}"))
    panel = services.tr(
        lang,
        f"approval.panel.{outcome}",
        admin=html.escape(name),
        requester=requester(decided),
        prompt=preview(decided.prompt),
    )
    # The request's text now says what was decided, without its buttons.
    await rewrite(context.bot, decided.chat_id, message.message_id, panel, html=True)
    log.info(f"edit {outcome}", extra={"edit_id": decided.id, "admin_id": query.from_user.id})
    if not approve:
        await services.edits.notify(decided.id)  # "an admin rejected your request"
        return
    origin = Origin(
        decided.chat_id,
        decided.chat_type,
        decided.message_id,
        decided.user_id,
        decided.lang,
        thread_id=decided.thread_id,
    )
    said = "approval.approved" if decided.inputs else "imagine.approved"
    status = await answer(context.bot, origin, services.tr(decided.lang, said))
    await services.edits.note_status_message(decided.id, status.message_id)
    await services.edits.submit(decided.id)


def register(application: Application) -> None:  # type: ignore[type-arg]
    application.add_handler(CallbackQueryHandler(on_decision, pattern=PATTERN))
