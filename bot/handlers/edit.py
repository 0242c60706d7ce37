"""Asking for edits: a photo with a caption, a reply to a photo, a photo then a prompt, /edit."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from telegram import Bot, ForceReply, Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import Application, CommandHandler, MessageHandler, filters

from bot import policy
from bot.delivery import api_call, reply_to
from bot.handlers import album, approvals
from bot.handlers.common import (
    Origin,
    answer,
    carries_file,
    clean_prompt,
    extract_prompt,
    input_photo,
)
from bot.preferences import resolve
from bot.providers.base import InputRejected
from bot.services import BotContext, Services
from domain.edit import Edit, EditState, InputPhoto
from storage.chat_settings import ChatPrefs
from storage.edits import InsertGuard

log = logging.getLogger(__name__)

PENDING_PROMPT_MAX_AGE = 3600.0


async def on_photo(update: Update, context: BotContext) -> None:
    """A photo or image file: edit it with the caption as prompt, or ask for a prompt."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    services = context.services
    origin = Origin.of(message, user, await services.lang_for(user, message.chat))
    if message.media_group_id:
        await album.collect(context, message, origin)
        return
    group = message.chat.type != ChatType.PRIVATE
    prompt = extract_prompt(message.caption or "", context.bot.username, group=group)
    if prompt is None:
        return  # a group photo not addressed to the bot
    photo = input_photo(message)
    if photo is None:
        await answer(context.bot, origin, services.tr(origin.lang, "error.unsupported_file"))
        return
    await edit_or_ask(context.bot, services, origin, [photo], prompt)


async def on_unsupported_file(update: Update, context: BotContext) -> None:
    """A file that is not an image, in a private chat."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    services = context.services
    origin = Origin.of(message, user, await services.lang_for(user, message.chat))
    await answer(context.bot, origin, services.tr(origin.lang, "error.unsupported_file"))


async def on_text(update: Update, context: BotContext) -> None:
    """Text in a private chat: a prompt for a replied-to photo or for the last uncaptioned one."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None or message.text is None:
        return
    services = context.services
    origin = Origin.of(message, user, await services.lang_for(user, message.chat))
    replied = message.reply_to_message
    if replied is not None and carries_file(replied):
        photo = input_photo(replied)
        if photo is None:
            await answer(context.bot, origin, services.tr(origin.lang, "error.unsupported_file"))
            return
        await start_edit(context.bot, services, origin, [photo], message.text)
        return
    pending = await services.db.prompts.take(
        message.chat_id, user.id, max_age=PENDING_PROMPT_MAX_AGE
    )
    if pending is not None:
        _photo_message_id, inputs = pending
        await start_edit(context.bot, services, origin, inputs, message.text)
        return
    await answer(context.bot, origin, services.tr(origin.lang, "edit.hint"))


