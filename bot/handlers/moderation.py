"""/moderation and the admin commands that go with it: how a group's admins control edits.

Only the group's admins (getChatMember, cached a few minutes; anonymous admins writing as
the group count too) open the panel, press its buttons or use the commands:

    /moderation          the panel: who may edit, approval, limits, safety lock, lists
    /allow, /deny        as a reply to a member's message: approve a member (or not)
    /ban, /unban         as a reply to a member's message: stop a member from editing
    /block, /unblock     a word or phrase (several: separated by commas) in prompts

The rules are stored with the group's settings (compare-and-set, so two admins never lose
each other's change) and applied to every request by `bot.policy`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Literal

from telegram import Chat, Message, Update, User
from telegram.constants import ChatType, ParseMode
from telegram.ext import Application, CallbackQueryHandler, CommandHandler

from bot.blocklist import parse_phrases
from bot.handlers import moderation_views as views
from bot.handlers.common import admin_command, answer_press, reply
from bot.origin import actor_of, replied_to
from bot.rewrite import redraw
from bot.services import BotContext, Services
from storage.chat_settings import ChatPrefs
from storage.moderation import SAFETY_OPTION, Moderation, WhoMayEdit

log = logging.getLogger(__name__)

Role = Literal["allowed", "banned"]


async def panel_context(services: Services, user: User | None, chat: Chat) -> views.PanelContext:
    return views.PanelContext(
        lang=await services.lang_for(user, chat), translator=services.translator, chat=chat
    )


async def change(
    services: Services, chat_id: int, user_id: int, edit: Callable[[Moderation], Moderation]
) -> Moderation:
    """Change the group's rules atomically (compare-and-set with every other setting)."""

    def apply(prefs: ChatPrefs) -> ChatPrefs:
        moderation = edit(prefs.moderation)
        if moderation.safety_locked and not prefs.moderation.safety_locked:
            prefs = prefs.with_param(SAFETY_OPTION, None)  # back to the default: on
        return replace(prefs, moderation=moderation)

    return (await services.db.chat_settings.update(chat_id, apply, user_id=user_id)).moderation


async def moderation_command(update: Update, context: BotContext) -> None:
    """Open the group's moderation panel (admins only)."""
    checked = await admin_command(update, context)
    if checked is None:
        return
    message, user, services = checked.message, checked.user, checked.services
    ctx = await panel_context(services, user, message.chat)
    prefs = await services.db.chat_settings.get(message.chat_id, fresh=True)
    text, markup = views.home(ctx, prefs.moderation)
    await reply(message, text, parse_mode=ParseMode.HTML, reply_markup=markup)


class _Stale(Exception):
    """The button refers to something that is gone (a phrase, a member)."""


async def on_button(update: Update, context: BotContext) -> None:
    """A panel button: admins only; apply, answer, redraw the panel in place."""
    query = update.callback_query
    if query is None or query.data is None:
        return
    services = context.services
    message = query.message
    chat = message.chat if message is not None else None
    lang = await services.lang_for(query.from_user, chat)
    parts = query.data.split(":")[1:]
    if not parts or not isinstance(message, Message) or message.chat.type == ChatType.PRIVATE:
        await answer_press(query, services.tr(lang, "error.unknown_button"))
        return
    if not await services.admins.may_change(context.bot, message.chat, query.from_user.id):
        await answer_press(query, services.tr(lang, "moderation.admins_only"), alert=True)
        return
    ctx = await panel_context(services, query.from_user, message.chat)
    try:
        view, toast = await _apply(services, ctx, message.chat_id, query.from_user.id, parts)
    except _Stale:
        prefs = await services.db.chat_settings.get(message.chat_id, fresh=True)
        view, toast = views.home(ctx, prefs.moderation), ctx.tr("error.unknown_button")
    try:
        await redraw(context.bot, message, view)
    finally:  # every press is answered, after the panel shows its effect
        await answer_press(query, toast)


