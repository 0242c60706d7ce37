"""Asking for edits: a photo with a caption, a reply to a photo, a photo then a prompt, /edit."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CommandHandler, MessageHandler, filters

from bot import albums, pending_prompts
from bot.buttons import draw_keyboard
from bot.edit_requests import edit_or_ask, start_edit
from bot.handlers.common import incoming
from bot.message_input import (
    carries_file,
    clean_prompt,
    extract_prompt,
    input_photo,
    own_caption,
)
from bot.origin import answer, replied_to
from bot.preferences import generators
from bot.services import BotContext


async def on_photo(update: Update, context: BotContext) -> None:
    """A photo or image file: edit it with the caption as prompt, or ask for a prompt (a
    forwarded photo's caption is someone else's: `own_caption`)."""
    asked = await incoming(update, context)
    if asked is None:
        return
    message, origin = asked.message, asked.origin
    if message.media_group_id:
        await albums.collect(context.bot, asked.services, message, origin)
        return
    caption = own_caption(message) or ""
    prompt = extract_prompt(caption, context.bot.username, group=origin.group)
    if prompt is None:
        return  # a group photo not addressed to the bot (a forward never is, by its caption)
    photo = input_photo(message)
    if photo is None:
        await answer(context.bot, origin, asked.tr("error.unsupported_file"))
        return
    ignored_caption = bool(message.caption) and not caption
    question = "edit.ask_prompt_forwarded" if ignored_caption else "edit.ask_prompt"
    await edit_or_ask(context.bot, asked.services, origin, [photo], prompt, question=question)


async def on_unsupported_file(update: Update, context: BotContext) -> None:
    """A file that is not an image, in a private chat."""
    asked = await incoming(update, context)
    if asked is None:
        return
    await answer(context.bot, asked.origin, asked.tr("error.unsupported_file"))


async def on_text(update: Update, context: BotContext) -> None:
    """Text in a private chat: a prompt for a replied-to photo or for the last uncaptioned one;
    any other text is offered for drawing, with a button (nothing is spent until it is
    pressed: it may just be a greeting)."""
    asked = await incoming(update, context)
    if asked is None or asked.message.text is None:  # the filter lets only text through
        return
    text = asked.message.text
    message, services, origin = asked.message, asked.services, asked.origin
    replied = replied_to(message)
    if replied is not None and carries_file(replied):
        photo = input_photo(replied)
        if photo is None:
            await answer(context.bot, origin, asked.tr("error.unsupported_file"))
            return
        await start_edit(context.bot, services, origin, [photo], text)
        return
    inputs = await pending_prompts.take(services, message.chat_id, origin.user_id)
    if inputs is not None:
        await start_edit(context.bot, services, origin, inputs, text)
        return
    if not generators(services.registry):
        await answer(context.bot, origin, asked.tr("edit.hint"))
        return
    offer = draw_keyboard(asked.tr("imagine.btn.draw"))
    await answer(context.bot, origin, asked.tr("imagine.offer"), reply_markup=offer)


async def edit_command(update: Update, context: BotContext) -> None:
    """/edit <prompt> as a reply to a photo."""
    asked = await incoming(update, context)
    if asked is None:
        return
    prompt = " ".join(context.args or [])
    replied = replied_to(asked.message)
    photo = input_photo(replied) if replied is not None else None
    if photo is None:
        await answer(context.bot, asked.origin, asked.tr("edit.usage"))
        return
    if not clean_prompt(prompt):
        await answer(context.bot, asked.origin, asked.tr("error.input.prompt_empty"))
        return
    await start_edit(context.bot, asked.services, asked.origin, [photo], prompt)


def register(application: Application) -> None:  # type: ignore[type-arg]
    private = filters.ChatType.PRIVATE
    images = filters.PHOTO | filters.Document.IMAGE
    application.add_handler(CommandHandler("edit", edit_command))
    application.add_handler(MessageHandler(images, on_photo))
    application.add_handler(MessageHandler(private & filters.Document.ALL, on_unsupported_file))
    application.add_handler(MessageHandler(private & filters.TEXT & ~filters.COMMAND, on_text))
