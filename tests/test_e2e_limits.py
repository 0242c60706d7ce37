"""Spending limits end to end: one user's bursts, the bot-wide cap with its operator alerts,
and a user's daily credit budget, through the real bot, the fake Bot API and the fake KIE.

Every refusal is checked to have cost nothing: no getFile (the photo was not downloaded) and
no task at the fake KIE (nothing uploaded or submitted).
"""

from __future__ import annotations

import asyncio
from typing import Any

from bot.handlers.audit import modlog_item
from domain.edit import EditState
from storage.moderation import DAY
from storage.schema import edits
from tests.conftest import CHAT_ID, USER_ID, BotStarter, RunningBot, SettingsFactory
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.test_e2e_settings import Chat

Json = dict[str, Any]
OPERATOR = 9001  # ADMIN_IDS in the test settings
OTHER = 2002
LAVISH = 2005
IMAGE = make_jpeg(320, 240)


def texts(tg: FakeTelegram, chat_id: int, start: str) -> list[str]:
    """The bot's messages to `chat_id` starting with `start`."""
    return [
        str(call.params["text"])
        for call in tg.calls_of("sendMessage")
        if call.params.get("chat_id") == chat_id and str(call.params["text"]).startswith(start)
    ]


async def states(bot: RunningBot, user_id: int) -> list[EditState]:
    return [edit.state for edit in await bot.edits() if edit.user_id == user_id]


async def photo(tg: FakeTelegram, user_id: int, caption: str = "add a hat") -> Json:
    update = tg.photo_update(user_id, tg.user(user_id), IMAGE, caption=caption)
    assert await tg.post_webhook(update) == 200
    return tg.message_of(update)


async def burst(tg: FakeTelegram, result: Json, photos: int = 30, again: int = 15) -> None:
    """One user's photos with captions and presses of "Again" under `result`, all at once."""
    user = tg.user(USER_ID)
    updates = [
        tg.photo_update(CHAT_ID, user, IMAGE, caption=f"burst {n}") for n in range(photos)
    ] + [tg.callback_query_update(user, result, "r1:a:1") for _ in range(again)]
    statuses = await asyncio.gather(*(tg.post_webhook(update) for update in updates))
    assert statuses == [200] * len(updates)


async def test_one_users_burst_is_bounded_in_flight_and_per_day(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(USER_MAX_IN_FLIGHT=2, USER_DAILY_EDITS=5))
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    first = await photo(tg, USER_ID)
    result = tg.sent_message(await me.reply_of(first, method="sendPhoto"))
    await bot.wait_state(EditState.DELIVERED)

    # 30 photos and 15 "Again" at once, tasks held: two get in, 43 are told why not.
    kie.next_outcome(hold=True)
    kie.next_outcome(hold=True)
    await burst(tg, result)
    busy = "⏳ You already have 2 edits in progress. Send this again once one of them is done."
    await tg.wait_for("sendMessage", lambda c: c.params.get("text") == busy, count=43)
    await kie.wait_for(lambda: len(kie.tasks) == 3, what="two tasks of the burst")
    assert (await states(bot, USER_ID)).count(EditState.SUBMITTED) == 2
    # Everyone else is unaffected, and so are the operators (exempt from per-user limits).
    other = await photo(tg, OTHER)
    await Chat(tg, OTHER, tg.user(OTHER)).reply_of(other, method="sendPhoto")
    for n in range(3):
        kie.next_outcome(hold=True)
        await photo(tg, OPERATOR, f"operator {n}")
    await kie.wait_for(lambda: len(kie.tasks) == 7, what="the operator's three tasks")
    assert (await states(bot, OPERATOR)).count(EditState.SUBMITTED) == 3
    kie.release_all()
    await tg.wait_for("sendPhoto", lambda c: c.params["chat_id"] == CHAT_ID, count=3)

    # The second burst fills the day (5 edits): two more, 43 refused as in flight.
    kie.next_outcome(hold=True)
    kie.next_outcome(hold=True)
    await burst(tg, result)
    await tg.wait_for("sendMessage", lambda c: c.params.get("text") == busy, count=86)
    await kie.wait_for(lambda: len(kie.tasks) == 9, what="two tasks of the second burst")
    kie.release_all()
    await tg.wait_for("sendPhoto", lambda c: c.params["chat_id"] == CHAT_ID, count=5)

    # The third: nothing in flight, but the day's 5 edits are used.
    downloads = len(tg.calls_of("getFile"))
    await burst(tg, result)
    day = "⏳ You've reached the limit of 5 edits per day. Try again in "
    refused = await tg.wait_for(
        "sendMessage", lambda c: str(c.params.get("text")).startswith(day), count=45
    )
    assert {c.params["text"][len(day) :] for c in refused} <= {"24 h.", "23 h 59 min."}
    assert len(kie.tasks) == 9 and len(tg.calls_of("getFile")) == downloads
    assert len(await states(bot, USER_ID)) == 5
    assert all(s is EditState.DELIVERED for s in await states(bot, USER_ID))

    # A day later the oldest edits left the rolling window: the user may edit again.
    await bot.services.db.execute(
        edits.update().where(edits.c.user_id == USER_ID).values(created_at=edits.c.created_at - DAY)
    )
    later = await photo(tg, USER_ID, "a day later")
    await me.reply_of(later, method="sendPhoto")
    assert len(kie.tasks) == 10


async def shift_days(bot: RunningBot, days: float) -> None:
    """Move every stored edit `days` into the past (the period rolls over, no sleeping)."""
    await bot.services.db.execute(edits.update().values(created_at=edits.c.created_at - days * DAY))


