"""/settings and /model: the chat's settings as inline menus that edit themselves in place.

A private chat's settings are its user's; a group's apply to everyone's edits there and only
its admins may change them. Free-text settings (negative prompt, a fixed seed) are asked
with ForceReply; the answer is caught here, in a handler group that runs before the edit
handlers, so it never becomes an edit prompt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from telegram import (
    Bot,
    CallbackQuery,
    Chat,
    ForceReply,
    Message,
    Update,
    User,
)
from telegram.constants import ParseMode
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)
from telegram.helpers import mention_html

from bot import pending_prompts
from bot.handlers import settings_views as views
from bot.handlers.common import answer_press, incoming, reply
from bot.message_input import carries_file, clean_prompt
from bot.origin import replied_to, topic_of
from bot.preferences import (
    SEED_MAX,
    chosen_model,
    model_by_key,
    option_by_code,
    parse_seed,
    rejection,
    reset,
    set_option,
    switch_model,
)
from bot.providers.base import ModelOption
from bot.rewrite import redraw, rewrite
from bot.services import BotContext, Services
from storage.chat_settings import ChatPrefs, PendingInput

log = logging.getLogger(__name__)

INPUT_GROUP = -1  # before the edit handlers (group 0): a setting's answer is not a prompt
INPUT_MAX_AGE = 600.0
CHECK_PROMPT = "x"


@dataclass(frozen=True)
class Press:
    """A parsed settings button: `action` and its argument (option code, model key…)."""

    action: str
    arg: str = ""
    index: int = -1


_NO_ARG = frozenset({"home", "models", "gens", "langs", "file", "reset", "close"})
_WITH_ARG = frozenset({"o", "t", "c", "m", "g", "l"})


def parse(data: str) -> Press | None:
    """The press a callback data means, or None (stale, forged or from another version)."""
    parts = data.split(":")
    if len(parts) < 2 or parts[0] != views.PREFIX:
        return None
    action, args = parts[1], parts[2:]
    if action in _NO_ARG and not args:
        return Press(action)
    if action in _WITH_ARG and len(args) == 1 and args[0]:
        return Press(action, args[0])
    if action == "v" and len(args) == 2 and args[1].isdecimal():
        return Press(action, args[0], int(args[1]))
    return None


def checker(services: Services) -> Callable[[str, Any], None]:
    """Validate params the way an edit would be (one image, a placeholder prompt)."""

    def check(model_id: str, params: Any) -> None:
        services.edits.check_request(model_id, CHECK_PROMPT, 1, params)

    return check


def menu_context(services: Services, lang: str, chat: Chat) -> views.MenuContext:
    return views.MenuContext(
        lang=lang,
        translator=services.translator,
        registry=services.registry,
        default_model=services.settings.default_model,
        chat=chat,
        default_generator=services.settings.default_generator,
    )


async def settings_command(update: Update, context: BotContext) -> None:
    """Open this chat's settings menu (everyone sees a group's; admins change them)."""
    asked = await incoming(update, context)
    if asked is None:
        return
    message, services = asked.message, asked.services
    ctx = menu_context(services, asked.lang, message.chat)
    text, markup = views.home(ctx, await services.db.chat_settings.get(message.chat_id, fresh=True))
    await reply(message, text, parse_mode=ParseMode.HTML, reply_markup=markup)


async def model_command(update: Update, context: BotContext) -> None:
    """Quick switch between the models of the enabled providers."""
    asked = await incoming(update, context)
    if asked is None:
        return
    message, services = asked.message, asked.services
    ctx = menu_context(services, asked.lang, message.chat)
    text, markup = views.model_view(
        ctx, await services.db.chat_settings.get(message.chat_id, fresh=True)
    )
    await reply(message, text, parse_mode=ParseMode.HTML, reply_markup=markup)


class _Stale(Exception):
    """The button refers to something that is gone (an option, a model, a language)."""


@dataclass
class _Outcome:
    view: views.View | None = None
    toast: str | None = None
    alert: bool = False


async def on_button(update: Update, context: BotContext) -> None:
    """A settings button: check who may change, apply, answer, redraw the menu in place."""
    query = update.callback_query
    if query is None or query.data is None:
        return
    services = context.services
    message = query.message
    chat = message.chat if message is not None else None
    lang = await services.lang_for(query.from_user, chat)
    press = parse(query.data)
    if press is None or not isinstance(message, Message):
        await answer_press(query, services.tr(lang, "error.unknown_button"))
        return
    if not await services.admins.may_change(context.bot, message.chat, query.from_user.id):
        await answer_press(query, services.tr(lang, "settings.admins_only"), alert=True)
        return
    try:
        outcome = await _apply(services, context.bot, query, message, press)
    except _Stale:
        ctx = menu_context(services, lang, message.chat)
        outcome = _Outcome(
            view=views.home(ctx, await services.db.chat_settings.get(message.chat_id, fresh=True)),
            toast=ctx.tr("error.unknown_button"),
        )
    try:
        if outcome.view is not None:
            await redraw(context.bot, message, outcome.view)
    finally:  # every press is answered, after the menu shows its effect
        await answer_press(query, outcome.toast, alert=outcome.alert)


async def _apply(
    services: Services, bot: Bot, query: CallbackQuery, message: Message, press: Press
) -> _Outcome:
    chat, user = message.chat, query.from_user
    prefs = await services.db.chat_settings.get(chat.id, fresh=True)
    ctx = menu_context(services, await services.lang_for(user, chat), chat)

    async def change(edit: Callable[[ChatPrefs], ChatPrefs]) -> ChatPrefs:
        return await services.db.chat_settings.update(chat.id, edit, user_id=user.id)

    if press.action == "home":
        return _Outcome(views.home(ctx, prefs))
    if press.action == "models":
        return _Outcome(views.model_view(ctx, prefs))
    if press.action == "langs":
        return _Outcome(views.language_view(ctx, prefs))
    if press.action == "gens":
        return _Outcome(views.generator_view(ctx, prefs))
    if press.action == "close":
        return _Outcome(views.closed(ctx))
    if press.action == "file":
        prefs = await change(lambda p: replace(p, send_as_file=not p.send_as_file))
        return _Outcome(views.home(ctx, prefs), ctx.tr("settings.saved"))
    if press.action == "reset":
        prefs = await change(reset)
        return _Outcome(views.home(ctx, prefs), ctx.tr("settings.reset_done"))
    if press.action == "m":
        spec = model_by_key(services.registry, press.arg)
        if spec is None:
            raise _Stale(press.arg)
        chosen, check = spec, checker(services)
        prefs = await change(lambda p: switch_model(p, chosen, check))
        return _Outcome(views.model_view(ctx, prefs), ctx.tr("settings.saved"))
    if press.action == "g":
        drawing = model_by_key(services.registry, press.arg)
        if drawing is None or not drawing.generates:
            raise _Stale(press.arg)
        prefs = await change(lambda p: replace(p, generator=drawing.id))
        return _Outcome(views.generator_view(ctx, prefs), ctx.tr("settings.saved"))
    if press.action == "l":
        lang = None if press.arg == "auto" else press.arg
        if lang is not None and lang not in services.translator.catalogs:
            raise _Stale(press.arg)
        prefs = await change(lambda p: replace(p, lang=lang))
        # The menu now speaks the new language.
        ctx = menu_context(services, await services.lang_for(user, chat), chat)
        return _Outcome(views.home(ctx, prefs), ctx.tr("settings.saved"))
    option = _supported(services, prefs, press.arg)
    if press.action == "o":
        return _Outcome(views.option_view(ctx, prefs, option))
    if press.action == "c":
        prefs = await change(lambda p: set_option(p, option, None))
        return _Outcome(views.option_view(ctx, prefs, option), ctx.tr("settings.saved"))
    if press.action == "v":
        if option.kind != "choice" or not 0 <= press.index < len(option.choices):
            raise _Stale(press.arg)
        value = option.choices[press.index]
        if views.locked(ctx, prefs, option) and value is not True:
            return _Outcome(toast=ctx.tr("settings.safety_locked"), alert=True)
        spec = chosen_model(prefs, services.registry, services.settings.default_model)
        refused = rejection(checker(services), spec.id, {option.name: value})
        if refused is not None:
            text = ctx.tr(f"error.input.{refused.code}", **refused.params)
            return _Outcome(toast=text, alert=True)
        prefs = await change(lambda p: set_option(p, option, value))
        return _Outcome(views.option_view(ctx, prefs, option), ctx.tr("settings.saved"))
    if press.action == "t" and option.kind in ("text", "seed"):
        await _ask(services, bot, ctx, message, user, option)
        return _Outcome()
    raise _Stale(press.action)


def _supported(services: Services, prefs: ChatPrefs, code: str) -> ModelOption:
    """The option a button names, if the chat's model (still) takes it."""
    spec = chosen_model(prefs, services.registry, services.settings.default_model)
    option = option_by_code(spec, code)
    if option is None:
        raise _Stale(code)
    return option


