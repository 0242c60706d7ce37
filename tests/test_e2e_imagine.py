"""/imagine and "Draw it": new images from text alone, through the real bot, the fake Bot API
and the fake KIE (4o without filesUrl; the jobs API's text-to-image models)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bot.app import create_app
from bot.handlers.moderation import change
from bot.startup import StartupError
from bot.web import make_runner
from domain.edit import EditState
from tests.conftest import CHAT_ID, USER_ID, BotStarter, RunningBot, SettingsFactory
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram_server import ApiCall
from tests.test_e2e_settings import Chat, data_of, keyboard
from tests.test_e2e_topics import ADMIN_ID, GROUP_ID, MEMBER_ID, in_topic

Json = dict[str, Any]


def drawing(call: ApiCall) -> bool:
    return bool(call.params.get("text") == "⏳ Got it! Drawing your image…")


async def test_imagine_with_4o_in_a_private_chat(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(DEFAULT_MODEL="gpt-4o-image"))
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    asked = await me.send("/imagine a red fox\nin the snow")
    status = await me.reply_of(asked)
    assert drawing(status)
    result = await me.reply_of(asked, method="sendPhoto")
    assert result.params["caption"].startswith("✨ Done!")
    edit = await bot.wait_state(EditState.DELIVERED)
    assert (edit.model, edit.prompt, edit.inputs) == ("gpt-4o-image", "a red fox\nin the snow", [])
    [task] = kie.tasks.values()
    assert task.api == "gpt4o" and "filesUrl" not in task.request
    assert task.request["prompt"] == "a red fox\nin the snow" and task.request["size"] == "1:1"
    assert not tg.calls_of("getFile") and not kie.uploads  # no photo anywhere
    assert tg.files_sent_to(CHAT_ID) == task.results

    # It is in /history like any edit, and "Again" draws it again.
    history = await me.command("/history")
    assert "a red fox" in history["text"]
    message = tg.sent_message(result)
    await me.press(message, data_of(message, "🔁 Again"))
    await bot.wait_state(EditState.DELIVERED, edit_id=2)
    again = [t for t in kie.tasks.values() if t is not task]
    assert len(again) == 1 and "filesUrl" not in again[0].request


@pytest.mark.parametrize(
    ("model", "api", "sent"),
    [
        (
            "seedream/4.5-text-to-image",
            "jobs",
            {
                "input": {
                    "prompt": "a lighthouse at dusk",
                    "aspect_ratio": "1:1",
                    "quality": "basic",
                }
            },
        ),
        ("gpt-4o-image", "gpt4o", {"prompt": "a lighthouse at dusk", "size": "1:1"}),
    ],
)
async def test_imagine_in_a_forum_topic(
    tg: FakeTelegram,
    kie: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
    model: str,
    api: str,
    sent: Json,
) -> None:
    bot = await start_bot(make_settings(DEFAULT_GENERATOR=model))
    await tg.wait_for("setWebhook")
    topic = tg.create_topic(GROUP_ID, "Art")
    member = Chat(tg, GROUP_ID, tg.user(MEMBER_ID, first_name="Bob"), thread_id=topic)
    asked = await member.send("/imagine@edit_test_bot a lighthouse at dusk")
    status = await member.reply_of(asked)
    assert drawing(status) and in_topic(tg, status, topic)
    result = await member.reply_of(asked, method="sendPhoto")
    assert in_topic(tg, result, topic)
    edit = await bot.wait_state(EditState.DELIVERED)
    assert (edit.model, edit.thread_id, edit.inputs) == (model, topic, [])
    [task] = kie.tasks.values()
    assert task.api == api
    assert {key: task.request[key] for key in sent} == sent  # and no photo field
    assert "filesUrl" not in task.request and "image_urls" not in task.request.get("input", {})


async def test_imagine_with_the_generating_model_chosen_in_settings(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    """Several models draw: /settings offers the choice; the chat's settings of the same name
    go along when the drawing model takes the value."""
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    menu = await me.command("/settings")
    assert "🎨 Drawing model: <b>" not in menu["text"]  # the sent HTML became entities
    assert "🎨 Drawing model: Nano Banana" in menu["text"]  # the first of the catalog
    state = await me.tap(menu, "🎨 Drawing model")
    labels = [text for text, _ in keyboard(state)]
    assert labels[:3] == [
        "✅ Nano Banana · kie",
        "Seedream 4.5 · kie",
        "GPT-4o Image · kie-4o",
    ]
    await me.tap(menu, "Seedream 4.5 · kie")
    await webhook_bot.services.db.chat_settings.update(
        CHAT_ID, lambda p: p.with_param("aspect_ratio", "16:9"), user_id=USER_ID
    )
    await me.reply_of(await me.send("/imagine a castle"), method="sendPhoto")
    [task] = kie.tasks.values()
    assert task.model == "seedream/4.5-text-to-image"
    assert task.request["input"]["aspect_ratio"] == "16:9"


async def test_imagine_without_a_prompt_gets_the_usage_in_the_readers_language(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID, language_code="ru"))
    usage = await me.command("/imagine   ")
    assert usage["text"].startswith("🎨 Отправьте /imagine ваш запрос")
    assert any(entity["type"] == "code" for entity in usage["entities"])
    assert not kie.tasks and not await webhook_bot.edits()


async def test_plain_text_is_offered_for_drawing_and_nothing_is_spent_until_pressed(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    text = await me.send("a cat wearing a tiny hat")
    offer = tg.sent_message(await me.reply_of(text))
    assert offer["text"].startswith("🎨 There is no photo here to edit.")
    assert keyboard(offer) == [("🎨 Draw it", "g1")]
    assert not kie.tasks and not await webhook_bot.edits()  # nothing spent yet

    # Someone else's press (a forwarded offer, say) spends nothing either.
    stranger = Chat(tg, CHAT_ID, tg.user(4040, first_name="Eve"))
    refused = await stranger.press(offer, "g1")
    assert refused.params["text"] == "This offer has expired: send the text again."
    assert not kie.tasks

    answer = await me.press(offer, "g1")
    assert answer.params["text"] == "🎨 Drawing…"
    await me.reply_of(text, method="sendPhoto")
    edit = await webhook_bot.wait_state(EditState.DELIVERED)
    assert (edit.model, edit.prompt, edit.inputs) == (
        "google/nano-banana",
        "a cat wearing a tiny hat",
        [],
    )
    [task] = kie.tasks.values()
    assert task.request["input"] == {"prompt": "a cat wearing a tiny hat"}
    shown = tg.message(CHAT_ID, offer["message_id"])
    assert shown is not None and "reply_markup" not in shown  # the button is gone
    await me.press(offer, "g1")  # pressed again (a stale client): nothing new
    assert len(kie.tasks) == 1 and len(await webhook_bot.edits()) == 1


async def test_drawing_counts_against_the_same_limits_as_edits(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(USER_DAILY_EDITS=1))
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    await me.reply_of(await me.send("/imagine a blue whale"), method="sendPhoto")
    await bot.wait_state(EditState.DELIVERED)
    refused = await me.reply_of(await me.send("/imagine a green whale"))
    assert refused.params["text"].startswith("⏳ You've reached the limit of 1 edits per day.")
    assert len(kie.tasks) == 1 and len(await bot.edits()) == 1


async def test_default_generator_must_be_an_enabled_drawing_model(
    make_settings: SettingsFactory,
) -> None:
    for wrong in ("qwen/image-edit", "acme/draw"):  # edits only; not offered
        runner = make_runner(create_app(make_settings(DEFAULT_GENERATOR=wrong)))
        try:
            with pytest.raises(StartupError) as info:
                await runner.setup()
        finally:
            await runner.cleanup()
        assert f"DEFAULT_GENERATOR={wrong} is not an enabled model that generates" in str(
            info.value
        )
        assert "google/nano-banana, seedream/4.5-text-to-image, gpt-4o-image" in str(info.value)


async def test_a_drawing_in_a_group_waits_for_approval_like_an_edit(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    tg.register_chat(GROUP_ID, chat_type="supergroup")
    tg.set_chat_member(GROUP_ID, ADMIN_ID, "administrator")
    await change(webhook_bot.services, GROUP_ID, ADMIN_ID, lambda m: replace(m, approval=True))
    member = Chat(tg, GROUP_ID, tg.user(MEMBER_ID, first_name="Bob"))
    admin = Chat(tg, GROUP_ID, tg.user(ADMIN_ID, first_name="Ann"))
    asked = await member.send("/imagine a dragon")
    panel = tg.sent_message(await member.reply_of(asked))
    assert panel["text"].startswith("🙋 Bob asks for a drawing:\na dragon")
    assert not kie.tasks  # nothing spent before an admin decides
    await admin.press(panel, "a1:y:1")
    said = "✅ An admin approved your request. ⏳ Drawing your image…"
    await tg.wait_for("sendMessage", lambda c: c.params.get("text") == said)
    await member.reply_of(asked, method="sendPhoto")
    edit = await webhook_bot.wait_state(EditState.DELIVERED)
    assert (edit.decision, edit.inputs, edit.model) == ("approved", [], "google/nano-banana")


async def test_a_failed_drawing_says_so(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    kie.next_outcome(fail=("500", "Internal server error"))
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    await me.send("/imagine a storm")
    [notice] = await tg.wait_for("editMessageText")
    assert notice.params["text"] == "😔 The model couldn't draw this image: Internal server error"
    assert (await webhook_bot.wait_edit(lambda e: e.notified_at is not None)).inputs == []