def operator_alerts(tg: FakeTelegram) -> list[str]:
    return texts(tg, OPERATOR, "⚠️ Operator alert: spend_cap")


async def test_daily_cap_from_reported_credits(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    # KIE reports 4 credits per task in its callbacks; the price table agrees (MODEL_COSTS).
    bot = await start_bot(make_settings(SPEND_CAP_DAILY=20, MODEL_COSTS="qwen/image-edit=4"))
    await tg.wait_for("setWebhook")
    tg.user(OPERATOR)
    users = [Chat(tg, 3000 + n, tg.user(3000 + n)) for n in range(8)]
    for n, chat in enumerate(users[:5]):
        sent = await photo(tg, chat.chat_id)
        await chat.reply_of(sent, method="sendPhoto")
        edit = await bot.wait_state(EditState.DELIVERED, edit_id=n + 1)
        assert edit.credits == 4 and edit.cost_estimate == 4
        # 16 of 20 credits (80%) after the fourth edit, all 20 after the fifth: one alert each.
        assert len(operator_alerts(tg)) == [0, 0, 0, 1, 2][n]
    near, full = operator_alerts(tg)
    assert near.startswith("⚠️ Operator alert: spend_cap_near\nToday's spend is 16 of the 20")
    assert full.startswith("⚠️ Operator alert: spend_cap_full\nToday's spend reached")

    # The cap is reached exactly: the next requests are refused, nothing is spent on them.
    downloads = len(tg.calls_of("getFile"))
    for chat in users[5:7]:
        sent = await photo(tg, chat.chat_id)
        refusal = (await chat.reply_of(sent)).params["text"]
        assert refusal.startswith("⏸ The bot has reached its spending limit for today. Try")
    assert len(kie.tasks) == 5 and len(tg.calls_of("getFile")) == downloads
    assert operator_alerts(tg) == [near, full]  # not once more per refusal

    # The next day works again (the stored edits moved a day back, no sleeping).
    await shift_days(bot, 1)
    sent = await photo(tg, users[7].chat_id)
    await users[7].reply_of(sent, method="sendPhoto")
    assert len(kie.tasks) == 6 and len(operator_alerts(tg)) == 2


async def test_monthly_cap_from_the_price_table_when_nothing_is_reported(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    # Polling: KIE's recordInfo reports no credits, so the built-in price (5) counts.
    bot = await start_bot(make_settings(webhook=False, SPEND_CAP_MONTHLY=12))
    tg.user(OPERATOR)
    me = Chat(tg, CHAT_ID, tg.user(USER_ID), polling=True)
    for n in range(2):
        update = tg.photo_update(CHAT_ID, me.user, IMAGE, caption=f"edit {n}")
        tg.push_update(update)
        await me.reply_of(tg.message_of(update), method="sendPhoto")
        edit = await bot.wait_state(EditState.DELIVERED, edit_id=n + 1)
        assert edit.credits is None and edit.cost_estimate == 5
    # 10 of 12 (83%): the operators were told once.
    await tg.wait_for("sendMessage", lambda c: c.params["chat_id"] == OPERATOR)
    assert [a.split("\n")[0] for a in operator_alerts(tg)] == ["⚠️ Operator alert: spend_cap_near"]
    assert "This month's spend is 10 of the 12 credits" in operator_alerts(tg)[0]
    usage = await me.command("/usage")
    assert "Last 24 hours: edits 2 · credits ~10" in usage["text"]
    logged = modlog_item(bot.services, "en", await bot.edit(1))
    assert logged.endswith("no approval needed · ✅ Done · credits ~5")

    update = tg.photo_update(CHAT_ID, me.user, IMAGE, caption="one more")
    tg.push_update(update)
    refusal = (await me.reply_of(tg.message_of(update))).params["text"]
    assert refusal.startswith("⏸ The bot has reached its spending limit for this month. Try")
    assert len(kie.tasks) == 2
    # It does not fit (10 + 5 > 12): the operators are told the cap now refuses requests.
    assert [alert.split("\n")[0] for alert in operator_alerts(tg)] == [
        "⚠️ Operator alert: spend_cap_near",
        "⚠️ Operator alert: spend_cap_full",
    ]
    await shift_days(bot, 32)  # last month's edits: this month starts afresh
    update = tg.photo_update(CHAT_ID, me.user, IMAGE, caption="next month")
    tg.push_update(update)
    await me.reply_of(tg.message_of(update), method="sendPhoto")
    assert len(kie.tasks) == 3


async def test_a_users_daily_credit_budget(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(USER_DAILY_CREDITS=10, MODEL_COSTS="qwen/image-edit=4"))
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    for n in range(2):
        await me.reply_of(await photo(tg, USER_ID, f"edit {n}"), method="sendPhoto")
    refused = await me.reply_of(await photo(tg, USER_ID, "a third"))
    budget = "⏳ You've used your daily budget of 10 credits. Try again in "
    assert refused.params["text"] in (f"{budget}24 h.", f"{budget}23 h 59 min.")
    other = Chat(tg, OTHER, tg.user(OTHER))
    await other.reply_of(await photo(tg, OTHER), method="sendPhoto")  # others unaffected
    # Four images at once would cost 16: more than the whole budget, so never possible.
    await bot.services.db.chat_settings.update(
        LAVISH, lambda prefs: prefs.with_param("num_images", 4), user_id=LAVISH
    )
    refused = await Chat(tg, LAVISH, tg.user(LAVISH)).reply_of(await photo(tg, LAVISH))
    assert refused.params["text"].startswith(
        "⏳ This edit would cost more than your daily budget of 10 credits."
    )
    assert len(kie.tasks) == 3 and len(tg.calls_of("getFile")) == 3
