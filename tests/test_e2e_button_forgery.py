"""Forged button presses and removed results, end to end through the fake Bot API.

A Telegram client can send any callback_data for any message of the bot that has buttons;
each press must act only on the records the button was made for (checked in the database).
A result an admin removed, or a member the group banned, must not come back through any
path that sends a result again (/history, "As file", inline mode).
"""

from __future__ import annotations

from typing import Any

from domain.edit import EditState
from tests.conftest import RunningBot
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram_server import ApiCall
from tests.test_e2e_moderation import ADMIN_ID, GROUP_ID, MEMBER_ID, configure, in_group
from tests.test_e2e_settings import Chat, keyboard, photo

Json = dict[str, Any]
OTHER_GROUP_ID = -100_777
UNKNOWN = "This button is no longer valid."
REMOVED = "🗑 An admin removed this result, so I won't send it again."


def results_sent(tg: FakeTelegram, chat_id: int) -> list[ApiCall]:
    """Every photo or file the bot sent to the chat."""
    return [
        call
        for method in ("sendPhoto", "sendDocument", "sendMediaGroup")
        for call in tg.calls_of(method)
        if call.params.get("chat_id") == chat_id
    ]


async def result_in(
    tg: FakeTelegram, bot: RunningBot, chat: Chat, prompt: str, edit_id: int
) -> Json:
    """Ask for an edit in `chat`; its result message once it is delivered (and on record)."""
    sent = await photo(tg, chat, prompt)
    result = tg.sent_message(await chat.reply_of(sent, method="sendPhoto"))
    await bot.wait_state(EditState.DELIVERED, edit_id=edit_id)
    return result


