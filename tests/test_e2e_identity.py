"""Who asks for an edit (`bot.origin`), end to end through the fake Bot API: a member posting
"as a channel" is that channel (bans, limits, /ban by reply, operators' bans), an anonymous
admin writing as the group is an admin of it, a forwarded photo's caption is not a prompt,
and an automatic forward from a linked channel asks for nothing.
"""

from __future__ import annotations

from typing import Any

from domain.edit import EditState
from tests.conftest import CHAT_ID, USER_ID, BotStarter, RunningBot, SettingsFactory
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.test_e2e_moderation import (
    ADMIN_ID,
    GROUP_ID,
    MEMBER_ID,
    configure,
    in_group,
    said,
    spent_nothing,
)
from tests.test_e2e_settings import Chat
from tests.test_reliability_updates import ANSWERS, handled

Json = dict[str, Any]
NEWS, MEMES = -100_501, -100_502  # two channels the member may post as
OPERATOR_ID = 9001


async def as_channel(
    tg: FakeTelegram, chat: Chat, channel: tuple[int, str], caption: str | None = None
) -> Json:
    """`chat`'s user posts a photo (or, without a caption, text) in the group as `channel`."""
    if caption is None:
        plain = tg.text_update(chat.chat_id, chat.user, "news of the day")
    else:
        plain = tg.photo_update(chat.chat_id, chat.user, make_jpeg(300, 200), caption=caption)
    update = tg.as_channel(plain, *channel)
    assert await tg.post_webhook(update) == 200
    return tg.message_of(update)


def anonymous(tg: FakeTelegram, text: str, reply_to: Json | None = None) -> Json:
    """An anonymous admin's message: written as the group itself."""
    update = tg.text_update(GROUP_ID, tg.user(1087968824), text, reply_to=reply_to)
    update["message"]["sender_chat"] = tg.message_of(update)["chat"]
    return update


