"""Telegram faults injected by the fake Bot API: flood control, 5xx, timeouts, deleted
messages and chats that blocked the bot."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from bot import delivery
from domain import steps
from domain.edit import EditState
from storage.schema import blocked_chats
from tests.conftest import CHAT_ID, TOKEN, RunningBot
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.reliability import eventually, quiesce, send_edit, sent_ok, to_chat


async def test_flood_control_retry_after_is_honoured_and_the_result_sent_once(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    attempts: list[float] = []

    def stamp(_: Any) -> bool:
        attempts.append(time.monotonic())
        return len(attempts) == 1  # only the first attempt is refused

    tg.fail(
        "sendPhoto", 429, "Too Many Requests: retry after 1", times=9, retry_after=1, when=stamp
    )
    message = await send_edit(webhook_bot, tg)
    await webhook_bot.wait_state(EditState.DELIVERED)
    await quiesce(webhook_bot)
    calls = tg.calls_of("sendPhoto")
    assert [call.status for call in calls] == [429, 200]
    assert len(sent_ok(tg, "sendPhoto", message)) == 1
    # A lower bound only (the retry waited at least retry_after), never an upper one.
    assert attempts[1] - attempts[0] >= 1.0


async def test_server_errors_are_retried(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    tg.fail("sendPhoto", 502, "Bad Gateway", times=2)
    message = await send_edit(webhook_bot, tg)
    await webhook_bot.wait_state(EditState.DELIVERED)
    await quiesce(webhook_bot)
    assert [call.status for call in tg.calls_of("sendPhoto")] == [502, 502, 200]
    assert len(sent_ok(tg, "sendPhoto", message)) == 1


async def test_a_long_outage_is_survived_by_redelivery(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    """More failures than one delivery attempt retries: the sweeper tries again later."""
    await tg.wait_for("setWebhook")
    tg.fail("sendPhoto", 500, "Internal Server Error", times=4)
    message = await send_edit(webhook_bot, tg)
    edit = await webhook_bot.wait_state(EditState.DELIVERED, within=20)
    await quiesce(webhook_bot)
    assert edit.delivery_attempts >= 1
    assert [c.status for c in tg.calls_of("sendPhoto")] == [500, 500, 500, 500, 200]
    assert len(sent_ok(tg, "sendPhoto", message)) == 1


async def test_input_download_timeouts_are_retried(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    await tg.wait_for("setWebhook")
    monkeypatch.setattr(delivery, "DOWNLOAD_TIMEOUT", 0.3)
    tg.delay("getFile", 1.0, times=1)  # the first getFile answers too late
    message = await send_edit(webhook_bot, tg)
    await webhook_bot.wait_state(EditState.DELIVERED)
    await quiesce(webhook_bot)
    # Two getFile calls: the retry, and the late first one the bot had given up on.
    assert len(await tg.wait_for("getFile", count=2)) == 2
    assert len(kie.tasks) == 1
    assert len(sent_ok(tg, "sendPhoto", message)) == 1


async def test_a_slow_telegram_is_waited_for_not_retried_into_duplicates(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    tg.delay("sendPhoto", 1.0, times=1)
    message = await send_edit(webhook_bot, tg)
    await webhook_bot.wait_state(EditState.DELIVERED)
    await quiesce(webhook_bot)
    assert len(tg.calls_of("sendPhoto")) == 1
    assert len(sent_ok(tg, "sendPhoto", message)) == 1


async def test_a_send_that_times_out_is_retried_at_least_once(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented limit: a send that timed out may still have reached Telegram (the fake,
    like Telegram, completes it), and the retry sends again. Nothing is lost; the user can
    see the result twice. UPLOAD_TIMEOUT is generous (60 s) to make this rare."""
    await tg.wait_for("setWebhook")
    monkeypatch.setattr(delivery, "UPLOAD_TIMEOUT", 0.3)
    tg.delay("sendPhoto", 1.0, times=1)
    message = await send_edit(webhook_bot, tg)
    await webhook_bot.wait_state(EditState.DELIVERED)
    await eventually(lambda: len(tg.calls_of("sendPhoto")) == 2, what="the late first attempt")
    await quiesce(webhook_bot)
    assert len(sent_ok(tg, "sendPhoto", message)) == 2


async def delete_as_user(tg: FakeTelegram, message: dict[str, Any]) -> None:
    """The user deletes their message (through the fake's own Bot API endpoint)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{tg.url}/bot{TOKEN}/deleteMessage",
            json={"chat_id": message["chat"]["id"], "message_id": message["message_id"]},
        ) as resp,
    ):
        assert resp.status == 200
    assert tg.is_deleted(message["chat"]["id"], message["message_id"])


async def test_result_for_a_deleted_message_is_sent_without_the_reply_link(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    kie.next_outcome(hold=True)
    message = await send_edit(webhook_bot, tg)
    edit = await webhook_bot.wait_state(EditState.SUBMITTED)
    await delete_as_user(tg, message)
    kie.release(edit.task_id or "")
    await webhook_bot.wait_state(EditState.DELIVERED)
    [sent] = sent_ok(tg, "sendPhoto", message)
    assert sent.params["reply_parameters"]["allow_sending_without_reply"] is True
    assert "reply_to_message" not in tg.sent_message(sent)  # sent, just not as a reply


async def test_a_chat_that_blocked_the_bot_gets_nothing_more(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    for _ in range(3):
        kie.next_outcome(hold=True)
        await send_edit(webhook_bot, tg)
    tasks = [(await webhook_bot.wait_state(EditState.SUBMITTED, i)).task_id for i in (1, 2, 3)]
    tg.block_chat(CHAT_ID)
    before = len(to_chat(tg, CHAT_ID, "sendPhoto", "sendMessage", "editMessageText"))

    kie.release(tasks[0] or "")
    first = await webhook_bot.wait_state(EditState.UNDELIVERABLE, 1)
    assert first.error_code == "chat_unreachable"
    blocked = sa.select(blocked_chats.c.chat_id).where(blocked_chats.c.chat_id == CHAT_ID)
    assert (await webhook_bot.services.db.execute(blocked)).first() is not None
    [refused] = to_chat(tg, CHAT_ID, "sendPhoto")
    assert refused.status == 403

    kie.release(tasks[1] or "")  # another result for the same chat: not even attempted
    await webhook_bot.wait_state(EditState.UNDELIVERABLE, 2)
    kie.next_outcome()  # and a failure notice for it is not sent either
    await webhook_bot.services.db.edits.transition(3, steps.FAIL_TASK)
    await webhook_bot.services.edits.notify(3)
    await eventually(lambda: _notified(webhook_bot, 3), what="notice 3 settled")
    await quiesce(webhook_bot)
    after = to_chat(tg, CHAT_ID, "sendPhoto", "sendMessage", "editMessageText", "deleteMessage")
    assert len(after) == before + 1  # the single refused sendPhoto


async def _notified(bot: RunningBot, edit_id: int) -> bool:
    return (await bot.edit(edit_id)).notified_at is not None


async def test_sends_go_through_the_rate_limiter(webhook_bot: RunningBot) -> None:
    """Global and per-chat send rates are enforced by the bot's TelegramLimiter."""
    from bot.keys import PTB
    from bot.telegram_limits import TelegramLimiter

    limiter = webhook_bot.app[PTB].bot.rate_limiter
    assert isinstance(limiter, TelegramLimiter)
