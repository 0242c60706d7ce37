"""Telegram's flood limits held on the bot's side: per chat, per group, per bot; optional
messages dropped rather than queued (bot/telegram_limits.py)."""

from __future__ import annotations

import asyncio
import time
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


ROOMY_CHATS = RateLimit(100, 1.0)


class Sends:
    """A limiter of `bot_rate` for the bot and `chat_rate` per chat, and what went out
    through it, in order."""

    def __init__(self, bot_rate: RateLimit, chat_rate: RateLimit = ROOMY_CHATS) -> None:
        self.limiter = TelegramLimiter(
            bot_rate=bot_rate, chat_rate=chat_rate, group_rate=RateLimit(20, 60)
        )
        self.sent: list[str] = []

    async def _send(self, text: str) -> dict[str, Any]:
        self.sent.append(text)
        return {}

    async def call(
        self,
        text: str,
        chat_id: int,
        *,
        gives_way: bool = False,
        optional: bool = False,
        method: str = "sendMessage",
    ) -> None:
        how = {"gives_way": gives_way, "optional": optional} if gives_way or optional else None
        await self.limiter.process_request(
            self._send, (text,), {}, method, {"chat_id": chat_id}, how
        )

    async def soon(self, text: str, chat_id: int, *, gives_way: bool = False) -> asyncio.Task[None]:
        """`call` started, and given a moment to take its place in line."""
        task = asyncio.create_task(self.call(text, chat_id, gives_way=gives_way))
        await asyncio.sleep(0.01)
        return task


async def test_an_optional_message_is_dropped_when_its_chat_has_no_room() -> None:
    sends = Sends(RateLimit(30, 1.0), chat_rate=RateLimit(1, 0.5))
    await sends.call("result 1", 5)
    with pytest.raises(Crowded):
        await sends.call("progress", 5, optional=True, method="editMessageText")
    await sends.call("deleted", 5, method="deleteMessage")  # posts nothing: not counted, not held
    await asyncio.sleep(0.55)
    await sends.call("progress, later", 5, optional=True, method="editMessageText")
    assert sends.sent == ["result 1", "deleted", "progress, later"]


def status_messages(tg: FakeTelegram, chats: list[int]) -> list[ApiCall]:
    """The "working on it" messages (replies to the photos) sent to `chats`."""
    return [c for c in tg.calls_of("sendMessage") if c.params.get("chat_id") in chats]