async def edit_command(update: Update, context: BotContext) -> None:
    """/edit <prompt> as a reply to a photo."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    services = context.services
    origin = Origin.of(message, user, await services.lang_for(user, message.chat))
    prompt = " ".join(context.args or [])
    replied = message.reply_to_message
    photo = input_photo(replied) if replied is not None else None
    if photo is None:
        await answer(context.bot, origin, services.tr(origin.lang, "edit.usage"))
        return
    if not clean_prompt(prompt):
        await answer(context.bot, origin, services.tr(origin.lang, "error.input.prompt_empty"))
        return
    await start_edit(context.bot, services, origin, [photo], prompt)


async def edit_or_ask(
    bot: Bot, services: Services, origin: Origin, inputs: list[InputPhoto], prompt: str
) -> None:
    """Start the edit, or (no prompt yet) keep the photos and ask for one."""
    if clean_prompt(prompt) or not policy.may_use(services.settings, origin):
        await start_edit(bot, services, origin, inputs, prompt)
        return
    await services.db.prompts.put(origin.chat_id, origin.user_id, origin.message_id, inputs)
    await answer(
        bot,
        origin,
        services.tr(origin.lang, "edit.ask_prompt"),
        reply_markup=ForceReply(selective=True),
    )


async def start_edit(
    bot: Bot,
    services: Services,
    origin: Origin,
    inputs: list[InputPhoto],
    raw_prompt: str,
    *,
    dedupe_key: str | None = None,
    model_params: tuple[str, Mapping[str, Any]] | None = None,
) -> None:
    """Validate, record and submit one edit; answer bad input with a clear message.

    The model and params come from the chat's settings unless `model_params` is given (a
    repeat of an earlier edit); `dedupe_key` defaults to the origin message. Who may ask and
    on what terms (allowlist, group moderation) is decided by `bot.policy`.
    """
    if not policy.may_use(services.settings, origin):
        await answer(bot, origin, services.tr(origin.lang, "access.denied"))
        return
    prompt = clean_prompt(raw_prompt)
    prefs = ChatPrefs()
    if model_params is None or origin.group:  # a group's moderation rules apply to repeats too
        prefs = await services.prefs.get(origin.chat_id, fresh=True)
    if model_params is None:
        model_params = resolve(prefs, services.registry, services.settings.default_model)
    model_id, chosen = model_params
    params = policy.enforced_params(services.registry, prefs.moderation, origin, model_id, chosen)
    images = [photo for photo in inputs if photo.role == "image"]
    has_mask = len(images) != len(inputs)
    try:
        services.edits.check_request(model_id, prompt, len(images), params, has_mask=has_mask)
    except InputRejected as exc:
        await answer(bot, origin, services.tr(origin.lang, f"error.input.{exc.code}", **exc.params))
        return

    async def record(state: EditState, guard: InsertGuard | None) -> Edit | None:
        return await services.edits.create(
            dedupe_key=dedupe_key or f"msg:{origin.chat_id}:{origin.message_id}",
            chat_id=origin.chat_id,
            chat_type=origin.chat_type,
            user_id=origin.user_id,
            message_id=origin.message_id,
            lang=origin.lang,
            model_id=model_id,
            prompt=prompt,
            inputs=inputs,
            params=params,
            unblock_chat=True,
            claim=True,
            state=state,
            user_name=origin.user_name or None,
            guard=guard,
        )

    edit = await policy.admit(bot, services, origin, prefs.moderation, prompt, record)
    if isinstance(edit, policy.Refusal):
        text = policy.refusal_text(services, origin.lang, edit, now=time.time())
        await answer(bot, origin, text)
        return
    if edit is None:
        log.info("repeated update ignored", extra={"chat_id": origin.chat_id})
        return
    if edit.state is EditState.AWAITING_APPROVAL:
        await approvals.post_request(bot, services, origin, edit)  # nothing spent until then
        return
    # The status message goes out while the photos are fetched and stored.
    await services.edits.submit(edit.id, claimed=edit, status=_send_status(bot, services, origin))


async def _send_status(bot: Bot, services: Services, origin: Origin) -> int | None:
    """Say the edit is under way; its message id, or None if it could not be sent."""
    params = {
        "chat_id": origin.chat_id,
        "text": services.tr(origin.lang, "edit.queued"),
        "reply_parameters": reply_to(origin.message_id),
    }
    try:
        message = await api_call(bot, "sendMessage", params)
    except TelegramError as exc:
        log.warning(
            "status message not sent", extra={"chat_id": origin.chat_id, "error": exc.message}
        )
        return None
    message_id = message.get("message_id")
    return message_id if isinstance(message_id, int) else None


def register(application: Application) -> None:  # type: ignore[type-arg]
    private = filters.ChatType.PRIVATE
    images = filters.PHOTO | filters.Document.IMAGE
    application.add_handler(CommandHandler("edit", edit_command))
    application.add_handler(MessageHandler(images, on_photo))
    application.add_handler(MessageHandler(private & filters.Document.ALL, on_unsupported_file))
    application.add_handler(MessageHandler(private & filters.TEXT & ~filters.COMMAND, on_text))
