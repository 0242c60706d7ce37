"""Actions on results ("Again", "As file"), /history, /cancel and inline mode, end to end."""

from __future__ import annotations

from typing import Any

from domain.edit import EditState
from tests.conftest import CHAT_ID, USER_ID, BotStarter, RunningBot, SettingsFactory
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram_server import ApiCall
from tests.test_e2e_settings import Chat, data_of, keyboard

Json = dict[str, Any]


async def edited(tg: FakeTelegram, me: Chat, caption: str, image: bytes) -> tuple[Json, ApiCall]:
    """Send a photo with a caption; return our message and the bot's sendPhoto with the result."""
    update = tg.photo_update(CHAT_ID, me.user, image, caption=caption)
    assert await tg.post_webhook(update) == 200
    sent = tg.message_of(update)
    return sent, await me.reply_of(sent, method="sendPhoto")


async def test_again_makes_a_new_edit_of_the_same_photo_and_prompt_once(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    image = make_jpeg(640, 480)
    _, result = await edited(tg, me, "make it snow", image)
    first = await webhook_bot.wait_state(EditState.DELIVERED)
    message = tg.sent_message(result)
    assert keyboard(message) == [("🔁 Again", "r1:a:1"), ("📎 As file", "r1:f:1")]
    assert result.params["caption"].startswith("✨ Done! Reply to this photo")

    update = tg.callback_query_update(me.user, message, "r1:a:1")
    assert await tg.post_webhook(update) == 200
    assert await tg.post_webhook(update) == 200  # Telegram repeats the update: ignored
    # The press handled a second time (as after a crash before the update was marked done):
    # still one new edit.
    replayed = {**update, "update_id": update["update_id"] + 1_000_000}
    assert await tg.post_webhook(replayed) == 200
    answers = await tg.wait_for(
        "answerCallbackQuery",
        lambda c: c.params["callback_query_id"] == update["callback_query"]["id"],
        count=2,  # both handlings; a query can be answered only once
    )
    assert [call.ok for call in answers] == [True, False]
    assert answers[0].params["text"] == "🔁 Editing again with a new seed…"
    again = await me.reply_of(message, method="sendPhoto")  # the new result answers the old one
    second = await webhook_bot.wait_state(EditState.DELIVERED, edit_id=2)
    assert len(await webhook_bot.edits()) == 2
    assert second.prompt == first.prompt and second.inputs == first.inputs
    assert second.dedupe_key == f"again:{update['callback_query']['id']}"
    tasks = list(kie.tasks.values())
    assert len(tasks) == 2 and tasks[1].inputs == tasks[0].inputs == [image]
    assert tasks[1].request["input"]["prompt"] == "make it snow"
    assert isinstance(tasks[1].request["input"]["seed"], int)
    assert "seed" not in tasks[0].request["input"]  # random by default: left to the model
    assert keyboard(tg.sent_message(again)) == [("🔁 Again", "r1:a:2"), ("📎 As file", "r1:f:2")]


async def test_again_is_only_for_the_person_who_asked(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    group = -100_777
    tg.register_chat(group, chat_type="supergroup")
    owner = Chat(tg, group, tg.user(USER_ID))
    other = Chat(tg, group, tg.user(4004))
    update = tg.photo_update(group, owner.user, make_jpeg(300, 300), caption="/edit add a hat")
    assert await tg.post_webhook(update) == 200
    result = await owner.reply_of(tg.message_of(update), method="sendPhoto")
    refusal = await other.press(tg.sent_message(result), "r1:a:1")
    assert refusal.params["show_alert"] is True
    assert refusal.params["text"] == "Only the person who asked for this edit can repeat it."
    # A forged button pointing at an edit of another chat is not honoured either.
    menu = await Chat(tg, CHAT_ID, tg.user(USER_ID)).command("/help")
    forged = await Chat(tg, CHAT_ID, tg.user(USER_ID)).press(menu, "r1:f:1")
    assert forged.params["text"] == "This button is no longer valid."
    assert len(kie.tasks) == 1 and not tg.calls_of("sendDocument")


async def test_as_file_sends_the_original_bytes_or_says_they_expired(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    # Two presses under one result (the As-file throttle is tested on its own).
    webhook_bot = await start_bot(make_settings(AS_FILE_RESULT_LIMIT="2/300"))
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    _, result = await edited(tg, me, "make it a painting", make_jpeg(500, 400))
    edit = await webhook_bot.wait_state(EditState.DELIVERED)
    message = tg.sent_message(result)

    answer = await me.press(message, data_of(message, "📎 As file"))
    assert answer.params["text"] == "📎 Sending the original file…"
    document = await me.reply_of(message, method="sendDocument")
    task = next(iter(kie.tasks.values()))
    assert document.files["document"] == task.results[0]  # byte for byte, no recompression
    assert tg.files_sent_to(CHAT_ID)[-1] == task.results[0]

    # Later the provider no longer keeps it (its links answer 404).
    gone = [f"{kie.url}/results/{task.task_id}/expired.png"]
    await webhook_bot.services.db.edits.update_fields(
        edit.id, only_in=[EditState.DELIVERED], result_urls=gone
    )
    await me.press(message, data_of(message, "📎 As file"))
    expired = await me.reply_of(message)
    assert expired.params["text"].startswith("⌛ The image service no longer keeps this result")
    assert len(tg.calls_of("sendDocument")) == 1


async def test_cancel_keeps_a_late_result_from_being_sent(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    assert (await me.command("/cancel"))["text"] == (
        "Nothing to cancel: you have no edit in progress here."
    )
    kie.next_outcome(hold=True)
    update = tg.photo_update(CHAT_ID, me.user, make_jpeg(320, 240), caption="add a rainbow")
    assert await tg.post_webhook(update) == 200
    edit = await webhook_bot.wait_state(EditState.SUBMITTED)

    answer = await me.command("/cancel")
    assert answer["text"].startswith("🛑 Cancelled. The image service cannot stop a task")
    cancelled = await webhook_bot.edit(edit.id)
    assert cancelled.state is EditState.CANCELLED and cancelled.error_code == "cancelled"
    status = tg.message(CHAT_ID, edit.status_message_id or 0)
    assert status is not None and status["text"] == "🛑 Cancelled."

    # The provider finishes anyway and calls back: acknowledged, nothing is sent.
    assert edit.task_id is not None
    kie.release(edit.task_id)
    [callback] = await kie.wait_callbacks(1, task_id=edit.task_id)
    assert callback.ok and callback.body["data"]["state"] == "success"
    assert (await webhook_bot.edit(edit.id)).state is EditState.CANCELLED
    assert not tg.calls_of("sendPhoto") and not tg.calls_of("sendMediaGroup")
    assert (await me.command("/cancel"))["text"].startswith("Nothing to cancel")


async def test_cancel_drops_a_question_waiting_for_text(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    update = tg.photo_update(CHAT_ID, me.user, make_jpeg(320, 240))  # no caption: bot asks
    assert await tg.post_webhook(update) == 200
    await me.reply_of(tg.message_of(update))
    assert (await me.command("/cancel"))["text"] == "🛑 OK, I'm no longer waiting for your text."
    offer = await me.command("make it red")  # no longer a prompt for that photo
    assert offer["text"].startswith("🎨 There is no photo here to edit.")  # only offered
    assert not kie.tasks


async def test_history_lists_edits_and_resends_or_reruns(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    assert (await me.command("/history"))["text"].startswith("🕘 No edits yet.")
    await edited(tg, me, "make it <b>bold</b>", make_jpeg(320, 240))
    done = await webhook_bot.wait_state(EditState.DELIVERED)
    kie.next_outcome(fail=("500", "Internal server error"))
    update = tg.photo_update(CHAT_ID, me.user, make_jpeg(240, 320), caption="x-ray")
    assert await tg.post_webhook(update) == 200
    await webhook_bot.wait_state(EditState.FAILED, edit_id=2)

    history = await me.command("/history")
    assert history["text"].splitlines()[:5] == [
        "🕘 Your recent edits",
        "",
        "1. ❌ Failed · Qwen Image Edit",
        "x-ray",
        "2. ✅ Done · Qwen Image Edit",
    ]
    assert "make it <b>bold</b>" in history["text"]  # user text shown as text, not markup
    assert keyboard(history) == [("↩️ 1", "h1:r:2"), ("↩️ 2", "h1:r:1")]

    answer = await me.press(history, "h1:r:1")
    assert answer.params["text"] == "↩️ Sending it again"
    resent = await me.reply_of(history, method="sendPhoto")
    assert resent.params["photo"] == done.result_file_ids[0]  # by file id: nothing re-uploaded
    assert keyboard(tg.sent_message(resent)) == [("🔁 Again", "r1:a:1"), ("📎 As file", "r1:f:1")]

    answer = await me.press(history, "h1:r:2")  # failed: no stored result, so it is made again
    assert answer.params["text"] == "🔁 No stored result: making it again…"
    rerun = await webhook_bot.wait_state(EditState.DELIVERED, edit_id=3)
    assert rerun.prompt == "x-ray" and len(kie.tasks) == 3

    stranger = Chat(tg, CHAT_ID, tg.user(5005))
    refusal = await stranger.press(history, "h1:r:1")
    assert refusal.params["show_alert"] is True


async def test_inline_mode_lists_the_users_own_results(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    await edited(tg, me, "a cat in a hat", make_jpeg(320, 240))
    first = await webhook_bot.wait_state(EditState.DELIVERED)
    await edited(tg, me, "a dog on a log", make_jpeg(240, 320))
    second = await webhook_bot.wait_state(EditState.DELIVERED, edit_id=2)

    async def ask(user_id: int, query: str) -> ApiCall:
        update = tg.inline_query_update(tg.user(user_id), query)
        assert await tg.post_webhook(update) == 200
        calls = await tg.wait_for(
            "answerInlineQuery",
            lambda c: c.params["inline_query_id"] == update["inline_query"]["id"],
        )
        assert calls[0].ok
        return calls[0]

    answer = await ask(USER_ID, "")
    assert answer.params["is_personal"] is True and answer.params["cache_time"] <= 10
    results = answer.params["results"]
    assert [r["type"] for r in results] == ["photo", "photo"]
    assert [r["photo_file_id"] for r in results] == [
        second.result_file_ids[0],
        first.result_file_ids[0],
    ]
    dogs = (await ask(USER_ID, "DOG")).params["results"]
    assert [r["photo_file_id"] for r in dogs] == [second.result_file_ids[0]]

    nothing = await ask(6006, "")  # someone else sees none of these
    assert nothing.params["results"] == []
    assert nothing.params["button"]["start_parameter"] == "inline"