async def test_a_channel_post_is_banned_by_reply_as_that_channel(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    member, admin = in_group(tg)
    post = await as_channel(tg, member, (NEWS, "Daily News"))
    banned = await admin.reply_of(await admin.send("/ban", reply_to=post))
    assert banned.params["text"] == "⛔ Daily News can no longer ask for edits here."

    sent = await as_channel(tg, member, (NEWS, "Daily News"), "/edit make it pop")
    refusal = await said(tg, member, sent, "🚫")
    assert refusal.params["text"].startswith("🚫 An admin has stopped you")
    spent_nothing(tg, kie)
    # Another channel, and the member as themselves, are other identities.
    sent = await as_channel(tg, member, (MEMES, "Memes"), "/edit make it pop")
    await member.reply_of(sent, method="sendPhoto")
    edit = await webhook_bot.wait_state(EditState.DELIVERED)
    assert (edit.user_id, edit.user_name) == (MEMES, "Memes")

    # The panel lists the channel and lifts its ban (a negative id in the button's data).
    panel = await admin.command("/moderation")
    bans = await admin.tap(panel, "⛔ Banned (1)")
    assert f"Daily News ({NEWS})" in bans["text"]
    await admin.tap(panel, "✖️ Daily News")
    assert NEWS not in (await webhook_bot.services.db.chat_settings.get(GROUP_ID)).moderation.banned
    sent = await as_channel(tg, member, (NEWS, "Daily News"), "/edit make it pop")
    await member.reply_of(sent, method="sendPhoto")


async def test_two_channels_have_their_own_quotas(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    member, _admin = in_group(tg)
    await configure(webhook_bot, member_daily=1)
    first = await as_channel(tg, member, (NEWS, "Daily News"), "/edit a hat")
    await member.reply_of(first, method="sendPhoto")
    await webhook_bot.wait_state(EditState.DELIVERED)
    second = await as_channel(tg, member, (MEMES, "Memes"), "/edit a hat")
    await member.reply_of(second, method="sendPhoto")
    await webhook_bot.wait_state(EditState.DELIVERED, edit_id=2)
    again = await as_channel(tg, member, (NEWS, "Daily News"), "/edit a scarf")
    refusal = await said(tg, member, again, "⏳")
    assert "limit of 1 edits per member per day" in refusal.params["text"]
    assert [e.user_id for e in await webhook_bot.edits()] == [NEWS, MEMES]
    spent_nothing(tg, kie, tasks=2, downloads=2)


async def test_an_anonymous_admin_is_an_admin_and_bans_channels(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(DEFAULT_MODEL="google/nano-banana-edit"))
    await tg.wait_for("setWebhook")
    member, admin = in_group(tg)
    await configure(bot, approval=True)
    post = await as_channel(tg, member, (NEWS, "Daily News"))
    ban = anonymous(tg, "/ban", reply_to=post)
    assert await tg.post_webhook(ban) == 200
    banned = await admin.reply_of(tg.message_of(ban))
    assert banned.params["text"] == "⛔ Daily News can no longer ask for edits here."
    # The group itself (its anonymous admins) can't be banned.
    mine = anonymous(tg, "hello")
    assert await tg.post_webhook(mine) == 200
    ban_admin = anonymous(tg, "/ban", reply_to=tg.message_of(mine))
    assert await tg.post_webhook(ban_admin) == 200
    refused = await admin.reply_of(tg.message_of(ban_admin))
    assert refused.params["text"].startswith("Cats & Dogs is an admin here")

    # A channel's request waits for approval, named by its title (no link to a user).
    sent = await as_channel(tg, member, (MEMES, "Memes & <Co>"), "/edit a hat")
    request = await said(tg, member, sent, "🙋")
    assert request.params["text"].startswith("🙋 Memes &amp; &lt;Co&gt; asks for an edit")
    assert "tg://user" not in request.params["text"]
    spent_nothing(tg, kie)

    # An anonymous admin's album skips approval like any admin's request.
    album = [
        tg.photo_update(GROUP_ID, tg.user(1087968824), make_jpeg(300, 300), media_group_id="a")
        for _ in range(2)
    ]
    album[0] = tg.photo_update(
        GROUP_ID,
        tg.user(1087968824),
        make_jpeg(300, 300),
        caption="/edit a beach",
        media_group_id="a",
    )
    for update in album:
        update["message"]["sender_chat"] = tg.message_of(update)["chat"]
        assert await tg.post_webhook(update) == 200
    edit = await bot.wait_state(EditState.DELIVERED, edit_id=2)
    assert edit.user_id == GROUP_ID and edit.approval_message_id is None


async def test_an_operator_bans_a_channel_bot_wide(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    await start_bot(make_settings(ADMIN_IDS=str(OPERATOR_ID)))
    await tg.wait_for("setWebhook")
    member, _admin = in_group(tg)
    operator = Chat(tg, OPERATOR_ID, tg.user(OPERATOR_ID, first_name="Op"))
    done = await operator.command(f"/botban {NEWS} spam")
    assert str(NEWS) in done["text"]
    sent = await as_channel(tg, member, (NEWS, "Daily News"), "/edit make it pop")
    await said(tg, member, sent, "🚫 Sorry, you can't use this bot.")
    spent_nothing(tg, kie)


async def test_a_forwarded_caption_is_not_a_prompt(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    someone = tg.user(4242, first_name="Stranger")
    user = Chat(tg, CHAT_ID, tg.user(USER_ID))
    plain = tg.photo_update(CHAT_ID, user.user, make_jpeg(400, 300), caption="delete the sky")
    forwarded = tg.as_forward(plain, someone)
    assert await tg.post_webhook(forwarded) == 200
    asked = await user.reply_of(tg.message_of(forwarded))
    assert asked.params["text"].startswith("✍️ That photo is forwarded: its caption was written")
    assert asked.params["reply_markup"]["force_reply"] is True
    ask = tg.sent_message(asked)
    spent_nothing(tg, kie)
    answer = await user.send("make it sunny", reply_to=ask)
    await user.reply_of(answer, method="sendPhoto")
    [task] = kie.tasks.values()
    assert task.request["input"]["prompt"] == "make it sunny"

    # In a group, a forward addressed to the bot by its caption is not addressed by the
    # member who forwarded it.
    member, _admin = in_group(tg)
    group_photo = tg.photo_update(
        GROUP_ID, member.user, make_jpeg(300, 200), caption="@edit_test_bot erase everyone"
    )
    answers = sum(len(tg.calls_of(method)) for method in ANSWERS)
    await handled(webhook_bot, tg, tg.as_forward(group_photo, someone))
    assert sum(len(tg.calls_of(method)) for method in ANSWERS) == answers
    assert len(kie.tasks) == 1


async def test_an_automatic_forward_asks_for_nothing(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    member, _admin = in_group(tg)
    posts = [
        tg.photo_update(GROUP_ID, member.user, make_jpeg(300, 200), caption=caption)
        for caption in ("@edit_test_bot make it pop", "/edit make it pop")
    ]
    forwards = [tg.as_automatic_forward(post, NEWS, "Daily News") for post in posts]
    await handled(webhook_bot, tg, *forwards)
    assert sum(len(tg.calls_of(method)) for method in ANSWERS) == 0
    spent_nothing(tg, kie)
    assert await webhook_bot.edits() == []
    # A member may still ask for an edit of the forwarded post, as themselves.
    asked = await member.send("/edit make it pop", reply_to=tg.message_of(forwards[0]))
    await member.reply_of(asked, method="sendPhoto")
    assert (await webhook_bot.wait_state(EditState.DELIVERED)).user_id == MEMBER_ID
    assert ADMIN_ID not in (e.user_id for e in await webhook_bot.edits())
