"""/imagine <prompt>: a new image drawn from the prompt alone, by the chat's generating model;
and "Draw it" under a private text the bot could not take as an edit prompt.

Both start an edit without input photos (`bot.edit_requests.start_edit(generate=True)`), so
limits, moderation, approval, the spend cap, /history and delivery are those of edits.
"""

from __future__ import annotations

from telegram import Message, Update
from telegram.constants import ParseMode
from telegram.ext import Application, CallbackQueryHandler, CommandHandler

from bot.buttons import DRAW_PATTERN
from bot.edit_requests import start_edit
from bot.handlers.common import answer_press, incoming
from bot.message_input import clean_prompt
from bot.origin import Origin, answer
from bot.rewrite import any_error, rewrite
from bot.services import BotContext


async def imagine_command(update: Update, context: BotContext) -> None:
    """/imagine <prompt>: draw it (an empty prompt gets the usage)."""
    asked = await incoming(update, context)
    if asked is None or asked.message.text is None:
        return
    # The prompt as typed (line breaks kept), after the command and its @mention.
    prompt = "".join(asked.message.text.split(maxsplit=1)[1:])
    if not clean_prompt(prompt):
        await answer(
            context.bot, asked.origin, asked.tr("imagine.usage"), parse_mode=ParseMode.HTML
        )
        return
    await start_edit(context.bot, asked.services, asked.origin, [], prompt, generate=True)


async def on_draw(update: Update, context: BotContext) -> None:
    """ "Draw it" under an offered text: the text it replies to is the prompt, and only its
    author may spend on it. The offer loses its button; a second press finds the edit made
    (keyed by the text message) and starts nothing."""
    query = update.callback_query
    if query is None:
        return
    services = context.services
    offer = query.message
    lang = await services.lang_for(query.from_user, offer.chat if offer else None)
    text = offer.reply_to_message if isinstance(offer, Message) else None
    if (
        not isinstance(offer, Message)
        or text is None
        or text.text is None
        or text.from_user is None
        or text.from_user.id != query.from_user.id
    ):
        await answer_press(query, services.tr(lang, "imagine.gone"))
        return
    origin = Origin.of(text, query.from_user, lang)
    if origin is None:
        await answer_press(query, services.tr(lang, "imagine.gone"))
        return
    await answer_press(query, services.tr(lang, "imagine.drawing"))
    await rewrite(
        context.bot, offer.chat_id, offer.message_id, offer.text or "", tolerate=any_error
    )
    await start_edit(context.bot, services, origin, [], text.text, generate=True)


def register(application: Application) -> None:  # type: ignore[type-arg]
    application.add_handler(CommandHandler("imagine", imagine_command))
    application.add_handler(CallbackQueryHandler(on_draw, pattern=DRAW_PATTERN))
