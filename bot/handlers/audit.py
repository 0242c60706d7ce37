"""Audit and spend: /modlog (a group's recent requests and what was decided about them) and
/usage (edits and their credits: reported by the image service, or estimated from the model's
price where it reports none; storage/spend.py, the figure the spending limits use too).

/modlog is for a group's admins. /usage shows a group's spend and its top members to its
admins, members their own spend in the group, and in a private chat the user's own spend.
Everything is counted from the edits table (every replica agrees).
"""

from __future__ import annotations

import html
import time

from telegram import Update
from telegram.constants import ChatType, ParseMode
from telegram.ext import Application, CommandHandler

from bot.buttons import shorten
from bot.formats import format_credits
from bot.handlers.common import admin_command, incoming, reply
from bot.services import BotContext, Services
from domain.edit import Edit, EditState
from storage.moderation import PERIODS, Spend
from storage.spend import edit_spend

MODLOG_SIZE = 15
PROMPT_PREVIEW = 60
TOP_MEMBERS = 5
TOP_SINCE = 30 * 24 * 3600.0


def _preview(prompt: str) -> str:
    return shorten(" ".join(prompt.split()), PROMPT_PREVIEW)


def _credits(amount: float, estimated: bool) -> str:
    """An amount, marked "~" when (partly) estimated rather than reported."""
    return ("~" if estimated else "") + format_credits(round(amount, 2))


def _name(name: str | None, user_id: int) -> str:
    return html.escape(name or f"id {user_id}")


def modlog_item(services: Services, lang: str, edit: Edit) -> str:
    """One request: who asked what, the decision and who made it, its state, credits."""

    def tr(key: str, **params: object) -> str:
        return services.tr(lang, key, **params)

    admin = html.escape(edit.decided_by_name or "")
    if edit.decision in ("approved", "rejected"):
        decision = tr(f"modlog.decision.{edit.decision}", admin=admin)
    elif edit.decision == "expired":
        decision = tr("modlog.decision.expired")
    elif edit.state is EditState.AWAITING_APPROVAL:
        decision = tr("modlog.decision.pending")
    else:
        decision = tr("modlog.decision.none")
    details = [decision, tr(f"history.state.{edit.state.value}")]
    amount, estimated = edit_spend(edit)
    if amount and edit.task_id is not None:
        details.append(tr("modlog.credits", credits=_credits(amount, estimated)))
    if edit.removed_by_name:
        details.append(tr("modlog.removed", admin=html.escape(edit.removed_by_name)))
    return tr(
        "modlog.item",
        id=edit.id,
        requester=_name(edit.user_name, edit.user_id),
        prompt=html.escape(_preview(edit.prompt)),
        details=" · ".join(details),
    )


async def modlog_command(update: Update, context: BotContext) -> None:
    """The group's recent edit requests: requester, prompt, decision, who decided, state."""
    checked = await admin_command(update, context)
    if checked is None:
        return
    message, services, lang = checked.message, checked.services, checked.lang
    edits = await services.db.moderation.recent_requests(message.chat_id, limit=MODLOG_SIZE)
    if not edits:
        await reply(message, services.tr(lang, "modlog.empty"))
        return
    title = services.tr(lang, "modlog.title", title=html.escape(message.chat.title or ""))
    lines = [title, "", *(modlog_item(services, lang, edit) for edit in edits)]
    await reply(message, "\n".join(lines), parse_mode=ParseMode.HTML)


def _periods(services: Services, lang: str, spend: dict[str, Spend]) -> list[str]:
    return [
        services.tr(
            lang,
            "usage.line",
            period=services.tr(lang, f"usage.period.{name}"),
            edits=spend[name].edits,
            credits=_credits(spend[name].credits, spend[name].estimated),
        )
        for name, _span in PERIODS
    ]


async def usage_command(update: Update, context: BotContext) -> None:
    """Edits and credits: a group's (admins), one's own in a group (members) or in private."""
    asked = await incoming(update, context)
    if asked is None:
        return
    message, user, services, lang = asked.message, asked.user, asked.services, asked.lang
    chat = message.chat
    if chat.type == ChatType.PRIVATE:
        spend = await services.db.moderation.usage(user_id=user.id)
        lines = [services.tr(lang, "usage.title.own"), "", *_periods(services, lang, spend)]
    elif await services.admins.may_change(
        context.bot, chat, user.id, sender_chat=message.sender_chat
    ):
        spend = await services.db.moderation.usage(chat_id=chat.id)
        title = services.tr(lang, "usage.title.group", title=html.escape(chat.title or ""))
        lines = [title, "", *_periods(services, lang, spend)]
        top = await services.db.moderation.top_spenders(
            chat.id, since=time.time() - TOP_SINCE, limit=TOP_MEMBERS
        )
        if top:
            lines += ["", services.tr(lang, "usage.top")]
            lines += [
                services.tr(
                    lang,
                    "usage.top_item",
                    n=number,
                    name=_name(member.name, member.user_id),
                    edits=member.edits,
                    credits=_credits(member.credits, member.estimated),
                )
                for number, member in enumerate(top, start=1)
            ]
    else:
        spend = await services.db.moderation.usage(chat_id=chat.id, user_id=user.id)
        title = services.tr(lang, "usage.title.own_group", title=html.escape(chat.title or ""))
        lines = [title, "", *_periods(services, lang, spend)]
    lines += ["", services.tr(lang, "usage.note")]
    await reply(message, "\n".join(lines), parse_mode=ParseMode.HTML)


def register(application: Application) -> None:  # type: ignore[type-arg]
    application.add_handler(CommandHandler("modlog", modlog_command))
    application.add_handler(CommandHandler("usage", usage_command))
