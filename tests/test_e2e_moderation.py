"""Group moderation and access control, end to end through the fake Bot API in a supergroup.

Every refusal and every request waiting for approval is checked to have cost nothing: no
getFile (the photo was not downloaded), no task at the fake KIE (nothing uploaded or spent).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import replace
from typing import Any

from bot.handlers.moderation import change
from domain.edit import EditState
from storage.chat_settings import ChatSettings
from storage.moderation import Moderation, WhoMayEdit
from tests.conftest import CHAT_ID, USER_ID, BotStarter, RunningBot, SettingsFactory
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram_server import ApiCall
from tests.test_e2e_settings import Chat, data_of, keyboard, photo

Json = dict[str, Any]
GROUP_ID = -100_888
MEMBER_ID = 2002
ADMIN_ID = 2003
OTHER_ID = 2004
ANONYMOUS_ADMIN_BOT = 1087968824  # Telegram's GroupAnonymousBot


def in_group(tg: FakeTelegram) -> tuple[Chat, Chat]:
    """A supergroup with Bob (a member) and Ann (an admin)."""
    tg.register_chat(GROUP_ID, chat_type="supergroup", title="Cats & Dogs")
    tg.set_chat_member(GROUP_ID, ADMIN_ID, "administrator")
    member = Chat(tg, GROUP_ID, tg.user(MEMBER_ID, first_name="Bob"))
    admin = Chat(tg, GROUP_ID, tg.user(ADMIN_ID, first_name="Ann"))
    return member, admin


async def configure(bot: RunningBot, **rules: Any) -> Moderation:
    """Set the group's rules the way the panel does (compare-and-set on its settings)."""
    return await change(bot.services, GROUP_ID, ADMIN_ID, lambda mod: replace(mod, **rules))


async def said(tg: FakeTelegram, chat: Chat, message: Json, start: str) -> ApiCall:
    """The bot's sendMessage replying to `message` whose text starts with `start`."""

    def match(call: ApiCall) -> bool:
        reply = call.params.get("reply_parameters") or {}
        return bool(
            reply.get("message_id") == message["message_id"]
            and call.params.get("chat_id") == chat.chat_id
            and str(call.params.get("text", "")).startswith(start)
        )

    return (await tg.wait_for("sendMessage", match))[0]


def spent_nothing(tg: FakeTelegram, kie: FakeKie, tasks: int = 0, downloads: int = 0) -> None:
    assert len(kie.tasks) == tasks, "a task was created"
    assert len(tg.calls_of("getFile")) == downloads, "a photo was downloaded"


