"""Paid edits with Telegram Stars, end to end through the real bot and the fake Bot API:
buying a pack (invoice, pre-checkout, successful payment credited once), spending on edits
after the day's free allowance, a failed edit's reservation coming back visibly, /balance,
the operators' /grant and /refund, concurrent edits never overdrawing a balance, and
payments off."""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import pytest
import sqlalchemy as sa

from domain import steps
from domain.edit import EditState
from storage.schema import updates
from tests.conftest import CHAT_ID, USER_ID, BotStarter, RunningBot, SettingsFactory
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram_server import ApiCall
from tests.test_e2e_moderation import MEMBER_ID, configure, in_group, photo, said
from tests.test_e2e_operators import OPERATOR_ID, photo_answer, say
from tests.test_e2e_settings import Chat

Json = dict[str, Any]
PACKS = "10:50,50:200"
RECEIPT_START = "✅ Payment received: 50 Stars for 10 edits. Your balance: 10 edits."
GROUP_ID = -100_777
SHORT = "💳 This edit needs 1 more edits: today's free edits are used up."


async def paid_bot(
    make_settings: SettingsFactory, start_bot: BotStarter, **more: Any
) -> RunningBot:
    settings = make_settings(**{"STARS_PACKS": PACKS, "FREE_EDITS_DAILY": 1, **more})
    return await start_bot(settings)


async def buy(tg: FakeTelegram, chat: Chat, payload: str, stars: int) -> ApiCall:
    """Press Pay on an invoice: the bot's pre-checkout answer must be yes, then the payment
    lands in the chat; the bot's receipt."""
    query = tg.pre_checkout_update(chat.user, payload, stars)
    query_id = query["pre_checkout_query"]["id"]
    await chat.deliver(query)
    await tg.wait_for(
        "answerPreCheckoutQuery", lambda c: c.params["pre_checkout_query_id"] == query_id
    )
    assert tg.pre_checkout_answers[query_id] == {"ok": True, "error_message": None}
    paid = tg.successful_payment_update(chat.chat_id, chat.user, payload, stars)
    await chat.deliver(paid)
    return await chat.reply_of(tg.message_of(paid))


async def handled(bot: RunningBot, update_id: int, within: float = 10.0) -> None:
    """Wait until the durable intake marked the update handled."""
    deadline = time.monotonic() + within
    stmt = sa.select(updates.c.done_at).where(updates.c.update_id == update_id)
    while (await bot.services.db.execute(stmt)).scalar() is None:
        assert time.monotonic() < deadline, f"update {update_id} never handled"
        await asyncio.sleep(0.02)


async def ledger_holds(bot: RunningBot, user_id: int) -> int:
    """The user's balance, checked to be the sum of their ledger."""
    balances = bot.services.db.balances
    balance = (await balances.account(user_id)).balance
    assert balance == await balances.ledger_sum(user_id)
    assert balance >= 0
    return balance


