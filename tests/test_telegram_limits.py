"""Telegram's flood limits held on the bot's side: per chat, per group, per bot; optional
messages dropped rather than queued (bot/telegram_limits.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.setting_values import RateLimit
from bot.telegram_limits import Crowded, TelegramLimiter
from domain.edit import EditState
from tests.conftest import CHAT_ID, USER_ID, BotStarter, SettingsFactory
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram_server import ApiCall

COUNTED = ("send", "edit", "copy", "forward")


def messages_to(tg: FakeTelegram, chat_id: int) -> list[ApiCall]:
    """The calls that posted or changed a message in `chat_id`, in arrival order."""
    calls = [
        call
        for call in tg.calls
        if call.method.startswith(COUNTED) and call.params.get("chat_id") == chat_id
    ]
    return sorted(calls, key=lambda call: call.received)


def most_in_any_window(calls: list[ApiCall], period: float) -> int:
    times = [call.received for call in calls]
    return max((sum(1 for t in times if start <= t < start + period) for start in times), default=0)


async def test_a_users_burst_reaches_their_chat_at_most_once_per_period(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    period = 0.4
    bot = await start_bot(make_settings(TELEGRAM_CHAT_RATE=f"1/{period}"))
    await tg.wait_for("setWebhook")
    photos = [
        tg.photo_update(CHAT_ID, tg.user(USER_ID), make_jpeg(320, 240), caption=f"p{i}")
        for i in range(4)
    ]
    await asyncio.gather(*(tg.post_webhook(update) for update in photos))

    for edit_id in range(1, 5):
        await bot.wait_state(EditState.DELIVERED, edit_id, within=30)
    sent = messages_to(tg, CHAT_ID)
    assert len([c for c in sent if c.method == "sendPhoto"]) == 4
    assert most_in_any_window(sent, period) == 1, [(c.method, c.received) for c in sent]
    assert not [c for c in tg.calls if c.status == 429]


async def test_a_group_gets_at_most_its_rate(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    group = -100777
    bot = await start_bot(make_settings(TELEGRAM_GROUP_RATE="3/0.6"))
    await tg.wait_for("setWebhook")
    member = tg.user(USER_ID)
    photos = [
        tg.photo_update(
            group, member, make_jpeg(320, 240), caption=f"/edit p{i}", chat_type="supergroup"
        )
        for i in range(4)
    ]
    await asyncio.gather(*(tg.post_webhook(update) for update in photos))

    for edit_id in range(1, 5):
        await bot.wait_state(EditState.DELIVERED, edit_id, within=30)
    assert most_in_any_window(messages_to(tg, group), 0.6) <= 3


async def test_an_optional_message_is_dropped_when_its_chat_has_no_room() -> None:
    limiter = TelegramLimiter(
        bot_rate=RateLimit(30, 1.0), chat_rate=RateLimit(1, 0.5), group_rate=RateLimit(20, 60)
    )
    sent: list[str] = []

    async def send(text: str) -> dict[str, Any]:
        sent.append(text)
        return {}

    async def call(text: str, *, optional: bool = False, method: str = "sendMessage") -> None:
        await limiter.process_request(
            send, (text,), {}, method, {"chat_id": 5}, {"optional": True} if optional else None
        )

    await call("result 1")
    with pytest.raises(Crowded):
        await call("progress", optional=True, method="editMessageText")
    await call("deleted", method="deleteMessage")  # posts nothing: not counted, not held
    await asyncio.sleep(0.55)
    await call("progress, later", optional=True, method="editMessageText")
    assert sent == ["result 1", "deleted", "progress, later"]
