"""Updates the bot must not act on, and a late inline answer, through the real bot.

Edited messages and business-account messages start nothing and get no answer (yet the
intake marks them done); an inline query answered too late is logged quietly, like a
button press answered twice, and the bot keeps working.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.keys import INTAKE
from domain.edit import EditState
from tests.conftest import CHAT_ID, USER_ID, RunningBot
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.reliability import eventually, quiesce, send_edit, sent_ok

ANSWERS = ("sendMessage", "sendPhoto", "sendDocument", "sendMediaGroup", "editMessageText")
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"


async def handled(bot: RunningBot, tg: FakeTelegram, *updates: dict[str, Any]) -> None:
    """Post `updates` and wait until the bot has handled them (marked done) and is idle."""
    for update in updates:
        assert await tg.post_webhook(update) == 200

    async def done() -> bool:
        pending = await bot.services.db.updates.count_pending()
        return pending == 0 and len(bot.app[INTAKE]) == 0

    await eventually(done, what="the updates handled and marked done")
    await quiesce(bot)


def answers(tg: FakeTelegram) -> int:
    return sum(len(tg.calls_of(method)) for method in ANSWERS)


async def good_edit_still_works(bot: RunningBot, tg: FakeTelegram, edit_id: int = 1) -> None:
    message = await send_edit(bot, tg, "and now a normal one")
    await bot.wait_state(EditState.DELIVERED, edit_id=edit_id)
    assert len(sent_ok(tg, "sendPhoto", message)) == 1


async def test_business_messages_are_ignored(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    user = tg.user(USER_ID)
    photo = tg.photo_update(CHAT_ID, user, make_jpeg(64, 64), caption="make it brighter")
    text = tg.text_update(CHAT_ID, user, "hello there")
    business_photo = tg.business_update(photo)
    await handled(
        webhook_bot,
        tg,
        business_photo,
        tg.business_update(text),
        tg.edited_update(business_photo, caption="make it darker"),
    )
    assert answers(tg) == 0
    assert not kie.tasks and await webhook_bot.edits() == []
    await good_edit_still_works(webhook_bot, tg)


async def test_edited_messages_start_nothing(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    user = tg.user(USER_ID)
    text = tg.text_update(CHAT_ID, user, "hello there")
    await handled(webhook_bot, tg, text)
    hints = answers(tg)
    assert hints == 1  # the hint, for the new message
    await handled(webhook_bot, tg, tg.edited_update(text, text="hello again"))
    assert answers(tg) == hints

    photo = tg.photo_update(CHAT_ID, user, make_jpeg(64, 64), caption="make it brighter")
    await handled(webhook_bot, tg, photo)
    await webhook_bot.wait_state(EditState.DELIVERED)
    before = answers(tg)
    await handled(
        webhook_bot,
        tg,
        tg.edited_update(photo, caption="make it darker"),
        tg.edited_update(tg.text_update(CHAT_ID, user, "/help"), text="/edit a hat"),
    )
    assert answers(tg) == before
    assert len(kie.tasks) == 1 and len(await webhook_bot.edits()) == 1
    await good_edit_still_works(webhook_bot, tg, edit_id=2)


async def test_a_late_inline_answer_is_logged_quietly(
    tg: FakeTelegram,
    kie: FakeKie,
    webhook_bot: RunningBot,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await tg.wait_for("setWebhook")
    caplog.set_level(logging.INFO, logger="bot")
    tg.fail("answerInlineQuery", 400, QUERY_TOO_OLD)
    await handled(webhook_bot, tg, tg.inline_query_update(tg.user(USER_ID), ""))
    [call] = tg.calls_of("answerInlineQuery")
    assert not call.ok
    assert [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info] == []
    assert "inline query answered too late" in caplog.messages
    assert answers(tg) == 0  # no "something went wrong" either
    await good_edit_still_works(webhook_bot, tg)
