"""Paid edits with Telegram Stars: /buy, /balance, /paysupport, /terms, the pre-checkout
answer and the credit of a successful payment (operators' /grant and /refund live with the
other operator commands, bot/handlers/operators.py).

A successful payment is credited exactly once, keyed by its `telegram_payment_charge_id`
(`db.balances.credit_purchase`): a repeated update finds its ledger entry, and an update
whose handling died half-way is handled again after a restart by the durable intake
(bot/intake.py), which records every update before Telegram hears it arrived.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.constants import ChatType
from telegram.error import BadRequest
from telegram.ext import Application, CommandHandler, MessageHandler, PreCheckoutQueryHandler
from telegram.ext import filters as tg_filters

from bot import payments, policy
from bot.handlers.common import Incoming, incoming, reply
from bot.services import BotContext

log = logging.getLogger(__name__)


async def _paid(update: Update, context: BotContext) -> Incoming | None:
    """The message of a payment command, when payments are on (else it says they are off)."""
    asked = await incoming(update, context)
    if asked is None:
        return None
    if not asked.services.settings.payments:
        await reply(asked.message, asked.tr("payments.off"))
        return None
    return asked


async def buy_command(update: Update, context: BotContext) -> None:
    """/buy: the packs on sale, one invoice each, in a private chat."""
    asked = await _paid(update, context)
    if asked is None:
        return
    if asked.message.chat.type != ChatType.PRIVATE:
        await reply(asked.message, asked.tr("payments.private_only"))
        return
    # Nothing is sold to someone who could not spend it.
    refused = await policy.access_refusal(asked.services, asked.origin)
    if refused is not None:
        await reply(asked.message, asked.tr(refused))
        return
    settings = asked.services.settings
    await reply(asked.message, asked.tr("payments.buy", free=settings.free_edits_daily))
    await payments.send_invoices(context.bot, settings, asked.message.chat_id, asked.tr)


async def balance_command(update: Update, context: BotContext) -> None:
    """/balance: the user's balance, today's free allowance and latest movements."""
    asked = await _paid(update, context)
    if asked is None:
        return
    account = await asked.services.db.balances.account(asked.user.id)
    text = payments.balance_text(asked.tr, asked.services.settings, account)
    await reply(asked.message, text)


async def paysupport_command(update: Update, context: BotContext) -> None:
    asked = await _paid(update, context)
    if asked is not None:
        own = asked.services.settings.paysupport_text
        await reply(asked.message, own or asked.tr("payments.support"))


async def terms_command(update: Update, context: BotContext) -> None:
    asked = await _paid(update, context)
    if asked is not None:
        own = asked.services.settings.terms_text
        await reply(asked.message, own or asked.tr("payments.terms"))


async def pre_checkout(update: Update, context: BotContext) -> None:
    """Answer at once (Telegram waits 10 s): yes for a pack still on sale at its price, to a
    user who may use the bot."""
    query = update.pre_checkout_query
    if query is None:
        return
    services = context.services
    lang = await services.lang_for(query.from_user)
    error = None
    if not payments.on_sale(
        services.settings, query.invoice_payload, query.currency, query.total_amount
    ):
        error = "payments.gone"
    elif await policy.banned_everywhere(services, query.from_user.id):
        error = "access.banned"
    ok = error is None
    message = None if ok else services.tr(lang, str(error))
    try:
        await query.answer(ok=ok, error_message=message)
    except BadRequest as exc:  # a repeated update: answered before
        log.info("pre-checkout query not answered", extra={"error": exc.message})


async def successful_payment(update: Update, context: BotContext) -> None:
    """Credit the pack, once per charge, and send the receipt (again, if handled again)."""
    asked = await incoming(update, context)
    if asked is None or asked.message.successful_payment is None:
        return
    paid = asked.message.successful_payment
    pack = payments.pack_of(paid.invoice_payload)
    balances = asked.services.db.balances
    charge_id = paid.telegram_payment_charge_id
    if pack is None:
        log.error("payment for an unknown payload", extra={"charge_id": charge_id})
        return
    new = await balances.credit_purchase(asked.user.id, charge_id, pack.edits, paid.total_amount)
    if not new:
        # Handled again (after a crash before the receipt went out): the receipt, at least
        # once; the credit, exactly once.
        log.info("payment credited before", extra={"charge_id": charge_id})
    balance = (await balances.account(asked.user.id)).balance
    text = asked.tr(
        "payments.receipt",
        edits=pack.edits,
        stars=paid.total_amount,
        balance=balance,
        charge=charge_id,
    )
    await reply(asked.message, text)


def register(application: Application) -> None:  # type: ignore[type-arg]
    for name, callback in (
        ("buy", buy_command),
        ("balance", balance_command),
        ("paysupport", paysupport_command),
        ("terms", terms_command),
    ):
        application.add_handler(CommandHandler(name, callback))
    application.add_handler(PreCheckoutQueryHandler(pre_checkout))
    application.add_handler(MessageHandler(tg_filters.SUCCESSFUL_PAYMENT, successful_payment))
