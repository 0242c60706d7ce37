"""/history: the user's recent edits with their state, and a button to get each one again."""

from __future__ import annotations

import html
import logging

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import Application, CallbackQueryHandler, CommandHandler

from bot.buttons import (
    HISTORY_PATTERN,
    in_rows,
    parse_resend,
    resend_data,
    result_keyboard,
    shorten,
)
from bot.delivery import reply_to
from bot.edit_requests import start_edit
from bot.handlers.common import answer_press, edit_press, incoming, reply
from bot.origin import Origin
from bot.policy import resend_refusal
from bot.services import BotContext, Services
from domain.edit import TERMINAL_STATES, Edit

log = logging.getLogger(__name__)

HISTORY_SIZE = 10
PROMPT_PREVIEW = 80


def _preview(prompt: str) -> str:
    text = " ".join(prompt.split())
    return shorten(text, PROMPT_PREVIEW)


async def recent_edits(services: Services, user_id: int, chat_id: int, group: bool) -> list[Edit]:
    """The user's latest edits: all of theirs in private, only this group's in a group."""
    edits = await services.db.edits.recent(
        user_id, limit=HISTORY_SIZE * 5 if group else HISTORY_SIZE
    )
    if group:
        edits = [edit for edit in edits if edit.chat_id == chat_id]
    return edits[:HISTORY_SIZE]


async def history_command(update: Update, context: BotContext) -> None:
    """List the user's recent edits with a button to get each one again."""
    asked = await incoming(update, context)
    if asked is None:
        return
    message, services, lang = asked.message, asked.services, asked.lang
    edits = await recent_edits(services, asked.user.id, message.chat_id, asked.origin.group)
    if not edits:
        await reply(message, services.tr(lang, "history.empty"))
        return
    lines = [services.tr(lang, "history.title"), ""]
    buttons: list[InlineKeyboardButton] = []
    for number, edit in enumerate(edits, start=1):
        spec = services.registry.models.get(edit.model)
        removed = edit.removed_at is not None
        state = "removed" if removed else edit.state.value
        lines.append(
            services.tr(
                lang,
                "history.item",
                n=number,
                state=services.tr(lang, f"history.state.{state}"),
                model=html.escape(spec.title if spec else edit.model),
                prompt=html.escape(_preview(edit.prompt)),
            )
        )
        if edit.state in TERMINAL_STATES and not removed:
            label = services.tr(lang, "history.resend", n=number)
            buttons.append(InlineKeyboardButton(label, callback_data=resend_data(edit.id)))
    lines += ["", services.tr(lang, "history.hint")]
    rows = in_rows(buttons, 5)
    await reply(
        message,
        "\n".join(lines),
        parse_mode=ParseMode.HTML,
        reply_markup=InlineKeyboardMarkup(rows) if rows else None,
    )


async def on_resend(update: Update, context: BotContext) -> None:
    """A /history button: send the stored result again, or make it again when none is stored."""
    # /history lists the user's own edits (in a private chat, also those made in groups),
    # so there the edit's chat may differ from the button's.
    pressed = await edit_press(
        update, context, parse_resend, lambda edit_id: edit_id, own_anywhere=True
    )
    if pressed is None:
        return
    services = context.services
    query, _message, edit, _edit_id, lang = pressed
    if edit.user_id != query.from_user.id:
        await answer_press(query, services.tr(lang, "history.not_yours"), alert=True)
        return
    if edit.state not in TERMINAL_STATES:
        await answer_press(query, services.tr(lang, "history.busy"))
        return
    origin = pressed.origin
    refused = await resend_refusal(context.bot, services, origin, edit)
    if refused is not None:
        await answer_press(query, services.tr(lang, refused), alert=True)
        return
    if edit.result_file_ids:
        await answer_press(query, services.tr(lang, "history.resent"))
        await send_stored(services, context.bot, origin, edit)
        return
    await answer_press(query, services.tr(lang, "history.rerun"))
    await start_edit(
        context.bot,
        services,
        origin,
        edit.inputs,
        edit.prompt,
        dedupe_key=f"resend:{query.id}",
        model_params=(edit.model, edit.params),
    )


async def send_stored(services: Services, bot: Bot, origin: Origin, edit: Edit) -> None:
    """Send an edit's results by their Telegram file ids (no download, no provider)."""
    as_document = bool(edit.params.get("send_as_file"))
    last = len(edit.result_file_ids) - 1
    for index, file_id in enumerate(edit.result_file_ids):
        markup = (
            result_keyboard(
                lambda key: services.tr(origin.lang, key),
                edit.id,
                with_file=not as_document,
                removable=origin.group,
            )
            if index == last
            else None
        )
        try:
            message = await _send_file_id(
                bot, origin, file_id, as_document=as_document, markup=markup
            )
        except BadRequest as exc:
            if "file of type" not in exc.message.lower():
                raise
            # Delivery falls back to a document for results too large for a photo.
            message = await _send_file_id(
                bot, origin, file_id, as_document=not as_document, markup=markup
            )
        # Each as it goes: a failure halfway must not leave messages "Remove" cannot find.
        await services.db.result_messages.record(edit.id, origin.chat_id, [message.message_id])


async def _send_file_id(
    bot: Bot,
    origin: Origin,
    file_id: str,
    *,
    as_document: bool,
    markup: InlineKeyboardMarkup | None,
) -> Message:
    send = bot.send_document if as_document else bot.send_photo
    return await send(
        origin.chat_id,
        file_id,
        reply_parameters=reply_to(origin.message_id),
        message_thread_id=origin.thread_id,
        reply_markup=markup,
    )


def register(application: Application) -> None:  # type: ignore[type-arg]
    application.add_handler(CommandHandler("history", history_command))
    application.add_handler(CallbackQueryHandler(on_resend, pattern=HISTORY_PATTERN))