async def _apply(
    services: Services, ctx: views.PanelContext, chat_id: int, user_id: int, parts: list[str]
) -> tuple[views.View, str | None]:
    mod = (await services.db.chat_settings.get(chat_id, fresh=True)).moderation
    saved = ctx.tr("moderation.saved")

    async def save(edit: Callable[[Moderation], Moderation]) -> Moderation:
        return await change(services, chat_id, user_id, edit)

    action, args = parts[0], parts[1:]
    if action == "home" and not args:
        return views.home(ctx, mod), None
    if action == "close" and not args:
        return views.closed(ctx), None
    if action == "who" and not args:
        return views.who_view(ctx, mod), None
    if action == "w" and len(args) == 1 and args[0] in WhoMayEdit._value2member_map_:
        who = WhoMayEdit(args[0])
        mod = await save(lambda m: replace(m, who=who))
        return views.who_view(ctx, mod), saved
    if action == "appr" and not args:
        mod = await save(lambda m: replace(m, approval=not m.approval))
        return views.home(ctx, mod), saved
    if action == "safe" and not args:
        mod = await save(lambda m: replace(m, safety_locked=not m.safety_locked))
        return views.home(ctx, mod), saved
    if action == "lim" and len(args) == 1 and args[0] in views.LIMIT_FIELDS:
        return views.limit_view(ctx, mod, _kind(args[0])), None
    if action == "set" and len(args) == 2 and args[0] in views.LIMIT_FIELDS and args[1].isdigit():
        kind, index = _kind(args[0]), int(args[1])
        choices = views.LIMIT_CHOICES[kind]
        if index >= len(choices):
            raise _Stale(args[1])
        value = choices[index]
        mod = await save(lambda m: m.with_limit(kind, value))
        return views.limit_view(ctx, mod, kind), saved
    if action == "words" and not args:
        return views.words_view(ctx, mod), None
    if action == "unw" and len(args) == 1:
        phrase = next((p for p in mod.blocklist if views.phrase_key(p) == args[0]), None)
        if phrase is None:
            raise _Stale(args[0])
        mod = await save(lambda m: m.with_phrases(remove=(phrase,)))
        return views.words_view(ctx, mod), saved
    if action in ("bans", "ok") and not args:
        role: Role = "banned" if action == "bans" else "allowed"
        return views.members_view(ctx, dict(getattr(mod, role)), role=role), None
    # A member is a user id, or a channel's (negative) id.
    if action in ("unban", "deny") and len(args) == 1 and args[0].removeprefix("-").isdigit():
        role = "banned" if action == "unban" else "allowed"
        member = int(args[0])
        if member not in getattr(mod, role):
            raise _Stale(args[0])
        mod = await save(lambda m: m.with_member(role, member, None))
        return views.members_view(ctx, dict(getattr(mod, role)), role=role), saved
    raise _Stale(":".join(parts))


def _kind(code: str) -> views.LimitKind:
    if code == "m":
        return "m"
    if code == "g":
        return "g"
    return "c"


# Commands as a reply to a member's message --------------------------------------------------


