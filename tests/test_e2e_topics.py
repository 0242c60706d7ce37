"""Forum topics: in a supergroup with topics, every answer goes to the topic the request came
from, also when the request message is gone (a bare reply to it would land in General),
after a restart, for albums, failure notices and the admins' approval panel."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bot.handlers.moderation import change
from domain.edit import EditState
from tests.conftest import BotStarter, RunningBot, SettingsFactory
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram_server import ApiCall
from tests.test_e2e_settings import Chat, force_reply

Json = dict[str, Any]
GROUP_ID = -100_777
MEMBER_ID = 2002
ADMIN_ID = 2003


def in_topic(tg: FakeTelegram, call: ApiCall, topic: int) -> bool:
    """The call named the topic and every message it posted landed there."""
    return call.params.get("message_thread_id") == topic and all(
        message.get("message_thread_id") == topic and message.get("is_topic_message")
        for message in tg.sent_messages(call)
    )


def bot_calls(tg: FakeTelegram) -> list[ApiCall]:
    """Every message the bot posted in the group."""
    sends = ("sendMessage", "sendPhoto", "sendDocument", "sendMediaGroup")
    return [c for c in tg.calls if c.method in sends and c.params.get("chat_id") == GROUP_ID]


async def photo_in(tg: FakeTelegram, topic: int | None, caption: str, **kw: Any) -> Json:
    member = tg.user(MEMBER_ID, first_name="Bob")
    update = tg.photo_update(
        GROUP_ID, member, make_jpeg(320, 240), caption=caption, thread_id=topic, **kw
    )
    assert await tg.post_webhook(update) == 200
    return tg.message_of(update)


async def test_a_photo_in_a_topic_gets_its_status_and_result_there(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    topic = tg.create_topic(GROUP_ID, "Cats")
    sent = await photo_in(tg, topic, "/edit make it pop")
    [result] = await tg.wait_for("sendPhoto")
    edit = await webhook_bot.wait_state(EditState.DELIVERED)
    assert edit.thread_id == topic
    [status] = [c for c in tg.calls_of("sendMessage") if c.params["text"].startswith("⏳ Got it")]
    assert in_topic(tg, status, topic) and in_topic(tg, result, topic)
    assert result.params["reply_parameters"]["message_id"] == sent["message_id"]

    # The General topic has no thread id: answers there name none.
    await photo_in(tg, None, "/edit make it blue")
    general = (await tg.wait_for("sendPhoto", count=2))[1]
    assert (await webhook_bot.wait_state(EditState.DELIVERED, edit_id=2)).thread_id is None
    assert "message_thread_id" not in general.params
    assert "message_thread_id" not in tg.sent_message(general)


async def test_a_result_after_a_restart_goes_to_the_topic_of_a_deleted_request(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    settings = make_settings()
    bot = await start_bot(settings)
    await tg.wait_for("setWebhook")
    topic = tg.create_topic(GROUP_ID, "Dogs")
    kie.next_outcome(hold=True)
    sent = await photo_in(tg, topic, "/edit add a hat")
    edit = await bot.wait_state(EditState.SUBMITTED)
    await bot.stop()
    tg.user_deletes(GROUP_ID, sent["message_id"])
    assert edit.status_message_id is not None
    tg.user_deletes(GROUP_ID, edit.status_message_id)

    bot = await start_bot(settings)
    assert edit.task_id is not None
    kie.release(edit.task_id)
    [result] = await tg.wait_for("sendPhoto")
    assert in_topic(tg, result, topic)
    # The request is gone: like any topic message that replies to nothing, the result
    # shows as a reply to the message that opened the topic.
    assert tg.sent_message(result)["reply_to_message"]["message_id"] == topic
    await bot.wait_state(EditState.DELIVERED)


async def test_an_album_in_a_topic_gets_its_album_result_there(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(DEFAULT_MODEL="gpt-4o-image"))
    await tg.wait_for("setWebhook")
    topic = tg.create_topic(GROUP_ID, "Albums")
    await bot.services.db.chat_settings.update(
        GROUP_ID, lambda prefs: prefs.with_param("num_images", 2), user_id=ADMIN_ID
    )
    kie.next_outcome(hold=True)
    first = await photo_in(tg, topic, "/edit put them on a beach", media_group_id="a1")
    second = await photo_in(tg, topic, "", media_group_id="a1")
    edit = await bot.wait_state(EditState.SUBMITTED)
    assert edit.thread_id == topic and len(edit.inputs) == 2
    for message in (first, second):
        tg.user_deletes(GROUP_ID, message["message_id"])
    assert edit.task_id is not None
    kie.release(edit.task_id)
    [album] = await tg.wait_for("sendMediaGroup")
    assert len(tg.sent_messages(album)) == 2 and in_topic(tg, album, topic)
    await bot.wait_state(EditState.DELIVERED)
    buttons = [c for c in tg.calls_of("sendMessage") if "reply_markup" in c.params]
    assert buttons and all(in_topic(tg, call, topic) for call in buttons)


async def test_a_failure_notice_reaches_the_topic_when_its_messages_are_gone(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    topic = tg.create_topic(GROUP_ID, "Failures")
    kie.next_outcome(fail=("500", "Internal server error"), hold=True)
    sent = await photo_in(tg, topic, "/edit x-ray")
    edit = await webhook_bot.wait_state(EditState.SUBMITTED)
    assert edit.status_message_id is not None and edit.task_id is not None
    tg.user_deletes(GROUP_ID, sent["message_id"])
    tg.user_deletes(GROUP_ID, edit.status_message_id)
    kie.release(edit.task_id)
    [notice] = await tg.wait_for(
        "sendMessage", lambda c: c.params["text"].startswith("😔 The model couldn't edit")
    )
    assert in_topic(tg, notice, topic)
    assert (await webhook_bot.wait_edit(lambda e: e.notified_at is not None)).thread_id == topic


async def test_the_approval_panel_and_everything_after_it_stay_in_the_topic(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    topic = tg.create_topic(GROUP_ID, "Requests")
    tg.set_chat_member(GROUP_ID, ADMIN_ID, "administrator")
    admin = tg.user(ADMIN_ID, first_name="Ann")
    await change(webhook_bot.services, GROUP_ID, ADMIN_ID, lambda mod: replace(mod, approval=True))
    sent = await photo_in(tg, topic, "/edit make it pop")
    [panel_call] = await tg.wait_for(
        "sendMessage", lambda c: "asks for an edit" in c.params["text"]
    )
    assert in_topic(tg, panel_call, topic)
    # The request is deleted before an admin decides: the answers still find the topic.
    tg.user_deletes(GROUP_ID, sent["message_id"])
    panel = tg.sent_message(panel_call)
    press = tg.callback_query_update(admin, panel, "a1:y:1")
    assert await tg.post_webhook(press) == 200
    [approved] = await tg.wait_for(
        "sendMessage", lambda c: c.params["text"].startswith("✅ An admin approved")
    )
    [result] = await tg.wait_for("sendPhoto")
    await webhook_bot.wait_state(EditState.DELIVERED)
    assert in_topic(tg, approved, topic) and in_topic(tg, result, topic)
    assert all(in_topic(tg, call, topic) for call in bot_calls(tg))


async def test_menus_history_and_files_answer_in_the_topic(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    topic = tg.create_topic(GROUP_ID, "Menus")
    tg.set_chat_member(GROUP_ID, ADMIN_ID, "administrator")
    member = Chat(tg, GROUP_ID, tg.user(MEMBER_ID, first_name="Bob"), thread_id=topic)
    admin = Chat(tg, GROUP_ID, tg.user(ADMIN_ID, first_name="Ann"), thread_id=topic)
    sent = await photo_in(tg, topic, "/edit add snow")
    result = tg.sent_message((await tg.wait_for("sendPhoto"))[0])
    await webhook_bot.wait_state(EditState.DELIVERED)

    history = await member.reply_of(await member.send("/history"))
    assert in_topic(tg, history, topic)
    # "As file" under the result, once the request is gone.
    tg.user_deletes(GROUP_ID, sent["message_id"])
    await member.press(result, "r1:f:1")
    [document] = await tg.wait_for("sendDocument")
    assert in_topic(tg, document, topic)

    menu_call = await admin.reply_of(await admin.send("/settings"))
    assert in_topic(tg, menu_call, topic)
    menu = tg.sent_message(menu_call)
    await admin.tap(menu, "🚫 Negative prompt")
    await admin.tap(menu, "✍️ Enter text")
    [question] = await tg.wait_for("sendMessage", force_reply)
    assert in_topic(tg, question, topic)
    confirmation = await admin.type_answer(question, "no dogs")
    assert confirmation.params["text"] == "✅ 🚫 Negative prompt: no dogs"
    assert all(in_topic(tg, call, topic) for call in bot_calls(tg))


async def test_a_command_in_a_topic_replying_to_nothing_targets_nobody(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    """Telegram shows such a message as a reply to the topic's opening message: /ban must
    not take that for a reply to its creator's message."""
    await tg.wait_for("setWebhook")
    topic = tg.create_topic(GROUP_ID, "Rules", creator=tg.user(MEMBER_ID, first_name="Bob"))
    tg.set_chat_member(GROUP_ID, ADMIN_ID, "administrator")
    admin = Chat(tg, GROUP_ID, tg.user(ADMIN_ID, first_name="Ann"), thread_id=topic)
    usage = await admin.reply_of(await admin.send("/ban"))
    assert usage.params["text"].startswith("Use this as a reply to a message of the member")
    assert in_topic(tg, usage, topic)
    prefs = await webhook_bot.services.db.chat_settings.get(GROUP_ID, fresh=True)
    assert not prefs.moderation.banned