async def test_buy_a_pack_then_edits_spend_the_free_allowance_first_then_the_balance(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await paid_bot(make_settings, start_bot)
    await tg.wait_for("setWebhook")
    user = Chat(tg, CHAT_ID, tg.user(USER_ID))
    private = [c["command"] for c in tg.commands(scope={"type": "all_private_chats"})]
    assert {"buy", "balance", "paysupport", "terms"} <= set(private)
    group = [c["command"] for c in tg.commands(scope={"type": "all_group_chats"})]
    assert "buy" not in group

    # /buy: the prices, then one invoice per pack in Stars, no provider.
    intro = await say(user, "/buy")
    assert intro.startswith("💳 Edits are paid with Telegram Stars. You get 1 free edits every day")
    invoices = await tg.wait_for("sendInvoice", count=2)
    assert [(c.params["currency"], c.params["prices"][0]["amount"]) for c in invoices] == [
        ("XTR", 50),
        ("XTR", 200),
    ]
    assert [c.params["payload"] for c in invoices] == ["pack:10:50", "pack:50:200"]
    assert invoices[0].params["title"] == "10 edits"
    assert all(not c.params.get("provider_token") for c in invoices)

    receipt = await buy(tg, user, "pack:10:50", 50)
    assert str(receipt.params["text"]).startswith(RECEIPT_START)
    assert await ledger_holds(bot, USER_ID) == 10

    # The day's free edit first: the balance does not move.
    assert await photo_answer(user, "make it night") is None
    await bot.wait_state(EditState.DELIVERED, 1)
    assert await ledger_holds(bot, USER_ID) == 10
    # Then one edit (one result image) from the balance, settled when delivered.
    assert await photo_answer(user, "make it day") is None
    await bot.wait_state(EditState.DELIVERED, 2)
    assert await ledger_holds(bot, USER_ID) == 9

    shown = (await say(user, "/balance")).splitlines()
    assert shown[:3] == [
        "💳 Your balance: 9 edits.",
        "🎁 Free edits left today (UTC): 0 of 1.",
        "Latest movements:",
    ]
    assert shown[3].endswith("edit -1")
    assert shown[4].endswith("edit +0 (1 free)")
    assert shown[5].endswith("purchase +10")


async def test_a_repeated_successful_payment_credits_once(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await paid_bot(make_settings, start_bot)
    await tg.wait_for("setWebhook")
    user = Chat(tg, CHAT_ID, tg.user(USER_ID))
    await buy(tg, user, "pack:10:50", 50)
    [charge_id] = tg.charges
    assert await ledger_holds(bot, USER_ID) == 10

    # Telegram sends the same update again (it never heard the answer): the intake knows
    # its update_id, nothing reaches a handler.
    [paid] = [c for c in tg.calls_of("sendMessage") if "Receipt id" in str(c.params["text"])]
    message = tg.message(CHAT_ID, paid.params["reply_parameters"]["message_id"])
    assert message is not None
    assert message["successful_payment"]["telegram_payment_charge_id"] == charge_id
    first_id = await last_update_id(bot)
    await user.deliver({"update_id": first_id, "message": copy.deepcopy(message)})
    # The same payment under another update_id reaches the handler: the charge is found
    # credited, the receipt is repeated (at least once), the balance is not.
    again = {"update_id": first_id + 1000, "message": copy.deepcopy(message)}
    await user.deliver(again)
    await handled(bot, first_id + 1000)
    assert await ledger_holds(bot, USER_ID) == 10
    receipts = [c for c in tg.calls_of("sendMessage") if "Receipt id" in str(c.params["text"])]
    assert [str(c.params["text"]).startswith(RECEIPT_START) for c in receipts] == [True, True]
    purchases = await bot.services.db.balances.account(USER_ID)
    assert [m.kind for m in purchases.movements] == ["purchase"]


async def last_update_id(bot: RunningBot) -> int:
    stmt = sa.select(sa.func.max(updates.c.update_id))
    return int((await bot.services.db.execute(stmt)).scalar())


async def test_pre_checkout_refuses_a_pack_no_longer_sold_a_wrong_price_or_a_banned_user(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    support = "Write to @shop_help, we answer within a day."
    bot = await paid_bot(make_settings, start_bot, PAYSUPPORT_TEXT=support)
    await tg.wait_for("setWebhook")
    user = Chat(tg, CHAT_ID, tg.user(USER_ID))
    for payload, stars in (("pack:20:80", 80), ("pack:10:50", 40)):
        query = tg.pre_checkout_update(user.user, payload, stars)
        query_id = query["pre_checkout_query"]["id"]
        await user.deliver(query)
        await tg.wait_for(
            "answerPreCheckoutQuery", lambda c, q=query_id: c.params["pre_checkout_query_id"] == q
        )
        assert tg.pre_checkout_answers[query_id] == {
            "ok": False,
            "error_message": "This pack is no longer sold. Send /buy for the current packs.",
        }
    # Nothing is sold to a user the operators banned: neither /buy nor a pending invoice.
    await bot.services.db.user_controls.set_banned(USER_ID, True, by=OPERATOR_ID)
    assert (await say(user, "/buy")).startswith("🚫 Sorry, you can't use this bot.")
    assert len(tg.calls_of("sendInvoice")) == 0
    query = tg.pre_checkout_update(user.user, "pack:10:50", 50)
    query_id = query["pre_checkout_query"]["id"]
    await user.deliver(query)
    await tg.wait_for(
        "answerPreCheckoutQuery", lambda c: c.params["pre_checkout_query_id"] == query_id
    )
    assert tg.pre_checkout_answers[query_id]["ok"] is False
    assert await ledger_holds(bot, USER_ID) == 0
    # Telegram's rules for sellers: the operator's texts.
    assert await say(user, "/paysupport") == "Write to @shop_help, we answer within a day."
    assert (await say(user, "/terms")).startswith("Edits bought with Telegram Stars go to")


async def test_a_failed_edit_gives_its_reservation_back_and_says_so(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await paid_bot(make_settings, start_bot, FREE_EDITS_DAILY=0)
    await tg.wait_for("setWebhook")
    user = Chat(tg, CHAT_ID, tg.user(USER_ID))

    # Nothing on the balance, no free edits: refused before anything is downloaded or sent.
    refused = await photo_answer(user, "make it night")
    assert refused is not None and refused.startswith(SHORT)
    assert not kie.tasks and await bot.edits() == []

    await buy(tg, user, "pack:10:50", 50)
    kie.fail_next("/createTask", 422, "input.guidance_scale is out of range")
    update = tg.photo_update(CHAT_ID, user.user, make_jpeg(96, 96), caption="make it day")
    await user.deliver(update)
    [notice] = await tg.wait_for("editMessageText", lambda c: "guidance_scale" in c.params["text"])
    assert str(notice.params["text"]).endswith(
        "↩️ Nothing is charged for this edit: its 1 reserved edits are back (/balance)."
    )
    edit = await bot.wait_edit(lambda e: e.notified_at is not None)
    assert edit.state is EditState.FAILED
    assert await ledger_holds(bot, USER_ID) == 10
    account = await bot.services.db.balances.account(USER_ID)
    assert [(m.kind, m.amount) for m in account.movements] == [
        ("return", 1),
        ("spend", -1),
        ("purchase", 10),
    ]
    # Given back once: the sweeper and a repeated notice find the return made.
    assert (await bot.services.db.balances.release(edit.id)) is not None
    assert await ledger_holds(bot, USER_ID) == 10


async def test_operators_grant_and_refund_reach_the_ledger_and_the_audit_log(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await paid_bot(make_settings, start_bot)
    await tg.wait_for("setWebhook")
    operator = Chat(tg, OPERATOR_ID, tg.user(OPERATOR_ID))
    user = Chat(tg, CHAT_ID, tg.user(USER_ID))

    assert (await say(operator, f"/grant {USER_ID}")).startswith("Usage: /grant")
    granted = await say(operator, f"/grant {USER_ID} 5 welcome")
    assert granted == f"✅ User {USER_ID}: +5 edits; balance now 5."
    assert await ledger_holds(bot, USER_ID) == 5
    assert (await say(user, f"/grant {USER_ID} 5")).startswith("🔒")  # operators only

    await buy(tg, user, "pack:10:50", 50)
    [charge_id] = tg.charges
    assert await ledger_holds(bot, USER_ID) == 15
    assert await say(operator, "/refund nope") == "❓ No purchase with charge id nope."
    done = await say(operator, f"/refund {charge_id}")
    assert done == (f"✅ Refunded {charge_id} to user {USER_ID}: 10 edits taken off their balance.")
    assert tg.charges[charge_id].refunded
    assert await ledger_holds(bot, USER_ID) == 5
    # A second refund is refused, by the bot, without asking Telegram again.
    again = await say(operator, f"/refund {charge_id}")
    assert again == f"Purchase {charge_id} was already refunded."
    assert len(tg.calls_of("refundStarPayment")) == 1
    # Telegram's own record: the payment, and its refund going back to the user.
    transactions = (await bot.services.notifier.bot.get_star_transactions()).transactions
    assert [(t.id, t.amount, t.source is None) for t in transactions] == [
        (charge_id, 50, False),
        (charge_id, 50, True),
    ]

    oplog = (await say(operator, "/oplog")).splitlines()
    assert any("refunded a purchase of" in line and str(USER_ID) in line for line in oplog)
    assert any("changed the balance of" in line and "+5 welcome" in line for line in oplog)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_concurrent_edits_never_overdraw_a_balance(
    tg: FakeTelegram,
    kie: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
    request: pytest.FixtureRequest,
    backend: str,
) -> None:
    more: dict[str, Any] = {"FREE_EDITS_DAILY": 0}
    if backend == "postgresql":
        more["DATABASE_URL"] = request.getfixturevalue("postgres").new_database()
    bot = await paid_bot(make_settings, start_bot, **more)
    assert bot.services.db.dialect == backend
    await tg.wait_for("setWebhook")
    await bot.services.db.balances.grant(USER_ID, 2, by=OPERATOR_ID)
    user = Chat(tg, CHAT_ID, tg.user(USER_ID))
    updates = [
        tg.photo_update(CHAT_ID, user.user, make_jpeg(96, 96), caption=f"edit {n}")
        for n in range(8)
    ]
    await asyncio.gather(*(user.deliver(update) for update in updates))
    refusals = await tg.wait_for(
        "sendMessage", lambda c: str(c.params["text"]).startswith(SHORT), count=6
    )
    assert len(refusals) == 6
    assert len(await bot.edits()) == 2
    assert await ledger_holds(bot, USER_ID) == 0


async def test_in_a_group_the_requester_pays_and_a_cancelled_edit_costs_nothing(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await paid_bot(
        make_settings, start_bot, FREE_EDITS_DAILY=0, NOTIFY_LEASE=0.5, LEASE_RENEW_INTERVAL=0.2
    )
    await tg.wait_for("setWebhook")
    tg.register_chat(GROUP_ID, chat_type="supergroup", title="Cats & Dogs")
    member = Chat(tg, GROUP_ID, tg.user(USER_ID, first_name="Bob"))
    balances = bot.services.db.balances
    await balances.grant(USER_ID, 2, by=OPERATOR_ID)

    assert (await say(member, "/buy")).startswith("💳 Edits are bought in a private chat")
    assert await photo_answer(member, "/edit make it night") is None
    await bot.wait_state(EditState.DELIVERED, 1)
    assert await ledger_holds(bot, USER_ID) == 1
    assert (await balances.account(GROUP_ID)).movements == []  # never the group

    # Held while its photo is fetched: /cancel returns its reservation and says so.
    tg.delay("getFile", 5)
    update = tg.photo_update(GROUP_ID, member.user, make_jpeg(96, 96), caption="/edit day")
    await member.deliver(update)
    await bot.wait_state(EditState.QUEUED, 2)
    assert await ledger_holds(bot, USER_ID) == 0
    cancelled = await say(member, "/cancel")
    assert cancelled == (
        "🛑 Cancelled before it reached the image service.\n"
        "↩️ Nothing is charged for this edit: its 1 reserved edits are back (/balance)."
    )
    assert await ledger_holds(bot, USER_ID) == 1

    # A /cancel that died between the cancellation and the return: the sweeper gives the
    # reservation back (within NOTIFY_LEASE).
    update = tg.photo_update(GROUP_ID, member.user, make_jpeg(96, 96), caption="/edit dusk")
    await member.deliver(update)
    await bot.wait_state(EditState.QUEUED, 3)
    assert await ledger_holds(bot, USER_ID) == 0
    assert await bot.services.db.edits.transition(3, steps.CANCEL_UNSENT) is not None
    deadline = time.monotonic() + 10
    while await ledger_holds(bot, USER_ID) != 1:
        assert time.monotonic() < deadline, "the reservation was never given back"
        await asyncio.sleep(0.05)
    tg.delay("getFile", 0)


async def test_payments_off_leaves_edits_as_before(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    user = Chat(tg, CHAT_ID, tg.user(USER_ID))
    private = [c["command"] for c in tg.commands(scope={"type": "all_private_chats"})]
    assert not {"buy", "balance", "paysupport", "terms"} & set(private)
    off = "Payments are off in this bot: edits are not sold here."
    for command in ("/buy", "/balance", "/terms", "/paysupport"):
        assert await say(user, command) == off
    assert not tg.calls_of("sendInvoice")
    for caption in ("one", "two"):
        assert await photo_answer(user, caption) is None
    account = await webhook_bot.services.db.balances.account(USER_ID)
    assert account.balance == 0 and account.movements == []


async def test_a_request_an_admin_rejects_gives_its_reservation_back(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await paid_bot(make_settings, start_bot, FREE_EDITS_DAILY=0)
    await tg.wait_for("setWebhook")
    member, admin = in_group(tg)
    await configure(bot, approval=True)
    await bot.services.db.balances.grant(MEMBER_ID, 1, by=OPERATOR_ID)

    # Reserved while it waits for an admin.
    sent = await photo(tg, member, "/edit make it pop")
    request = tg.sent_message(await member.reply_of(sent))
    assert await ledger_holds(bot, MEMBER_ID) == 0
    await admin.press(request, "a1:n:1")
    told = await said(tg, member, sent, "❌ An admin rejected this edit request.")
    assert str(told.params["text"]).endswith(
        "↩️ Nothing is charged for this edit: its 1 reserved edits are back (/balance)."
    )
    assert await ledger_holds(bot, MEMBER_ID) == 1
    assert not kie.tasks