async def _member_rule(update: Update, context: BotContext, role: Role, add: bool) -> None:
    checked = await admin_command(update, context)
    if checked is None:
        return
    message, user, services, lang = checked.message, checked.user, checked.services, checked.lang
    target = replied_to(message)
    sender = target.from_user if target is not None else None
    # Whom the message speaks for (`bot.origin`): its user, or the channel it was posted as.
    member = actor_of(target, sender) if target is not None and sender is not None else None
    if (
        target is None
        or sender is None
        or member is None
        or (sender.is_bot and target.sender_chat is None)  # a bot is no member
        or (member.id == message.chat_id and not (role == "banned" and add))  # the group itself
    ):
        await reply(message, services.tr(lang, "moderation.member_usage"))
        return
    name = member.name
    if (
        role == "banned"
        and add
        and await services.admins.may_change(context.bot, message.chat, member.id)
    ):  # an admin, or an anonymous admin writing as the group
        await reply(message, services.tr(lang, "moderation.ban_admin", name=name))
        return
    mod = await change(
        services,
        message.chat_id,
        user.id,
        lambda m: m.with_member(role, member.id, name if add else None),
    )
    key = {
        ("allowed", True): "moderation.allowed",
        ("allowed", False): "moderation.denied",
        ("banned", True): "moderation.banned",
        ("banned", False): "moderation.unbanned",
    }[(role, add)]
    text = services.tr(lang, key, name=name)
    if role == "allowed" and mod.who is not WhoMayEdit.APPROVED:
        text += "\n" + services.tr(lang, "moderation.allowed_note")
    log.info(
        "member rule changed",
        extra={"chat_id": message.chat_id, "role": role, "add": add, "member_id": member.id},
    )
    await reply(message, text)


async def allow_command(update: Update, context: BotContext) -> None:
    """/allow as a reply: the member may edit when only approved members may."""
    await _member_rule(update, context, "allowed", True)


async def deny_command(update: Update, context: BotContext) -> None:
    """/deny as a reply: take the member off the approved list."""
    await _member_rule(update, context, "allowed", False)


async def ban_command(update: Update, context: BotContext) -> None:
    """/ban as a reply: the member may no longer ask for edits here."""
    await _member_rule(update, context, "banned", True)


async def unban_command(update: Update, context: BotContext) -> None:
    """/unban as a reply: lift the member's ban."""
    await _member_rule(update, context, "banned", False)


async def _phrases(update: Update, context: BotContext, add: bool) -> None:
    checked = await admin_command(update, context)
    if checked is None:
        return
    message, user, services, lang = checked.message, checked.user, checked.services, checked.lang
    parts = (message.text or "").split(maxsplit=1)
    phrases, too_long = parse_phrases(parts[1] if len(parts) > 1 else "")
    if not phrases:
        key = "moderation.phrase_too_long" if too_long else "moderation.block_usage"
        await reply(message, services.tr(lang, key))
        return
    before = (await services.db.chat_settings.get(message.chat_id, fresh=True)).moderation.blocklist
    added = tuple(phrases)
    mod = await change(
        services,
        message.chat_id,
        user.id,
        (lambda m: m.with_phrases(add=added)) if add else (lambda m: m.with_phrases(remove=added)),
    )
    if add:
        done = [p for p in phrases if p in mod.blocklist]
        key = "moderation.blocked" if done else "moderation.blocklist_full"
    else:
        done = [p for p in phrases if p in before and p not in mod.blocklist]
        key = "moderation.unblocked" if done else "moderation.unblock_missing"
    text = services.tr(lang, key, phrases=", ".join(done), n=len(mod.blocklist))
    if too_long:
        text += "\n" + services.tr(lang, "moderation.phrase_too_long")
    await reply(message, text)


async def block_command(update: Update, context: BotContext) -> None:
    """/block word, phrase: refuse prompts containing them (whole words, any case)."""
    await _phrases(update, context, True)


async def unblock_command(update: Update, context: BotContext) -> None:
    """/unblock word, phrase: take them off the blocklist."""
    await _phrases(update, context, False)


def register(application: Application) -> None:  # type: ignore[type-arg]
    application.add_handler(CommandHandler("moderation", moderation_command))
    application.add_handler(CommandHandler("allow", allow_command))
    application.add_handler(CommandHandler("deny", deny_command))
    application.add_handler(CommandHandler("ban", ban_command))
    application.add_handler(CommandHandler("unban", unban_command))
    application.add_handler(CommandHandler("block", block_command))
    application.add_handler(CommandHandler("unblock", unblock_command))
    application.add_handler(CallbackQueryHandler(on_button, pattern=views.PATTERN))