async def test_a_forged_remove_deletes_nothing_but_the_result_it_was_made_for(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    member, admin = in_group(tg)
    tg.set_chat_member(GROUP_ID, tg.bot_id, "administrator")  # may delete anyone's messages
    chatter = [(await member.send(f"hello {i}"))["message_id"] for i in range(5)]
    result = await result_in(tg, webhook_bot, member, "/edit a hat", 1)
    listing = await member.command("/history")  # a message of the bot that is no result

    # The old format's span of message ids, covering the members' messages: refused whole.
    forged = await admin.press(result, f"r1:x:1:{chatter[0]}:10")
    assert forged.params["text"] == UNKNOWN
    # The right edit, pressed under a message that does not carry its result.
    elsewhere = await admin.press(listing, "r1:x:1")
    assert elsewhere.params["text"] == UNKNOWN
    assert not tg.calls_of("deleteMessages")  # (deleteMessage: the "Editing…" status)
    assert not any(tg.is_deleted(GROUP_ID, mid) for mid in [*chatter, listing["message_id"]])
    assert (await webhook_bot.edit(1)).removed_at is None

    removed = await admin.press(result, "r1:x:1")
    assert removed.params["text"] == "🗑 Removed."
    [deleted] = tg.calls_of("deleteMessages")
    assert deleted.params["message_ids"] == [result["message_id"]]
    assert not any(tg.is_deleted(GROUP_ID, mid) for mid in [*chatter, listing["message_id"]])


async def test_a_press_naming_another_chats_edit_is_refused(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    member, _admin = in_group(tg)
    tg.register_chat(OTHER_GROUP_ID, chat_type="supergroup", title="Elsewhere")
    there = Chat(tg, OTHER_GROUP_ID, member.user)
    await result_in(tg, webhook_bot, there, "/edit a secret", 1)

    # In this group /history lists none of it; a forged button asks for it anyway.
    listing = await member.command("/history")
    refused = await member.press(listing, "h1:r:1")
    assert refused.params["text"] == UNKNOWN
    assert (await member.press(listing, "r1:f:1")).params["text"] == UNKNOWN
    assert not results_sent(tg, GROUP_ID)


async def test_a_decision_pressed_on_another_requests_panel_is_refused(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    member, admin = in_group(tg)
    await configure(webhook_bot, approval=True)
    first = tg.sent_message(await member.reply_of(await photo(tg, member, "/edit one")))
    await webhook_bot.wait_state(EditState.AWAITING_APPROVAL, edit_id=1)
    await member.reply_of(await photo(tg, member, "/edit two"))
    second = await webhook_bot.wait_edit(lambda e: e.approval_message_id is not None, edit_id=2)

    forged = await admin.press(first, "a1:y:2")  # the first request's panel, the second's id
    assert forged.params["text"] == UNKNOWN
    assert (await webhook_bot.edit(2)).state is EditState.AWAITING_APPROVAL
    assert (await webhook_bot.edit(1)).state is EditState.AWAITING_APPROVAL
    panel = tg.message(GROUP_ID, second.approval_message_id or 0)
    assert panel is not None
    await admin.press(panel, "a1:y:2")
    await webhook_bot.wait_state(EditState.DELIVERED, edit_id=2)
    assert len(kie.tasks) == 1


async def test_a_removed_result_is_never_sent_again(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    member, admin = in_group(tg)
    result = await result_in(tg, webhook_bot, member, "/edit a hat", 1)
    assert (await admin.press(result, "r1:x:1")).params["text"] == "🗑 Removed."
    sent_before = len(results_sent(tg, GROUP_ID))

    listing = await member.command("/history")
    for data in ("h1:r:1", "r1:f:1"):  # forged: the /history button, "As file"
        refused = await member.press(listing, data)
        assert refused.params["text"] == REMOVED and refused.params["show_alert"] is True
    assert len(results_sent(tg, GROUP_ID)) == sent_before
    assert "🗑 Removed by an admin" in listing["text"]
    assert keyboard(listing) == []  # nothing to get again

    # Nor in the author's private chat, nor offered by inline mode anywhere.
    private = Chat(tg, MEMBER_ID, member.user)
    listing = await private.command("/history")
    assert (await private.press(listing, "h1:r:1")).params["text"] == REMOVED
    assert not results_sent(tg, MEMBER_ID)
    update = tg.inline_query_update(member.user, "")
    assert await tg.post_webhook(update) == 200
    [answer] = await tg.wait_for(
        "answerInlineQuery", lambda c: c.params["inline_query_id"] == update["inline_query"]["id"]
    )
    assert answer.params["results"] == []


async def test_a_banned_member_cannot_post_results_through_history_or_as_file(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    member, admin = in_group(tg)
    await result_in(tg, webhook_bot, member, "/edit a hat", 1)
    admins_result = await result_in(tg, webhook_bot, admin, "/edit a scarf", 2)
    await configure(webhook_bot, banned={MEMBER_ID: "Bob"})
    sent_before = len(results_sent(tg, GROUP_ID))

    listing = await member.command("/history")
    refused = await member.press(listing, "h1:r:1")
    assert refused.params["show_alert"] is True
    assert refused.params["text"] == (
        "🚫 An admin has stopped you from using me in this group, "
        "so I won't post results for you here."
    )
    refused = await member.press(admins_result, "r1:f:2")
    assert refused.params["text"].startswith("🚫 An admin has stopped you")
    russian = Chat(tg, GROUP_ID, tg.user(MEMBER_ID, first_name="Bob", language_code="ru"))
    refused = await russian.press(listing, "h1:r:1")
    assert refused.params["text"].startswith("🚫 Администратор запретил вам пользоваться мной")
    assert len(results_sent(tg, GROUP_ID)) == sent_before

    # Admins are exempt, as for new requests.
    await configure(webhook_bot, banned={MEMBER_ID: "Bob", ADMIN_ID: "Ann"})
    listing = await admin.command("/history")
    assert (await admin.press(listing, "h1:r:2")).params["text"] == "↩️ Sending it again"
    await admin.reply_of(listing, method="sendPhoto")
