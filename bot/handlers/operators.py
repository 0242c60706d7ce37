"""Operators (ADMIN_IDS) manage users at runtime, from a private chat with the bot.

/botban, /botunban: a bot-wide ban. /botallow, /botdisallow: the runtime allowlist (it adds
to ALLOWED_USER_IDS). /userlimits: one user's record, or their own limits changed. /limits:
the caps, the spend and the heaviest users. /oplog: who changed what, when. With paid edits:
/grant adds to (or takes from) a user's balance, /refund gives a purchase's Stars back.

A user is named by numeric id, or the command replies to a message forwarded from them.
Everything is stored in the database (`db.user_controls`) and read on every request, so a
change holds on every replica at once; each change is written to the audit log with it.
"""

from __future__ import annotations

import time

from telegram import Update
from telegram.constants import ChatType, ParseMode
from telegram.error import TelegramError
from telegram.ext import Application, CommandHandler

from bot.handlers.common import Incoming, incoming, reply
from bot.handlers.operators_views import (
    BadLimit,
    Target,
    command_target,
    limits_overview,
    limits_text,
    oplog_text,
    parse_limits,
    user_text,
)
from bot.services import BotContext
from storage.spend import day_bounds, month_bounds
from storage.user_controls import UserOverrides

DAY = 24 * 3600.0
MONTH = 30 * DAY
REASON_MAX = 200
GRANT_MAX = 100_000  # edits one /grant may add or take


async def operator_command(update: Update, context: BotContext) -> Incoming | None:
    """The command if an operator sent it in a private chat; otherwise say why not."""
    asked = await incoming(update, context)
    if asked is None:
        return None
    if asked.user.id not in asked.services.settings.admin_ids:
        await reply(asked.message, asked.tr("operators.only"))
        return None
    if asked.message.chat.type != ChatType.PRIVATE:
        await reply(asked.message, asked.tr("operators.private_only"))
        return None
    return asked


async def operator_target(
    update: Update, context: BotContext, command: str
) -> tuple[Incoming, Target, int] | None:
    """An operator's command about one user: the command, its target and the user's id;
    answers with the command's usage (or why not) and gives None when that is all."""
    asked = await operator_command(update, context)
    if asked is None:
        return None
    target = command_target(context.args or [], asked.message)
    if target.user_id is None:
        key = "operators.hidden_forward" if target.hidden else f"operators.usage.{command}"
        await reply(asked.message, asked.tr(key))
        return None
    return asked, target, target.user_id


async def ban_command(update: Update, context: BotContext) -> None:
    """/botban <user id> [reason]: refuse the user's edits everywhere."""
    about = await operator_target(update, context, "botban")
    if about is None:
        return
    asked, target, user_id = about
    if user_id in asked.services.settings.admin_ids:
        await reply(asked.message, asked.tr("operators.ban.operator"))
        return
    reason = " ".join(target.rest)[:REASON_MAX]
    changed = await asked.services.db.user_controls.set_banned(
        user_id, True, by=asked.user.id, detail=reason
    )
    key = "operators.ban.done" if changed else "operators.ban.already"
    await reply(asked.message, asked.tr(key, user=user_id))


async def unban_command(update: Update, context: BotContext) -> None:
    """/botunban <user id>: lift a bot-wide ban."""
    about = await operator_target(update, context, "botunban")
    if about is None:
        return
    asked, _target, user_id = about
    changed = await asked.services.db.user_controls.set_banned(user_id, False, by=asked.user.id)
    key = "operators.unban.done" if changed else "operators.unban.already"
    await reply(asked.message, asked.tr(key, user=user_id))


async def allow_command(update: Update, context: BotContext) -> None:
    """/botallow <user id>: add the user to the runtime allowlist."""
    about = await operator_target(update, context, "botallow")
    if about is None:
        return
    asked, _target, user_id = about
    changed = await asked.services.db.user_controls.set_allowed(user_id, True, by=asked.user.id)
    key = "operators.allow.done" if changed else "operators.allow.already"
    text = asked.tr(key, user=user_id)
    settings = asked.services.settings
    if not (settings.allowed_user_ids or settings.allowed_chat_ids):
        text += "\n" + asked.tr("operators.allow.open")
    await reply(asked.message, text)


async def disallow_command(update: Update, context: BotContext) -> None:
    """/botdisallow <user id>: take the user off the runtime allowlist."""
    about = await operator_target(update, context, "botdisallow")
    if about is None:
        return
    asked, _target, user_id = about
    changed = await asked.services.db.user_controls.set_allowed(user_id, False, by=asked.user.id)
    key = "operators.disallow.done" if changed else "operators.disallow.already"
    text = asked.tr(key, user=user_id)
    if user_id in asked.services.settings.allowed_user_ids:
        text += "\n" + asked.tr("operators.disallow.configured")
    await reply(asked.message, text)