async def test_a_waiting_result_goes_before_new_photos_status_messages(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    """Past the bot-wide limit, new photos' status messages give way to the result of an
    earlier one: it takes the next turn, not a place behind every status that arrived."""
    rate = 2  # messages per second, the whole bot
    bot = await start_bot(make_settings(TELEGRAM_MAX_RATE=rate))
    await tg.wait_for("setWebhook")
    kie.next_outcome(hold=True)
    first = tg.photo_update(CHAT_ID, tg.user(USER_ID), make_jpeg(320, 240), caption="first")
    assert await tg.post_webhook(first) == 200
    edit = await bot.wait_state(EditState.SUBMITTED, 1)
    assert edit.task_id is not None

    newcomers = [CHAT_ID + n for n in range(1, 9)]  # each a new user's private chat
    for _ in newcomers:
        kie.next_outcome(hold=True)  # their tasks run on: only their status messages count
    photos = [
        tg.photo_update(chat, tg.user(chat), make_jpeg(320, 240), caption=f"p{chat}")
        for chat in newcomers
    ]
    posting = asyncio.gather(*(tg.post_webhook(update) for update in photos))
    # The window is full and the other status messages wait for turns: now the result comes.
    await tg.wait_for("sendMessage", lambda c: c.params.get("chat_id") in newcomers)
    released = time.monotonic()
    kie.release(edit.task_id)
    [result] = await tg.wait_for("sendPhoto", timeout=20)
    await posting

    ahead = [c for c in status_messages(tg, newcomers) if released < c.received < result.received]
    # Only the one holding the next turn (waiting for room) goes first, and one more if the
    # result took more than a turn (half a second) to be fetched; in one line, all 7 would.
    assert len(ahead) <= 2, [(c.params["chat_id"], c.received - released) for c in ahead]
    # Nothing is lost: every newcomer still gets its status message, within the bot's rate.
    await tg.wait_for(
        "sendMessage", lambda c: c.params.get("chat_id") in newcomers, count=len(newcomers)
    )
    counted = [c for c in tg.calls if c.method.startswith(COUNTED)]
    assert most_in_any_window(counted, 1.0) <= rate
    assert len(status_messages(tg, newcomers)) == len(newcomers)
    for edit_id in range(2, 2 + len(newcomers)):
        assert (await bot.wait_state(EditState.SUBMITTED, edit_id)).status_message_id
    kie.release_all()


async def test_below_the_limit_a_new_photo_gets_its_status_message_at_once(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    """Giving way costs nothing while no message waits: with room in the bot-wide window,
    each photo's status message goes out as soon as the photo comes."""
    bot = await start_bot(make_settings(TELEGRAM_MAX_RATE=2))
    await tg.wait_for("setWebhook")
    chats = [CHAT_ID, CHAT_ID + 1]
    for chat in chats:
        kie.next_outcome(hold=True)
        posted = time.monotonic()
        update = tg.photo_update(chat, tg.user(chat), make_jpeg(320, 240), caption="sky")
        assert await tg.post_webhook(update) == 200
        [status] = await tg.wait_for(
            "sendMessage", lambda c, chat=chat: c.params["chat_id"] == chat
        )
        assert status.received - posted < 0.5
        assert status.params["reply_parameters"]["message_id"] == update["message"]["message_id"]
    for edit_id in (1, 2):
        edit = await bot.wait_state(EditState.SUBMITTED, edit_id)
        assert edit.status_message_id is not None
    kie.release_all()


async def test_a_message_giving_way_waits_while_others_wait_for_the_bot() -> None:
    sends = Sends(RateLimit(1, 0.2))
    await sends.call("result 1", 1)  # the window is full for 0.2 s
    status_2 = await sends.soon("status 2", 2, gives_way=True)  # next: waits for room
    status_3 = asyncio.create_task(sends.call("status 3", 3, gives_way=True))
    status_4 = await sends.soon("status 4", 4, gives_way=True)
    result_5 = await sends.soon("result 5", 5)
    status_3.cancel()  # a caller gone while waiting leaves its place to the next
    await asyncio.wait_for(asyncio.gather(status_2, status_4, result_5), 2)
    assert sends.sent == ["result 1", "status 2", "result 5", "status 4"]
    assert status_3.cancelled()


async def test_an_optional_message_is_dropped_when_the_bot_has_no_room() -> None:
    sends = Sends(RateLimit(1, 0.5), chat_rate=RateLimit(1, 0.5))
    await sends.call("result", 1, method="sendPhoto")
    with pytest.raises(Crowded):  # its own chat has room, the bot has not
        await sends.call("progress", 2, optional=True, method="editMessageText")
    assert sends.sent == ["result"]


async def test_a_message_giving_way_does_not_hold_up_a_result_of_its_own_chat() -> None:
    """A status message waiting for the bot holds its chat's turn; when a result of that
    chat waits behind it, it goes ahead of every other message, then the result follows."""
    sends = Sends(RateLimit(1, 0.15))
    await sends.call("result 9", 9)  # the window is full for 0.15 s
    waiting = [
        await sends.soon("status 2", 2, gives_way=True),  # next: waits for room
        await sends.soon("status 1", 1, gives_way=True),  # holds chat 1 while waiting for the bot
        await sends.soon("status 3", 3, gives_way=True),
        await sends.soon("result 4", 4),
        await sends.soon("result 1", 1),  # waits for chat 1, behind "status 1"
    ]
    await asyncio.wait_for(asyncio.gather(*waiting), 3)
    assert sends.sent == ["result 9", "status 2", "status 1", "result 4", "result 1", "status 3"]