async def test_anonymous_admin_opens_the_panel_and_admins_change_the_rules(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    member, admin = in_group(tg)
    refused = await member.command("/moderation")
    assert refused["text"] == "🔒 Only group admins can do this."
    private = await Chat(tg, CHAT_ID, tg.user(USER_ID)).command("/moderation")
    assert private["text"].startswith("This command works in groups")

    # An anonymous admin writes as the group itself (sender_chat = the group).
    update = tg.text_update(GROUP_ID, tg.user(ANONYMOUS_ADMIN_BOT), "/moderation@edit_test_bot")
    update["message"]["sender_chat"] = tg.message_of(update)["chat"]
    assert await tg.post_webhook(update) == 200
    panel = tg.sent_message(await admin.reply_of(tg.message_of(update)))
    assert "Moderation of Cats & Dogs" in panel["text"]
    assert "Who may edit: Everyone" in panel["text"] and "Admin approval: Off" in panel["text"]
    assert not [
        c for c in tg.calls_of("getChatMember") if c.params["user_id"] in (ANONYMOUS_ADMIN_BOT,)
    ]  # recognised from sender_chat, no lookup needed

    # A member pressing the panel's buttons is refused and changes nothing.
    refusal = await member.press(panel, data_of(panel, "✋ Admin approval: Off"))
    assert refusal.params["show_alert"] is True
    assert refusal.params["text"] == "🔒 Only group admins can do this."
    assert (await ChatSettings(webhook_bot.services.db.backend).get(GROUP_ID)).moderation == (
        Moderation()
    )

    state = await admin.tap(panel, "✋ Admin approval: Off")
    assert "Admin approval: On" in state["text"]
    await admin.tap(panel, "👥 Who may edit: Everyone")
    state = await admin.tap(panel, "Approved members")
    assert ("✅ Approved members", data_of(state, "Approved members")) in keyboard(state)
    await admin.tap(panel, "⬅️ Back")
    await admin.tap(panel, "👤 Per member per day")
    await admin.tap(panel, "5")
    await admin.tap(panel, "⬅️ Back")
    await admin.tap(panel, "⏱ Pause between edits")
    state = await admin.tap(panel, "5 min")
    assert "Now: 5 min" in state["text"]
    await admin.tap(panel, "⬅️ Back")
    state = await admin.tap(panel, "🛡 Safety checker locked on: Off")
    assert "Safety checker locked on: On" in state["text"]
    assert (
        "Per member per day: 5" in state["text"] and "Pause between edits: 5 min" in state["text"]
    )

    stored = (await ChatSettings(webhook_bot.services.db.backend).get(GROUP_ID)).moderation
    assert stored == Moderation(
        who=WhoMayEdit.APPROVED, approval=True, member_daily=5, cooldown=300, safety_locked=True
    )
    # The group's other settings are untouched by the panel, and /settings' reset keeps it.
    assert (await ChatSettings(webhook_bot.services.db.backend).get(GROUP_ID)).params == {}
    closed = await admin.tap(panel, "✖️ Close")
    assert closed["text"].startswith("🛡 Moderation settings saved") and "reply_markup" not in closed


async def test_a_request_waits_for_approval_and_is_delivered_once_approved(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    member, admin = in_group(tg)
    await configure(webhook_bot, approval=True)

    sent = await photo(tg, member, "/edit make it pop")
    request = tg.sent_message(await member.reply_of(sent))
    assert request["text"].startswith("🙋 Bob asks for an edit:\nmake it pop")
    assert "within 1 h" in request["text"]
    assert keyboard(request) == [("✅ Approve", "a1:y:1"), ("❌ Reject", "a1:n:1")]
    edit = await webhook_bot.wait_edit(lambda e: e.approval_message_id is not None)
    assert (
        edit.state is EditState.AWAITING_APPROVAL
        and edit.approval_message_id == request["message_id"]
    )
    spent_nothing(tg, kie)

    # The member (or anyone not an admin) pressing Approve is refused.
    refusal = await member.press(request, "a1:y:1")
    assert refusal.params["show_alert"] is True
    assert refusal.params["text"] == "🔒 Only group admins can approve or reject edit requests."
    assert (await webhook_bot.edit()).state is EditState.AWAITING_APPROVAL
    spent_nothing(tg, kie)

    answer = await admin.press(request, "a1:y:1")
    assert answer.params["text"] == "✅ Approved: editing now."
    await said(tg, member, sent, "✅ An admin approved your request.")  # the requester is told
    await member.reply_of(sent, method="sendPhoto")
    edit = await webhook_bot.wait_state(EditState.DELIVERED)
    assert (edit.decision, edit.decided_by, edit.decided_by_name) == ("approved", ADMIN_ID, "Ann")
    [task] = kie.tasks.values()
    assert task.request["input"]["prompt"] == "make it pop"
    panel = tg.message(GROUP_ID, request["message_id"])
    assert panel is not None and "reply_markup" not in panel
    assert panel["text"].startswith("✅ Ann approved the edit Bob asked for")

    # A second decision (another admin, or a stale button) changes nothing.
    late = await admin.press(request, "a1:n:1")
    assert late.params["text"] == "This request was already decided: ✅ Done."
    assert (await webhook_bot.edit()).state is EditState.DELIVERED and len(kie.tasks) == 1


async def test_a_rejected_request_is_never_submitted(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    member, admin = in_group(tg)
    await configure(webhook_bot, approval=True)
    sent = await photo(tg, member, "/edit make it pop")
    request = tg.sent_message(await member.reply_of(sent))

    answer = await admin.press(request, "a1:n:1")
    assert answer.params["text"] == "❌ Rejected."
    told = await said(tg, member, sent, "❌ An admin rejected this edit request.")
    assert told.ok
    edit = await webhook_bot.wait_edit(lambda e: e.notified_at is not None)
    assert edit.state is EditState.REJECTED and edit.decision == "rejected"
    assert edit.decided_by_name == "Ann"
    panel = tg.message(GROUP_ID, request["message_id"])
    assert panel is not None and panel["text"].startswith("❌ Ann rejected the edit Bob asked for")
    assert "reply_markup" not in panel
    again = await admin.press(request, "a1:y:1")
    assert again.params["text"] == "This request was already decided: 🚫 Rejected."
    spent_nothing(tg, kie)
    # A rejected request does not count against the member's limits.
    await configure(webhook_bot, approval=False, member_daily=1)
    second = await photo(tg, member, "/edit make it pop again")
    await member.reply_of(second, method="sendPhoto")


async def test_a_pending_request_expires_and_the_member_is_told(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(APPROVAL_TIMEOUT=600))
    await tg.wait_for("setWebhook")
    member, admin = in_group(tg)
    await configure(bot, approval=True)
    sent = await photo(tg, member, "/edit make it pop")
    request = tg.sent_message(await member.reply_of(sent))
    assert "within 10 min" in request["text"]
    edit = await bot.wait_edit(lambda e: e.approval_message_id is not None)
    assert edit.state is EditState.AWAITING_APPROVAL

    # Ten minutes pass (the row says so; the sweeper reads APPROVAL_TIMEOUT against it).
    await bot.services.db.edits.update_fields(
        edit.id, only_in=[EditState.AWAITING_APPROVAL], updated_at=time.time() - 601
    )
    expired = await bot.wait_state(EditState.EXPIRED)
    assert expired.decision == "expired" and expired.error_code == "approval_expired"
    await said(tg, member, sent, "⌛ No admin approved this edit request in time.")
    await tg.wait_for(
        "editMessageText", lambda c: c.params.get("message_id") == request["message_id"]
    )
    panel = tg.message(GROUP_ID, request["message_id"])
    assert panel is not None and panel["text"].startswith("⌛ This edit request expired")
    assert "reply_markup" not in panel
    late = await admin.press(request, "a1:y:1")
    assert late.params["text"] == "This request was already decided: ⌛ Timed out."
    spent_nothing(tg, kie)


async def test_each_limit_refuses_with_when_to_try_again(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    member, admin = in_group(tg)
    other = Chat(tg, GROUP_ID, tg.user(OTHER_ID, first_name="Cid"))
    third = Chat(tg, GROUP_ID, tg.user(OTHER_ID + 1, first_name="Dee"))
    first = await photo(tg, member, "/edit a hat")
    await member.reply_of(first, method="sendPhoto")
    await webhook_bot.wait_state(EditState.DELIVERED)

    await configure(webhook_bot, member_daily=1)
    sent = await photo(tg, member, "/edit a scarf")
    refusal = await said(tg, member, sent, "⏳")
    assert re.fullmatch(
        r"⏳ You've reached this group's limit of 1 edits per member per day\. "
        r"Try again in (24 h|23 h 59 min)\.",
        refusal.params["text"],
    ), refusal.params["text"]
    spent_nothing(tg, kie, tasks=1, downloads=1)

    await configure(webhook_bot, member_daily=0, cooldown=3600)
    sent = await photo(tg, member, "/edit a scarf")
    refusal = await said(tg, member, sent, "⏳")
    assert refusal.params["text"] == (
        "⏳ This group asks members to pause between edits. Try again in 1 h."
    )
    spent_nothing(tg, kie, tasks=1, downloads=1)
    # An admin is not held by the member limits.
    mine = await photo(tg, admin, "/edit a crown")
    await admin.reply_of(mine, method="sendPhoto")
    await webhook_bot.wait_state(EditState.DELIVERED, edit_id=2)

    await configure(webhook_bot, cooldown=0, group_daily=3)
    sent = await photo(tg, other, "/edit a cape")
    await other.reply_of(sent, method="sendPhoto")
    await webhook_bot.wait_state(EditState.DELIVERED, edit_id=3)
    sent = await photo(tg, third, "/edit a cape")
    refusal = await said(tg, third, sent, "⏳")
    assert re.fullmatch(
        r"⏳ This group has used all 3 edits it allows per day\. Try again in (24 h|23 h 59 min)\.",
        refusal.params["text"],
    ), refusal.params["text"]
    spent_nothing(tg, kie, tasks=3, downloads=3)
    assert len(await webhook_bot.edits()) == 3  # refusals record nothing


async def test_two_simultaneous_requests_cannot_both_take_the_last_slot(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    member, _admin = in_group(tg)
    await configure(webhook_bot, member_daily=1)
    updates = [
        tg.photo_update(GROUP_ID, member.user, make_jpeg(300, 200), caption=f"/edit hat {i}")
        for i in range(4)
    ]
    statuses = await asyncio.gather(*(tg.post_webhook(update) for update in updates))
    assert statuses == [200] * 4
    await tg.wait_for("sendMessage", lambda c: "limit of 1" in str(c.params.get("text")), count=3)
    await tg.wait_for("sendPhoto")
    assert len(await webhook_bot.edits()) == 1 and len(kie.tasks) == 1


async def test_a_banned_member_is_refused_until_unbanned(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    member, admin = in_group(tg)
    hello = await member.send("hello everyone")
    not_admin = await member.reply_of(await member.send("/ban", reply_to=hello))
    assert not_admin.params["text"] == "🔒 Only group admins can do this."
    banned = await admin.reply_of(await admin.send("/ban", reply_to=hello))
    assert banned.params["text"] == "⛔ Bob can no longer ask for edits here."
    mine = await admin.send("me too")
    refused = await admin.reply_of(await admin.send("/ban", reply_to=mine))
    assert refused.params["text"] == "Ann is an admin here: admins can't be banned from editing."
    usage = await admin.reply_of(await admin.send("/ban"))
    assert usage.params["text"].startswith("Use this as a reply to a message of the member")

    sent = await photo(tg, member, "/edit make it pop")
    refusal = await said(tg, member, sent, "🚫")
    assert (
        refusal.params["text"] == "🚫 An admin has stopped you from asking for edits in this group."
    )
    spent_nothing(tg, kie)

    unbanned = await admin.reply_of(await admin.send("/unban", reply_to=hello))
    assert unbanned.params["text"] == "✅ Bob may ask for edits here again."
    sent = await photo(tg, member, "/edit make it pop")
    await member.reply_of(sent, method="sendPhoto")


async def test_blocklisted_prompts_are_refused_whole_words_any_case(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    member, admin = in_group(tg)
    blocked = await admin.reply_of(await admin.send("/block Hot   Dog, кот"))
    assert blocked.params["text"] == "🚫 Blocked in prompts: hot dog, кот (2 on the list)."
    for prompt in ("/edit draw a HOT DOG please", "/edit рыжий Кот!"):
        sent = await photo(tg, member, prompt)
        refusal = await said(tg, member, sent, "🚫")
        assert refusal.params["text"].startswith("🚫 Your prompt contains a word or phrase")
    spent_nothing(tg, kie)
    sent = await photo(tg, member, "/edit a котлета next to hotdogs")  # not whole words
    await member.reply_of(sent, method="sendPhoto")

    # The panel lists them; a button takes one off.
    panel = await admin.command("/moderation")
    assert "Blocked words: hot dog, кот" in panel["text"]
    words = await admin.tap(panel, "🚫 Words (2)")
    assert "• hot dog" in words["text"] and "• кот" in words["text"]
    words = await admin.tap(panel, "✖️ hot dog")
    assert "hot dog" not in words["text"]
    stored = (await ChatSettings(webhook_bot.services.db.backend).get(GROUP_ID)).moderation
    assert stored.blocklist == ("кот",)
    done = await admin.reply_of(await admin.send("/unblock КОТ"))
    assert done.params["text"] == "✅ No longer blocked: кот (0 on the list)."


async def test_who_may_edit_admins_only_and_approved_members(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    member, admin = in_group(tg)
    await configure(webhook_bot, who=WhoMayEdit.ADMINS)
    sent = await photo(tg, member, "/edit a hat")
    refusal = await said(tg, member, sent, "🔒")
    assert refusal.params["text"] == "🔒 In this group only admins can ask for edits."
    spent_nothing(tg, kie)

    await configure(webhook_bot, who=WhoMayEdit.APPROVED)
    sent = await photo(tg, member, "/edit a hat")
    refusal = await said(tg, member, sent, "🔒")
    assert refusal.params["text"] == (
        "🔒 In this group only members approved by an admin can ask for edits."
    )
    spent_nothing(tg, kie)
    hello = await member.send("may I?")
    allowed = await admin.reply_of(await admin.send("/allow", reply_to=hello))
    assert allowed.params["text"] == "✅ Bob is now an approved member."
    sent = await photo(tg, member, "/edit a hat")
    await member.reply_of(sent, method="sendPhoto")
    mine = await photo(tg, admin, "/edit a crown")  # admins always may
    await admin.reply_of(mine, method="sendPhoto")
    denied = await admin.reply_of(await admin.send("/deny", reply_to=hello))
    assert denied.params["text"] == "Bob is no longer an approved member."


async def test_the_allowlist_refuses_strangers_without_spending(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    await start_bot(make_settings(ALLOWED_USER_IDS=str(USER_ID), ALLOWED_CHAT_IDS=str(GROUP_ID)))
    await tg.wait_for("setWebhook")
    stranger = Chat(tg, 5005, tg.user(5005, first_name="Eve"))
    refusal_text = (
        "🔒 Sorry, this bot is private and you don't have access to it here. "
        "Ask its operator if you need it."
    )
    sent = await photo(tg, stranger, "make it blue")
    assert (await said(tg, stranger, sent, "🔒")).params["text"] == refusal_text
    uncaptioned = tg.photo_update(5005, stranger.user, make_jpeg(200, 200))
    assert await tg.post_webhook(uncaptioned) == 200  # no prompt asked for: refused at once
    await said(tg, stranger, tg.message_of(uncaptioned), "🔒")
    elsewhere = Chat(tg, -100_999, stranger.user)
    tg.register_chat(-100_999, chat_type="supergroup")
    sent = await photo(tg, elsewhere, "/edit make it blue")
    await said(tg, elsewhere, sent, "🔒")
    spent_nothing(tg, kie)

    # In an allowed group everyone may; an allowed user anywhere; the operators too.
    sent = await photo(tg, Chat(tg, GROUP_ID, stranger.user), "/edit make it blue")
    await stranger.tg.wait_for("sendPhoto", lambda c: c.params["chat_id"] == GROUP_ID)
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    await me.reply_of(await photo(tg, me, "make it red"), method="sendPhoto")
    operator = Chat(tg, 9001, tg.user(9001))
    await operator.reply_of(await photo(tg, operator, "make it green"), method="sendPhoto")
    assert len(kie.tasks) == 3


async def test_admins_remove_results_members_cannot(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    member, admin = in_group(tg)
    sent = await photo(tg, member, "/edit a hat")
    result = tg.sent_message(await member.reply_of(sent, method="sendPhoto"))
    await webhook_bot.wait_state(EditState.DELIVERED)  # its messages are on record
    assert ("🗑 Remove (admins)", "r1:x:1") in keyboard(result)
    refusal = await member.press(result, "r1:x:1")
    assert refusal.params["show_alert"] is True
    assert refusal.params["text"] == "🔒 Only group admins can remove results."
    assert not tg.is_deleted(GROUP_ID, result["message_id"])
    removed = await admin.press(result, "r1:x:1")
    assert removed.params["text"] == "🗑 Removed."
    assert tg.is_deleted(GROUP_ID, result["message_id"])
    edit = await webhook_bot.wait_edit(lambda e: e.removed_by_name is not None)
    assert edit.removed_by_name == "Ann"

    # Two results come as an album; its buttons follow in a message, Remove takes all three.
    await ChatSettings(webhook_bot.services.db.backend).update(
        GROUP_ID, lambda p: p.with_param("num_images", 2), user_id=ADMIN_ID
    )
    sent = await photo(tg, member, "/edit two hats")
    album = await member.reply_of(sent, method="sendMediaGroup")
    photos = [m["message_id"] for m in tg.sent_messages(album)]
    buttons = tg.sent_message(await member.reply_of(tg.sent_messages(album)[0]))
    await webhook_bot.wait_state(EditState.DELIVERED, edit_id=2)
    assert ("🗑 Remove (admins)", "r1:x:2") in keyboard(buttons)
    await admin.press(buttons, "r1:x:2")
    assert all(tg.is_deleted(GROUP_ID, mid) for mid in [*photos, buttons["message_id"]])

    # /remove as a reply to a result.
    await ChatSettings(webhook_bot.services.db.backend).update(
        GROUP_ID, lambda p: p.with_param("num_images", None), user_id=ADMIN_ID
    )
    sent = await photo(tg, member, "/edit a scarf")
    result = tg.sent_message(await member.reply_of(sent, method="sendPhoto"))
    await webhook_bot.wait_state(EditState.DELIVERED, edit_id=3)
    refused = await member.reply_of(await member.send("/remove", reply_to=result))
    assert refused.params["text"] == "🔒 Only group admins can remove results."
    tg.fail("deleteMessages", 400, "Bad Request: message can't be deleted")
    no_rights = await admin.reply_of(await admin.send("/remove", reply_to=result))
    assert no_rights.params["text"].startswith("⚠️ Telegram didn't let me delete it. Make me an")
    assert not tg.is_deleted(GROUP_ID, result["message_id"])
    done = await admin.reply_of(await admin.send("/remove", reply_to=result))
    assert done.params["text"] == "🗑 Removed." and tg.is_deleted(GROUP_ID, result["message_id"])
    usage = await admin.reply_of(await admin.send("/remove", reply_to=sent))
    assert usage.params["text"] == "Reply to one of my results with /remove to delete it."
    assert (await webhook_bot.edit(3)).removed_by_name == "Ann"


async def test_modlog_and_usage(tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot) -> None:
    await tg.wait_for("setWebhook")
    member, admin = in_group(tg)
    kie.task_cost = 2.5
    await configure(webhook_bot, approval=True)
    first = await photo(tg, member, "/edit make it <b>pop</b>")
    request = tg.sent_message(await member.reply_of(first))
    await admin.press(request, "a1:y:1")
    await webhook_bot.wait_state(EditState.DELIVERED, edit_id=1)
    second = await photo(tg, member, "/edit something else")
    request = tg.sent_message(await member.reply_of(second))
    await admin.press(request, "a1:n:2")
    await webhook_bot.wait_state(EditState.REJECTED, edit_id=2)
    third = await photo(tg, member, "/edit and a third")
    await member.reply_of(third)
    await webhook_bot.wait_edit(lambda e: e.approval_message_id is not None, edit_id=3)

    refused = await member.command("/modlog")
    assert refused["text"] == "🔒 Only group admins can do this."
    log = (await admin.command("/modlog"))["text"]
    assert log.startswith("📋 Recent edit requests in Cats & Dogs")
    lines = log.split("\n")
    assert lines[2:] == [
        "#3 Bob: and a third",
        "    ⏸ waiting for an admin · ⏸ Waiting for approval",
        "#2 Bob: something else",
        "    ❌ rejected by Ann · 🚫 Rejected",
        "#1 Bob: make it <b>pop</b>",
        "    ✅ approved by Ann · ✅ Done · credits 2.5",
    ]

    usage = (await admin.command("/usage"))["text"].split("\n")
    assert usage[0] == "📊 Edits in Cats & Dogs"
    assert "Last 24 hours: edits 1 · credits 2.5" in usage
    assert "All time: edits 1 · credits 2.5" in usage
    assert "1. Bob: edits 1 · credits 2.5" in usage
    own = (await member.command("/usage"))["text"].split("\n")
    assert own[0] == "📊 Your edits in Cats & Dogs" and "Last 7 days: edits 1 · credits 2.5" in own
    assert not any(line.startswith("1. ") for line in own)
    private = Chat(tg, MEMBER_ID, member.user)
    mine = (await private.command("/usage"))["text"].split("\n")
    assert mine[0] == "📊 Your edits" and "Last 30 days: edits 1 · credits 2.5" in mine
    stranger = Chat(tg, 7007, tg.user(7007))
    assert "All time: edits 0 · credits 0" in (await stranger.command("/usage"))["text"]


async def test_the_safety_checker_locked_on_for_the_group(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    member, admin = in_group(tg)
    menu = await admin.command("/settings")
    await admin.tap(menu, "🛡 Safety checker")
    await admin.tap(menu, "Off")  # before the lock an admin may turn it off
    store = ChatSettings(webhook_bot.services.db.backend)
    assert (await store.get(GROUP_ID, fresh=True)).params == {"enable_safety_checker": False}

    panel = await admin.command("/moderation")
    await admin.tap(panel, "🛡 Safety checker locked on: Off")
    prefs = await store.get(GROUP_ID, fresh=True)
    assert prefs.moderation.safety_locked and prefs.params == {}  # the stored "off" is gone

    menu = await admin.command("/settings")
    assert "Safety checker: On 🔒" in menu["text"]
    option = await admin.tap(menu, "🛡 Safety checker")
    assert "locked the safety checker on" in option["text"]
    assert [text for text, _ in keyboard(option)] == ["✅ On", "⬅️ Back"]
    refusal = await admin.press(option, "s1:v:safe:1")  # "Off", as an old menu would send
    assert refusal.params["show_alert"] is True
    assert refusal.params["text"].startswith("🔒 The group's admins locked the safety checker on")
    assert (await store.get(GROUP_ID, fresh=True)).params == {}

    sent = await photo(tg, member, "/edit make it pop")
    await member.reply_of(sent, method="sendPhoto")
    [task] = kie.tasks.values()
    assert task.request["input"]["enable_safety_checker"] is True
