"""The whole loop through the real bot: fake Telegram <-> bot <-> fake KIE, over HTTP."""

from __future__ import annotations

from typing import Any

from domain.edit import EditState
from tests.conftest import CHAT_ID, USER_ID, BotStarter, RunningBot, SettingsFactory
from tests.fakes.images import make_jpeg, make_png
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram_server import ApiCall


async def deliver(bot: RunningBot, tg: FakeTelegram, update: dict[str, Any]) -> None:
    """Hand an update to the bot the way Telegram would in its mode."""
    if bot.settings.webhook_mode:
        assert await tg.post_webhook(update) == 200
    else:
        tg.push_update(update)


def replies_to(message: dict[str, Any]) -> Any:
    def check(call: ApiCall) -> bool:
        reply = call.params.get("reply_parameters") or {}
        return bool(reply.get("message_id") == message["message_id"])

    return check


async def test_webhook_mode_with_callback_delivers_the_edit(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    hook = (await tg.wait_for("setWebhook"))[0]
    assert hook.params["url"] == f"{webhook_bot.url}/telegram"
    assert hook.params["secret_token"] == webhook_bot.settings.resolved_webhook_secret

    image = make_jpeg(800, 600)
    update = tg.photo_update(CHAT_ID, tg.user(USER_ID), image, caption="make the sky purple")
    message = tg.message_of(update)
    await deliver(webhook_bot, tg, update)

    status = (await tg.wait_for("sendMessage", replies_to(message)))[0]
    assert status.params["text"] == "⏳ Got it! Editing your photo…"
    sent = (await tg.wait_for("sendPhoto", replies_to(message)))[0]
    assert sent.params["caption"].startswith("✨ Done!")

    task = next(iter(kie.tasks.values()))
    assert task.api == "jobs" and task.model == "qwen/image-edit"
    assert task.inputs == [image]  # the provider fetched exactly the user's photo
    body = task.request
    assert body["input"]["prompt"] == "make the sky purple"
    assert body["input"]["image_url"].startswith(f"{webhook_bot.url}/files/")
    assert body["input"]["image_size"] == "landscape_4_3"  # chosen from the photo's shape
    assert body["callBackUrl"].startswith(f"{webhook_bot.url}/callbacks/kie/1?token=")
    assert tg.files_sent_to(CHAT_ID) == task.results

    edit = await webhook_bot.wait_state(EditState.DELIVERED)
    assert edit.task_id == task.task_id
    assert edit.message_id == message["message_id"] and edit.user_id == USER_ID
    assert edit.prompt == "make the sky purple"
    assert edit.credits == task.credits_consumed
    await tg.wait_for("deleteMessage", lambda c: c.params["message_id"] == edit.status_message_id)
    # Callback mode: the bot never had to ask for the status.
    assert not [path for _, path in kie.requests if "recordInfo" in path]


async def test_webhook_with_wrong_secret_is_refused(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    update = tg.photo_update(CHAT_ID, tg.user(USER_ID), make_jpeg(64, 64), caption="x")
    assert await tg.post_webhook(update, secret="wrong") == 403
    assert await tg.post_webhook(update, secret=None) == 403
    assert not kie.tasks and not tg.calls_of("sendMessage")
    assert await webhook_bot.edits() == []


async def test_polling_mode_with_status_polling_and_kie_upload(
    tg: FakeTelegram, kie: FakeKie, polling_bot: RunningBot
) -> None:
    await tg.wait_until_polling()
    image = make_jpeg(600, 900)
    update = tg.photo_update(CHAT_ID, tg.user(USER_ID), image, caption="add a hat")
    message = tg.message_of(update)
    await deliver(polling_bot, tg, update)

    sent = (await tg.wait_for("sendPhoto", replies_to(message)))[0]
    task = next(iter(kie.tasks.values()))
    assert task.callback_url is None  # no public URL: no callback
    assert task.request["input"]["image_url"].startswith(f"{kie.url}/")  # KIE's upload API
    assert task.request["input"]["image_size"] == "portrait_4_3"
    assert task.inputs == [image]
    assert [path for _, path in kie.requests if "file-stream-upload" in path]
    assert [path for _, path in kie.requests if "recordInfo" in path]
    assert tg.files_sent_to(CHAT_ID) == task.results
    assert sent.ok
    await polling_bot.wait_state(EditState.DELIVERED)


async def test_failed_task_tells_the_reason(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    kie.next_outcome(fail=("500", "Internal server error"))
    update = tg.photo_update(CHAT_ID, tg.user(USER_ID), make_jpeg(320, 240), caption="x-ray")
    await deliver(webhook_bot, tg, update)
    edited = await tg.wait_for("editMessageText")
    assert edited[0].params["text"] == (
        "😔 The model couldn't edit this photo: Internal server error"
    )
    edit = await webhook_bot.wait_edit(lambda e: e.notified_at is not None)
    assert edit.state is EditState.FAILED
    assert edit.error_code == "task_failed:500"
    assert not tg.calls_of("sendPhoto")


async def test_out_of_credits_as_body_code_and_http_status(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    kie.fail_next("/createTask", 402, "Insufficient credits")
    kie.fail_next("/createTask", 402, "Insufficient credits", http_status=True)
    for caption in ("first", "second"):
        update = tg.photo_update(CHAT_ID, tg.user(USER_ID), make_jpeg(320, 240), caption=caption)
        await deliver(webhook_bot, tg, update)
    texts = await tg.wait_for(
        "editMessageText", lambda c: "out of credits" in c.params["text"], count=2
    )
    assert len(texts) == 2
    for edit_id in (1, 2):
        edit = await webhook_bot.wait_state(EditState.FAILED, edit_id)
        assert edit.error_code == "insufficient_credits"
    # The operator is told once per incident, not once per edit.
    alerts = tg.calls_of("sendMessage")
    assert len([c for c in alerts if c.params["chat_id"] == 9001]) == 1
    assert not kie.tasks


async def test_misconfigured_key_and_rejected_parameter(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    kie.fail_next("/createTask", 401, "Unauthorized")
    update = tg.photo_update(CHAT_ID, tg.user(USER_ID), make_jpeg(320, 240), caption="a")
    await deliver(webhook_bot, tg, update)
    await tg.wait_for("editMessageText", lambda c: "misconfigured" in c.params["text"])
    kie.fail_next("/createTask", 422, "input.guidance_scale is out of range")
    update = tg.photo_update(CHAT_ID, tg.user(USER_ID), make_jpeg(320, 240), caption="b")
    await deliver(webhook_bot, tg, update)
    texts = await tg.wait_for("editMessageText", lambda c: "guidance_scale" in c.params["text"])
    assert "rejected the request (guidance_scale)" in texts[0].params["text"]


async def test_rate_limit_and_server_errors_are_retried(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    kie.fail_next("/createTask", 429, "Too many requests", http_status=True)
    kie.fail_next("/createTask", 500, "Server error")
    update = tg.photo_update(CHAT_ID, tg.user(USER_ID), make_jpeg(320, 240), caption="retry me")
    await deliver(webhook_bot, tg, update)
    await tg.wait_for("sendPhoto")
    creates = [path for _, path in kie.requests if path.endswith("/createTask")]
    assert len(creates) == 3 and len(kie.tasks) == 1


async def test_retries_exhausted_gives_a_clear_message(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(PROVIDER_MAX_RETRIES=1))
    await tg.wait_for("setWebhook")
    kie.fail_next("/createTask", 500, "Server error", times=2)
    update = tg.photo_update(CHAT_ID, tg.user(USER_ID), make_jpeg(320, 240), caption="x")
    await deliver(bot, tg, update)
    await tg.wait_for("editMessageText", lambda c: "unavailable right now" in c.params["text"])
    assert (await bot.wait_state(EditState.FAILED)).error_code == "unavailable"


async def test_photo_without_caption_asks_for_the_prompt(
    tg: FakeTelegram, kie: FakeKie, polling_bot: RunningBot
) -> None:
    image = make_jpeg(500, 500)
    photo = tg.photo_update(CHAT_ID, tg.user(USER_ID), image)
    await deliver(polling_bot, tg, photo)
    ask = (await tg.wait_for("sendMessage", replies_to(tg.message_of(photo))))[0]
    assert ask.params["text"].startswith("✍️ What should I change?")
    assert ask.params["reply_markup"]["force_reply"] is True
    assert not kie.tasks

    prompt = tg.text_update(
        CHAT_ID, tg.user(USER_ID), "turn it into a cartoon", reply_to=tg.sent_message(ask)
    )
    await deliver(polling_bot, tg, prompt)
    await tg.wait_for("sendPhoto", replies_to(tg.message_of(prompt)))
    task = next(iter(kie.tasks.values()))
    assert task.request["input"]["prompt"] == "turn it into a cartoon"
    assert task.inputs == [image]


async def test_reply_to_a_photo_and_chained_edit_of_the_result(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    image = make_jpeg(640, 480)
    original = tg.photo_update(CHAT_ID, tg.user(USER_ID), image)
    # The photo message exists in the chat; the user replies to it later with a prompt.
    reply = tg.text_update(
        CHAT_ID, tg.user(USER_ID), "make it snowy", reply_to=tg.message_of(original)
    )
    await deliver(webhook_bot, tg, reply)
    first = (await tg.wait_for("sendPhoto"))[0]
    assert next(iter(kie.tasks.values())).inputs == [image]

    # Chain: reply to the bot's own result with a new prompt.
    chained = tg.text_update(
        CHAT_ID, tg.user(USER_ID), "now add a snowman", reply_to=tg.sent_message(first)
    )
    await deliver(webhook_bot, tg, chained)
    await tg.wait_for("sendPhoto", count=2)
    tasks = list(kie.tasks.values())
    assert len(tasks) == 2
    assert tasks[1].inputs == [tg.files_sent_to(CHAT_ID)[0]]
    assert tasks[1].request["input"]["prompt"] == "now add a snowman"


async def test_photo_sent_as_a_file_is_normalized(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    png = make_png(300, 200, alpha=True)
    update = tg.document_update(
        CHAT_ID,
        tg.user(USER_ID),
        png,
        mime_type="image/png",
        file_name="drawing.png",
        caption="color it in",
    )
    await deliver(webhook_bot, tg, update)
    await tg.wait_for("sendPhoto")
    task = next(iter(kie.tasks.values()))
    assert task.request["input"]["image_url"].split("?")[0].endswith(".png")
    assert task.inputs and task.inputs[0].startswith(b"\x89PNG")


async def test_non_image_file_and_overlong_prompt_get_clear_messages(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    doc = tg.document_update(
        CHAT_ID,
        tg.user(USER_ID),
        b"%PDF-1.4 nope",
        mime_type="application/pdf",
        file_name="a.pdf",
        caption="edit",
    )
    await deliver(webhook_bot, tg, doc)
    await tg.wait_for("sendMessage", lambda c: "I can only edit images" in c.params["text"])
    long = tg.photo_update(CHAT_ID, tg.user(USER_ID), make_jpeg(64, 64), caption="x" * 1025)
    await deliver(webhook_bot, tg, long)
    # Captions are capped at 1024 by Telegram; a reply text can be longer.
    text = tg.text_update(CHAT_ID, tg.user(USER_ID), "y" * 2001, reply_to=tg.message_of(long))
    await deliver(webhook_bot, tg, text)
    await tg.wait_for(
        "sendMessage", lambda c: "too long: 2001 characters, the limit is 2000" in c.params["text"]
    )
    assert not kie.tasks


async def test_russian_user_gets_russian_messages(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    user = tg.user(USER_ID, language_code="ru")
    update = tg.photo_update(CHAT_ID, user, make_jpeg(64, 64), caption="сделай ярче")
    await deliver(webhook_bot, tg, update)
    status = (await tg.wait_for("sendMessage"))[0]
    assert status.params["text"] == "⏳ Принято! Редактирую фото…"
    sent = (await tg.wait_for("sendPhoto"))[0]
    assert sent.params["caption"].startswith("✨ Готово!")
