"""Asking for edits: a photo with a caption, a reply to a photo, a photo then a prompt, /edit."""

from __future__ import annotations

import logging

from telegram import ForceReply, Message, Update, User
from telegram.constants import ChatType
from telegram.ext import Application, CommandHandler, MessageHandler, filters

from bot.handlers.common import carries_file, clean_prompt, extract_prompt, input_photo, reply
from bot.providers.base import InputRejected
from bot.services import BotContext
from storage.db import InputPhoto

log = logging.getLogger(__name__)

PENDING_PROMPT_MAX_AGE = 3600.0


async def on_photo(update: Update, context: BotContext) -> None:
    """A photo or image file: edit it with the caption as prompt, or ask for a prompt."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    services = context.services
    lang = services.lang_of(user)
    group = message.chat.type != ChatType.PRIVATE
    prompt = extract_prompt(message.caption or "", context.bot.username, group=group)
    if prompt is None:
        return  # a group photo not addressed to the bot
    if message.media_group_id and not prompt:
        return  # an album's uncaptioned photo: the captioned one carries the request
    photo = input_photo(message)
    if photo is None:
        await reply(message, services.tr(lang, "error.unsupported_file"))
        return
    if not clean_prompt(prompt):
        await services.db.put_pending_prompt(message.chat_id, user.id, message.message_id, [photo])
        await reply(
            message,
            services.tr(lang, "edit.ask_prompt"),
            reply_markup=ForceReply(selective=True),
        )
        return
    await start_edit(context, message, user, [photo], prompt)


async def on_unsupported_file(update: Update, context: BotContext) -> None:
    """A file that is not an image, in a private chat."""
    message = update.effective_message
    if message is None:
        return
    services = context.services
    await reply(
        message, services.tr(services.lang_of(update.effective_user), "error.unsupported_file")
    )


async def on_text(update: Update, context: BotContext) -> None:
    """Text in a private chat: a prompt for a replied-to photo or for the last uncaptioned one."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None or message.text is None:
        return
    services = context.services
    lang = services.lang_of(user)
    replied = message.reply_to_message
    if replied is not None and carries_file(replied):
        photo = input_photo(replied)
        if photo is None:
            await reply(message, services.tr(lang, "error.unsupported_file"))
            return
        await start_edit(context, message, user, [photo], message.text)
        return
    pending = await services.db.take_pending_prompt(
        message.chat_id, user.id, max_age=PENDING_PROMPT_MAX_AGE
    )
    if pending is not None:
        _photo_message_id, inputs = pending
        await start_edit(context, message, user, inputs, message.text)
        return
    await reply(message, services.tr(lang, "edit.hint"))


async def edit_command(update: Update, context: BotContext) -> None:
    """/edit <prompt> as a reply to a photo."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    services = context.services
    lang = services.lang_of(user)
    prompt = " ".join(context.args or [])
    replied = message.reply_to_message
    photo = input_photo(replied) if replied is not None else None
    if photo is None:
        await reply(message, services.tr(lang, "edit.usage"))
        return
    if not clean_prompt(prompt):
        await reply(message, services.tr(lang, "error.input.prompt_empty"))
        return
    await start_edit(context, message, user, [photo], prompt)


async def start_edit(
    context: BotContext, message: Message, user: User, inputs: list[InputPhoto], raw_prompt: str
) -> None:
    """Validate, record and submit one edit; answer bad input with a clear message."""
    services = context.services
    lang = services.lang_of(user)
    prompt = clean_prompt(raw_prompt)
    model_id = services.settings.default_model
    params: dict[str, object] = {}
    try:
        services.edits.check_request(model_id, prompt, len(inputs), params)
    except InputRejected as exc:
        await reply(message, services.tr(lang, f"error.input.{exc.code}", **exc.params))
        return
    await services.db.unblock_chat(message.chat_id)
    edit = await services.edits.create(
        dedupe_key=f"msg:{message.chat_id}:{message.message_id}",
        chat_id=message.chat_id,
        chat_type=message.chat.type,
        user_id=user.id,
        message_id=message.message_id,
        lang=lang,
        model_id=model_id,
        prompt=prompt,
        inputs=inputs,
        params=params,
    )
    if edit is None:
        log.info("repeated update ignored", extra={"chat_id": message.chat_id})
        return
    status = await reply(message, services.tr(lang, "edit.queued"))
    await services.db.set_status_message(edit.id, status.message_id)
    await services.edits.submit(edit.id)


def register(application: Application) -> None:  # type: ignore[type-arg]
    private = filters.ChatType.PRIVATE
    images = filters.PHOTO | filters.Document.IMAGE
    application.add_handler(CommandHandler("edit", edit_command))
    application.add_handler(MessageHandler(images, on_photo))
    application.add_handler(MessageHandler(private & filters.Document.ALL, on_unsupported_file))
    application.add_handler(MessageHandler(private & filters.TEXT & ~filters.COMMAND, on_text))