async def user_limits_command(update: Update, context: BotContext) -> None:
    """/userlimits <user id> [name=value …|reset]: show the user's record, or change their
    own limits (in_flight, daily, credits; `default` for the deployment's)."""
    about = await operator_target(update, context, "userlimits")
    if about is None:
        return
    asked, target, user_id = about
    controls = asked.services.db.user_controls
    control = await controls.get(user_id)
    if not target.rest:
        await reply(asked.message, user_text(asked.tr, user_id, control))
        return
    current = control.limits if control is not None else UserOverrides()
    try:
        limits = parse_limits(current, target.rest)
    except BadLimit as exc:
        text = asked.tr("operators.limits.bad", part=exc.part)
        await reply(asked.message, text + "\n" + asked.tr("operators.usage.userlimits"))
        return
    await controls.set_limits(user_id, limits, by=asked.user.id)
    shown = limits_text(asked.tr, limits)
    await reply(asked.message, asked.tr("operators.limits.set", user=user_id, limits=shown))


async def limits_command(update: Update, context: BotContext) -> None:
    """/limits: the caps, today's and this month's spend, the heaviest users."""
    asked = await operator_command(update, context)
    if asked is None:
        return
    controls = asked.services.db.user_controls
    now = time.time()
    text = limits_overview(
        asked.tr,
        asked.services.settings,
        day=await controls.spend(since=now - DAY),
        month=await controls.spend(since=now - MONTH),
        capped=(
            await asked.services.db.limits.spent_since(day_bounds(now)[0]),
            await asked.services.db.limits.spent_since(month_bounds(now)[0]),
        ),
        heaviest=await controls.heaviest(since=now - DAY),
        listed=await controls.listed(),
    )
    await reply(asked.message, text, parse_mode=ParseMode.HTML)


async def oplog_command(update: Update, context: BotContext) -> None:
    """/oplog: the operators' recent changes."""
    asked = await operator_command(update, context)
    if asked is None:
        return
    entries = await asked.services.db.user_controls.log()
    await reply(asked.message, oplog_text(asked.tr, entries), parse_mode=ParseMode.HTML)


async def grant_command(update: Update, context: BotContext) -> None:
    """/grant <user id> <edits> [note]: add edits to a user's balance (negative: take)."""
    about = await operator_target(update, context, "grant")
    if about is None:
        return
    asked, target, user_id = about
    if not asked.services.settings.payments:
        await reply(asked.message, asked.tr("payments.off"))
        return
    words = list(target.rest)
    forwarded = command_target([], asked.message)
    if not words and forwarded.user_id is not None:  # "/grant 5" replying to a forward
        user_id, words = forwarded.user_id, list(context.args or [])
    try:
        amount = int(words[0]) if words else 0
    except ValueError:
        amount = 0
    if not amount or abs(amount) > GRANT_MAX:
        await reply(asked.message, asked.tr("operators.usage.grant"))
        return
    note = " ".join(words[1:])[:REASON_MAX]
    balance = await asked.services.db.balances.grant(user_id, amount, by=asked.user.id, detail=note)
    text = asked.tr("operators.grant.done", user=user_id, edits=f"{amount:+d}", balance=balance)
    await reply(asked.message, text)


async def refund_command(update: Update, context: BotContext) -> None:
    """/refund <charge id>: give a purchase's Stars back and take its edits off the balance."""
    asked = await operator_command(update, context)
    if asked is None:
        return
    args = context.args or []
    if len(args) != 1:
        await reply(asked.message, asked.tr("operators.usage.refund"))
        return
    charge_id = args[0]
    balances = asked.services.db.balances
    state = await balances.charge_state(charge_id)
    if state is None:
        await reply(asked.message, asked.tr("operators.refund.unknown", charge=charge_id))
        return
    buyer, refunded = state
    if refunded:
        await reply(asked.message, asked.tr("operators.refund.already", charge=charge_id))
        return
    try:
        await context.bot.refund_star_payment(buyer, charge_id)
    except TelegramError as exc:
        # Refunded by Telegram before (a /refund that died before recording it): record it.
        if "CHARGE_ALREADY_REFUNDED" not in exc.message:
            reason = exc.message
            await reply(asked.message, asked.tr("operators.refund.failed", reason=reason))
            return
    done = await balances.refund(charge_id, by=asked.user.id)
    if done is None or not done.new:
        await reply(asked.message, asked.tr("operators.refund.already", charge=charge_id))
        return
    text = asked.tr("operators.refund.done", charge=charge_id, user=buyer, edits=done.amount)
    await reply(asked.message, text)


def register(application: Application) -> None:  # type: ignore[type-arg]
    for name, callback in (
        ("botban", ban_command),
        ("botunban", unban_command),
        ("botallow", allow_command),
        ("botdisallow", disallow_command),
        ("userlimits", user_limits_command),
        ("limits", limits_command),
        ("oplog", oplog_command),
        ("grant", grant_command),
        ("refund", refund_command),
    ):
        application.add_handler(CommandHandler(name, callback))
