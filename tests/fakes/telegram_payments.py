"""The fake Telegram's payments in Telegram Stars: invoices, pre-checkout queries, successful
payments, refunds and the bot's Star transactions.

Like Telegram: an invoice in ``XTR`` has exactly one price and no provider token; a
pre-checkout query is answered once (``ok=false`` needs an ``error_message``); a charge is
refunded once (``CHARGE_ALREADY_REFUNDED`` after), an unknown one is ``CHARGE_NOT_FOUND``.
The payment itself is the test's move: `pre_checkout_update` (what Telegram sends when the
user presses Pay) and, after the bot said yes, `successful_payment_update` (the message the
payment leaves in the chat; the charge becomes refundable and shows in getStarTransactions).
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Any

from tests.fakes.telegram_chats import now
from tests.fakes.telegram_errors import Json, bad
from tests.fakes.telegram_files import Upload
from tests.fakes.telegram_updates import UpdateFeed

INVOICE_PARAMS = frozenset(
    {"chat_id", "title", "description", "payload", "currency", "prices", "provider_token"}
)


@dataclass
class Charge:
    """A payment the fake made: who paid, for what, and whether it was refunded."""

    charge_id: str
    user_id: int
    payload: str
    amount: int
    date: int
    refunded: bool = False


class PaymentMethods(UpdateFeed):
    """sendInvoice, answerPreCheckoutQuery, refundStarPayment, getStarTransactions."""

    def __init__(self, token: str, username: str) -> None:
        super().__init__(token, username)
        self.charges: dict[str, Charge] = {}
        self.pre_checkout_answers: dict[str, Json] = {}
        """Pre-checkout query id -> the bot's answer (``ok``, ``error_message``)."""
        self._pre_checkouts: set[str] = set()
        self._charge_ids = itertools.count(1)

    def payment_routes(self) -> dict[str, Any]:
        """The methods this part models (registered by `FakeTelegram`, after the server's
        own routes exist)."""
        return {
            "sendInvoice": (self._send_invoice, INVOICE_PARAMS),
            "answerPreCheckoutQuery": (
                self._answer_pre_checkout_query,
                frozenset({"pre_checkout_query_id", "ok", "error_message"}),
            ),
            "refundStarPayment": (
                self._refund_star_payment,
                frozenset({"user_id", "telegram_payment_charge_id"}),
            ),
            "getStarTransactions": (self._get_star_transactions, frozenset({"offset", "limit"})),
        }

    # ------------------------------------------------------------------------ update builders

    def pre_checkout_update(
        self, user: Json | int, payload: str, total_amount: int, *, currency: str = "XTR"
    ) -> Json:
        """The user pressed Pay on an invoice: Telegram asks the bot to confirm."""
        query_id = str(6_000_000_000_000_000_000 + next(self._ids))
        self._pre_checkouts.add(query_id)
        return {
            "update_id": next(self._update_ids),
            "pre_checkout_query": {
                "id": query_id,
                "from": self._as_user(user),
                "currency": currency,
                "total_amount": total_amount,
                "invoice_payload": payload,
            },
        }

    def successful_payment_update(
        self, chat_id: int, user: Json | int, payload: str, total_amount: int
    ) -> Json:
        """The payment went through: its service message in the chat, with a new charge id."""
        sender = self._as_user(user)
        charge = Charge(
            charge_id=f"stxFakeCharge{next(self._charge_ids):06d}",
            user_id=int(sender["id"]),
            payload=payload,
            amount=total_amount,
            date=now(),
        )
        self.charges[charge.charge_id] = charge
        content = {
            "successful_payment": {
                "currency": "XTR",
                "total_amount": total_amount,
                "invoice_payload": payload,
                "telegram_payment_charge_id": charge.charge_id,
                "provider_payment_charge_id": "",
            }
        }
        return self._user_message_update(chat_id, sender, content, None, None)

    # ------------------------------------------------------------------------------ methods

    async def _send_invoice(self, params: Json, uploads: dict[str, Upload]) -> Any:
        chat_id = self._resolve_chat(params)
        title, description = str(params.get("title") or ""), str(params.get("description") or "")
        payload = str(params.get("payload") or "")
        if not 1 <= len(title) <= 32:
            raise bad("INVOICE_TITLE_INVALID" if title else "title is empty")
        if not 1 <= len(description) <= 255:
            raise bad("INVOICE_DESCRIPTION_INVALID")
        if not 1 <= len(payload.encode()) <= 128:
            raise bad("INVOICE_PAYLOAD_INVALID")
        if params.get("currency") != "XTR":
            raise bad("CURRENCY_INVALID")
        if params.get("provider_token"):
            raise bad("PAYMENT_PROVIDER_INVALID")  # Stars take no provider
        prices = params.get("prices")
        if not isinstance(prices, list) or len(prices) != 1:
            raise bad("STARS_INVOICE_INVALID")  # exactly one price in XTR
        amount = prices[0].get("amount") if isinstance(prices[0], dict) else None
        if not isinstance(amount, int) or amount <= 0 or not prices[0].get("label"):
            raise bad("STARS_INVOICE_INVALID")
        invoice = {
            "title": title,
            "description": description,
            "start_parameter": "",
            "currency": "XTR",
            "total_amount": amount,
        }
        message = self._bot_message(chat_id, {"invoice": invoice}, reply=None, markup=None)
        message["invoice_payload"] = payload  # not in Telegram's Message: for the tests
        return message

    async def _answer_pre_checkout_query(self, params: Json, uploads: dict[str, Upload]) -> Any:
        query_id = str(params.get("pre_checkout_query_id") or "")
        if query_id not in self._pre_checkouts or query_id in self.pre_checkout_answers:
            raise bad("QUERY_ID_INVALID")
        ok = params.get("ok")
        if not isinstance(ok, bool):
            raise bad("ok must be a boolean")
        if not ok and not params.get("error_message"):
            raise bad("ERROR_MESSAGE_EMPTY")
        self.pre_checkout_answers[query_id] = {
            "ok": ok,
            "error_message": params.get("error_message"),
        }
        return True

    async def _refund_star_payment(self, params: Json, uploads: dict[str, Upload]) -> Any:
        charge = self.charges.get(str(params.get("telegram_payment_charge_id") or ""))
        if charge is None or charge.user_id != params.get("user_id"):
            raise bad("CHARGE_NOT_FOUND")
        if charge.refunded:
            raise bad("CHARGE_ALREADY_REFUNDED")
        charge.refunded = True
        return True

    async def _get_star_transactions(self, params: Json, uploads: dict[str, Upload]) -> Any:
        transactions: list[Json] = []
        for charge in self.charges.values():
            partner = {
                "type": "user",
                "transaction_type": "invoice_payment",
                "user": self._user_json(charge.user_id),
                "invoice_payload": charge.payload,
            }
            entry = {"id": charge.charge_id, "amount": charge.amount, "date": charge.date}
            transactions.append({**entry, "source": copy.deepcopy(partner)})
            if charge.refunded:
                transactions.append({**entry, "receiver": copy.deepcopy(partner)})
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        return {"transactions": transactions[offset : offset + limit]}
