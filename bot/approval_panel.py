"""The approval request a group's admins decide on: its text, its ✅ Approve / ❌ Reject
buttons and posting it.

Callback data: `a1:y:<edit id>` approve, `a1:n:<edit id>` reject.
"""

from __future__ import annotations

import html
import logging
import re

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.helpers import mention_html

from bot.buttons import shorten
from bot.formats import format_wait
from bot.origin import Origin, answer
from bot.services import Services
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
    """The member who asked, as a mention (HTML); a channel (`bot.origin`) by its title."""
    name = edit.user_name or str(edit.user_id)
    return mention_html(edit.user_id, name) if edit.user_id > 0 else html.escape(name)


def preview(prompt: str) -> str:
    return html.escape(shorten(" ".join(prompt.split()), PROMPT_PREVIEW))


async def post_request(bot: Bot, services: Services, origin: Origin, edit: Edit) -> None:
    """Post the request with Approve / Reject buttons, as a reply to the member's message."""

    def tr(key: str, **params: object) -> str:
        return services.tr(origin.lang, key, **params)

    text = tr(
        "approval.request" if edit.inputs else "imagine.request",  # a drawing has no photo
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
