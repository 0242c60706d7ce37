"""Approval mode: a member's request in a group waits for an admin's ✅ Approve or ❌ Reject.

The request is recorded as `awaiting_approval` and posted with two buttons; nothing is
downloaded, uploaded or spent until an admin approves. A decision is one conditional state
change (`EditService.approve`/`reject`), so two admins pressing at once, or a press racing
the expiry, decide exactly once. The member is told the decision as a reply to the request;
requests nobody decides on expire after APPROVAL_TIMEOUT (the sweeper, `EditService`).

Callback data: `a1:y:<edit id>` approve, `a1:n:<edit id>` reject.
"""

from __future__ import annotations

import html
import logging
import re

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import Application, CallbackQueryHandler
from telegram.helpers import mention_html

from bot.handlers.common import Origin, answer, answer_press, edit_press, format_wait
from bot.services import BotContext, Services
from domain.edit import Edit

log = logging.getLogger(__name__)

PREFIX = "a1"
PATTERN = rf"^{PREFIX}:"
_DATA = re.compile(rf"^{PREFIX}:([yn]):(\d{{1,18}})$")
PROMPT_PREVIEW = 300


def approve_data(edit_id: int) -> str:
    return f"{PREFIX}:y:{edit_id}"


def reject_data(edit_id: int) -> str:
    return f"{PREFIX}:n:{edit_id}"


def parse(data: str) -> tuple[bool, int] | None:
    """(approve?, edit id) of a decision button, or None (stale or forged)."""
    match = _DATA.match(data)
    return (match[1] == "y", int(match[2])) if match else None


def requester(edit: Edit) -> str:
    """The member who asked, as a mention (HTML)."""
    return mention_html(edit.user_id, edit.user_name or str(edit.user_id))


def preview(prompt: str) -> str:
    text = " ".join(prompt.split())
    text = text if len(text) <= PROMPT_PREVIEW else text[: PROMPT_PREVIEW - 1] + "…"
    return html.escape(text)


async def post_request(bot: Bot, services: Services, origin: Origin, edit: Edit) -> None:
    """Post the request with Approve / Reject buttons, as a reply to the member's message."""

    def tr(key: str, **params: object) -> str:
        return services.tr(origin.lang, key, **params)

    text = tr(
        "approval.request",
        requester=requester(edit),
        prompt=preview(edit.prompt),
        wait=format_wait(tr, services.settings.approval_timeout),
    )
    approve = InlineKeyboardButton(tr("approval.btn.approve"), callback_data=approve_data(edit.id))
    reject = InlineKeyboardButton(tr("approval.btn.reject"), callback_data=reject_data(edit.id))
    markup = InlineKeyboardMarkup([[approve, reject]])
    panel = await answer(bot, origin, text, parse_mode=ParseMode.HTML, reply_markup=markup)
    # Remembered so the expiry can close it; a decision edits the pressed message itself.
    await services.edits.note_approval_panel(edit, panel.message_id)
    log.info("edit awaiting approval", extra={"edit_id": edit.id, "chat_id": edit.chat_id})


async def on_decision(update: Update, context: BotContext) -> None:
    """✅ Approve or ❌ Reject pressed: admins only; decide once, tell the member."""
    pressed = await edit_press(
        update, context, parse, lambda parsed: parsed[1], admins_only="approval.admins_only"
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
    await close_panel(context.bot, decided.chat_id, message.message_id, panel)
    log.info(f"edit {outcome}", extra={"edit_id": decided.id, "admin_id": query.from_user.id})
    if not approve:
        await services.edits.notify(decided.id)  # "an admin rejected your request"
        return
    origin = Origin(
        decided.chat_id, decided.chat_type, decided.message_id, decided.user_id, decided.lang
    )
    status = await answer(context.bot, origin, services.tr(decided.lang, "approval.approved"))
    await services.edits.note_status_message(decided.id, status.message_id)
    await services.edits.submit(decided.id)


async def close_panel(bot: Bot, chat_id: int, message_id: int, text: str) -> None:
    """Replace the request's text and drop its buttons (best effort: it may be gone)."""
    try:
        await bot.edit_message_text(
            text, chat_id=chat_id, message_id=message_id, parse_mode=ParseMode.HTML
        )
    except BadRequest as exc:
        log.info("approval request not updated", extra={"error": exc.message})


def register(application: Application) -> None:  # type: ignore[type-arg]
    application.add_handler(CallbackQueryHandler(on_decision, pattern=PATTERN))