async def _ask(
    services: Services,
    bot: Bot,
    ctx: views.MenuContext,
    menu: Message,
    user: User,
    option: ModelOption,
) -> None:
    """Ask for a free-text setting with ForceReply and remember that we are waiting."""
    question = ctx.option_text(option, "ask", limit=option.max_length, max=SEED_MAX)
    if ctx.group:  # selective ForceReply reaches the mentioned user only
        question = f"{mention_html(user.id, user.first_name)} {question}"
    asked = await bot.send_message(
        menu.chat_id,
        question,
        message_thread_id=topic_of(menu),
        parse_mode=ParseMode.HTML,
        reply_markup=ForceReply(selective=True),
    )
    await services.db.chat_settings.put_input(
        PendingInput(
            chat_id=menu.chat_id,
            user_id=user.id,
            name=option.name,
            prompt_message_id=asked.message_id,
            menu_message_id=menu.message_id,
        )
    )


async def on_input(update: Update, context: BotContext) -> None:
    """Text answering the bot's question for a setting; any other text goes on to edits."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None or message.text is None:
        return
    services = context.services
    pending = await _pending_for(services, context.bot, message, user)
    if pending is None:
        return
    if pending.created_at < time.time() - INPUT_MAX_AGE:
        await services.db.chat_settings.drop_input(pending.chat_id, pending.user_id)
        return
    if pending.user_id != user.id and not await services.admins.may_change(
        context.bot, message.chat, user.id, sender_chat=message.sender_chat
    ):  # a member answered the question asked of an admin: not theirs to set
        lang = await services.lang_for(user, message.chat)
        await reply(message, services.tr(lang, "settings.admins_only"))
        raise ApplicationHandlerStop
    await _take_input(services, context.bot, message, user, pending)
    raise ApplicationHandlerStop


async def _pending_for(
    services: Services, bot: Bot, message: Message, user: User
) -> PendingInput | None:
    replied = replied_to(message)
    if replied is not None:
        if replied.from_user is None or replied.from_user.id != bot.id or carries_file(replied):
            return None  # a reply to a photo or someone's message: an edit, not a setting
        question = await services.db.chat_settings.pending_input(
            message.chat_id, prompt_message_id=replied.message_id
        )
        if question is not None:
            return question
        # A reply to a question sent a moment ago (a retry whose id is not stored yet).
        return await services.db.chat_settings.pending_input(message.chat_id, user_id=user.id)
    pending = await services.db.chat_settings.pending_input(message.chat_id, user_id=user.id)
    if pending is None:
        return None
    prompt_asked = await pending_prompts.asked_at(services, message.chat_id, user.id)
    if prompt_asked is not None and prompt_asked > pending.created_at:
        return None  # the bot asked for an edit prompt more recently: this text is that
    return pending


async def _take_input(
    services: Services, bot: Bot, message: Message, user: User, pending: PendingInput
) -> None:
    assert message.text is not None
    chat = message.chat
    ctx = menu_context(services, await services.lang_for(user, chat), chat)
    prefs = await services.db.chat_settings.get(chat.id, fresh=True)
    spec = chosen_model(prefs, services.registry, services.settings.default_model)
    option = spec.options.get(pending.name)
    if option is None:
        await services.db.chat_settings.drop_input(pending.chat_id, pending.user_id)
        await reply(message, ctx.tr("settings.unsupported"))
        return
    value, problem = _parse_input(services, ctx, option, spec.id, message.text)
    if problem is not None:
        again = await reply(message, problem, reply_markup=ForceReply(selective=True))
        await services.db.chat_settings.put_input(
            PendingInput(
                chat_id=pending.chat_id,
                user_id=pending.user_id,
                name=pending.name,
                prompt_message_id=again.message_id,
                menu_message_id=pending.menu_message_id,
            )
        )
        return
    prefs = await services.db.chat_settings.update(
        chat.id, lambda p: set_option(p, option, value), user_id=user.id
    )
    await services.db.chat_settings.drop_input(pending.chat_id, pending.user_id)
    title = ctx.option_text(option, "label")
    label = views.value_label(ctx, option, value)
    if pending.menu_message_id is not None:
        text, markup = views.option_view(ctx, prefs, option)
        # The menu may be gone, or already show this.
        await rewrite(bot, chat.id, pending.menu_message_id, text, html=True, markup=markup)
    await reply(message, ctx.tr("settings.saved_value", setting=title, value=label))


def _parse_input(
    services: Services, ctx: views.MenuContext, option: ModelOption, model_id: str, text: str
) -> tuple[Any, str | None]:
    """The value typed for `option`, or the message explaining why it cannot be used."""
    if option.kind == "seed":
        seed = parse_seed(text)
        if seed is None:
            return None, ctx.tr("settings.bad_seed", max=SEED_MAX)
        return seed, None
    value = clean_prompt(text)
    if not value:
        return None, ctx.tr("settings.bad_text")
    if option.max_length and len(value) > option.max_length:
        return None, ctx.tr(
            "error.input.negative_prompt_too_long", limit=option.max_length, length=len(value)
        )
    refused = rejection(checker(services), model_id, {option.name: value})
    if refused is not None:
        return None, ctx.tr(f"error.input.{refused.code}", **refused.params)
    return value, None


def register(application: Application) -> None:  # type: ignore[type-arg]
    application.add_handler(CommandHandler("settings", settings_command))
    application.add_handler(CommandHandler("model", model_command))
    application.add_handler(CallbackQueryHandler(on_button, pattern=views.PATTERN))
    application.add_handler(
        MessageHandler(filters.UpdateType.MESSAGE & filters.TEXT & ~filters.COMMAND, on_input),
        group=INPUT_GROUP,
    )
