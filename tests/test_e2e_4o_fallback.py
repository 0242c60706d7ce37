"""4o's fallback model, a choice in /settings (off / FLUX_MAX / GPT_IMAGE_1), reaching the
fake 4o generate request as kie-4o-image.md documents it (`enableFallback`, `fallbackModel`)."""

from __future__ import annotations

from dataclasses import replace

from tests.conftest import CHAT_ID, USER_ID, RunningBot
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.test_e2e_settings import Chat, keyboard, photo, stored


async def test_choosing_gpt_image_1_as_4os_fallback_reaches_the_generate_request(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    models = await me.command("/model")
    await me.tap(models, "GPT-4o Image · kie-4o")
    menu = await me.tap(models, "⚙️ All settings")
    assert "🛟 Fallback model: Off" in menu["text"]

    state = await me.tap(menu, "🛟 Fallback model")
    assert [text for text, _ in keyboard(state)] == [
        "✅ Off",
        "FLUX_MAX",
        "GPT_IMAGE_1",
        "⬅️ Back",
    ]
    state = await me.tap(menu, "GPT_IMAGE_1")
    assert "Now: GPT_IMAGE_1" in state["text"]
    prefs = await stored(webhook_bot, CHAT_ID)
    assert prefs.model == "gpt-4o-image" and dict(prefs.params) == {"fallback_model": "GPT_IMAGE_1"}

    sent = await photo(tg, me, "a sunny day")
    await me.reply_of(sent, method="sendPhoto")
    (task,) = kie.tasks.values()
    assert task.api == "gpt4o"
    assert task.request["enableFallback"] is True
    assert task.request["fallbackModel"] == "GPT_IMAGE_1"

    # Off again: neither field is sent (the API's default, no fallback).
    await me.tap(menu, "Off")  # the sub-menu is still open
    assert dict((await stored(webhook_bot, CHAT_ID)).params) == {}
    second = await photo(tg, me, "a rainy day")
    await me.reply_of(second, method="sendPhoto")
    newest = list(kie.tasks.values())[-1]
    assert newest is not task
    assert "enableFallback" not in newest.request and "fallbackModel" not in newest.request


async def test_a_chat_that_switched_the_old_fallback_on_keeps_it(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    """Before the choice existed, /settings offered an on/off switch stored as
    `enable_fallback`; the menu no longer shows it, but a chat that chose it still sends it."""
    await tg.wait_for("setWebhook")
    await webhook_bot.services.db.chat_settings.update(
        CHAT_ID,
        lambda prefs: replace(prefs, model="gpt-4o-image", params={"enable_fallback": True}),
        user_id=USER_ID,
    )
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    sent = await photo(tg, me, "a sunny day")
    await me.reply_of(sent, method="sendPhoto")
    (task,) = kie.tasks.values()
    assert task.api == "gpt4o"
    assert task.request["enableFallback"] is True
    assert "fallbackModel" not in task.request
