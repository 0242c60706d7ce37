"""Paid edits with Telegram Stars (README: "Paid edits (Telegram Stars)"): what an edit asks
of its requester's balance, the packs on sale, their invoices and the /balance text.

Balances count edits, not Stars or provider credits: an edit costs one edit per result image
it asks for, whatever the model, so a price is the same for the user whatever the provider
charges the operator. Payments are on when STARS_PACKS lists a pack; then every request,
in every chat, is paid by the user who asks (never by a group), the day's free allowance
(FREE_EDITS_DAILY) first. Operators (ADMIN_IDS) do not pay.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from telegram import Bot, LabeledPrice

from bot.config import Settings
from bot.costs import image_count
from bot.formats import format_wait
from bot.providers.base import ModelSpec
from bot.setting_values import StarPack
from storage.balances import Account, Charge

CURRENCY = "XTR"  # Telegram Stars: no payment provider, an empty provider token
_PAYLOAD = re.compile(r"pack:(\d+):(\d+)")

Tr = Callable[..., str]


def charge_for(
    settings: Settings, user_id: int, spec: ModelSpec, params: Mapping[str, Any]
) -> Charge | None:
    """What a request asks of the user's balance; None when edits are not paid for (payments
    off, or an operator asks)."""
    if not settings.payments or user_id in settings.admin_ids:
        return None
    return Charge(user_id, image_count(spec, params), settings.free_edits_daily)


def payload(pack: StarPack) -> str:
    return f"pack:{pack.edits}:{pack.stars}"


def pack_of(payload_text: str) -> StarPack | None:
    """The pack an invoice sold (whether or not it is still on sale)."""
    match = _PAYLOAD.fullmatch(payload_text)
    return None if match is None else StarPack(int(match[1]), int(match[2]))


def on_sale(settings: Settings, payload_text: str, currency: str, total: int) -> bool:
    """The invoice is for a pack still on sale, at its price (checked before payment)."""
    pack = pack_of(payload_text)
    return (
        pack is not None
        and pack in settings.stars_packs
        and currency == CURRENCY
        and total == pack.stars
    )


async def send_invoices(bot: Bot, settings: Settings, chat_id: int, tr: Tr) -> None:
    """One invoice per pack, its price on it (and on its pay button) before paying."""
    for pack in settings.stars_packs:
        await bot.send_invoice(
            chat_id=chat_id,
            title=tr("payments.invoice.title", edits=pack.edits),
            description=tr("payments.invoice.description", edits=pack.edits, stars=pack.stars),
            payload=payload(pack),
            currency=CURRENCY,
            prices=[LabeledPrice(tr("payments.invoice.label", edits=pack.edits), pack.stars)],
            provider_token="",
        )


def balance_text(tr: Tr, settings: Settings, account: Account, now: float | None = None) -> str:
    """/balance: the balance, today's free allowance and the latest movements."""
    now = time.time() if now is None else now
    free_left = max(0, settings.free_edits_daily - account.free_used)
    lines = [
        tr("payments.balance", balance=account.balance),
        tr("payments.balance.free", left=free_left, daily=settings.free_edits_daily),
    ]
    if not account.movements:
        lines.append(tr("payments.balance.none"))
        return "\n".join(lines)
    lines.append(tr("payments.balance.movements"))
    for movement in account.movements:
        amount = f"{movement.amount:+d}"
        if movement.free:
            amount += " " + tr("payments.balance.free_part", free=movement.free)
        lines.append(
            tr(
                "payments.movement",
                ago=format_wait(tr, max(0.0, now - movement.created_at)),
                what=tr(f"payments.kind.{movement.kind}"),
                amount=amount,
            )
        )
    return "\n".join(lines)
