"""Operators manage users at runtime from a private chat, end to end: bans, the runtime
allowlist, one user's own limits, /limits and /oplog; on two replicas sharing PostgreSQL a
change made through one holds on the other at once."""

from __future__ import annotations

from typing import Any

import aiohttp

from domain.edit import EditState
from storage.user_controls import UserOverrides
from tests.conftest import CHAT_ID, USER_ID, BotStarter, RunningBot, SettingsFactory
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.pg import PostgresServer
from tests.test_e2e_low_credits import alerts, looks
from tests.test_e2e_settings import Chat

Json = dict[str, Any]
OPERATOR_ID = 9001  # ADMIN_IDS of the test settings
QUEUED = "⏳ Got it! Editing your photo…"
BANNED = "🚫 Sorry, you can't use this bot. Ask its operator if you think this is a mistake."
DENIED = (
    "🔒 Sorry, this bot is private and you don't have access to it here. "
    "Ask its operator if you need it."
)


def forwarded_from(tg: FakeTelegram, chat_id: int, user_id: int | None) -> Json:
    """A message in `chat_id` forwarded from `user_id` (None: a sender hiding their account)."""
    message = tg.message_of(tg.text_update(chat_id, tg.user(chat_id), "forwarded text"))
    if user_id is None:
        message["forward_origin"] = {"type": "hidden_user", "date": 1, "sender_user_name": "X"}
    else:
        origin = {"type": "user", "date": 1, "sender_user": tg.user(user_id, first_name="Bob")}
        message["forward_origin"] = origin
    return message


async def say(chat: Chat, text: str, *, reply_to: Json | None = None) -> str:
    """Send `text`; the bot's answer to it."""
    sent = await chat.send(text, reply_to=reply_to)
    return str(chat.tg.sent_message(await chat.reply_of(sent))["text"])  # as Telegram shows it


async def photo_answer(chat: Chat, caption: str) -> str | None:
    """Send a captioned photo: the bot's text answer, or None when the edit was delivered."""
    update = chat.tg.photo_update(chat.chat_id, chat.user, make_jpeg(96, 96), caption=caption)
    await chat.deliver(update)
    sent = chat.tg.message_of(update)

    def answered(call: Any) -> bool:
        reply = call.params.get("reply_parameters") or {}
        return bool(
            reply.get("message_id") == sent["message_id"]
            and call.params.get("chat_id") == chat.chat_id
        )

    text = str((await chat.tg.wait_for("sendMessage", answered))[0].params["text"])
    if text != QUEUED:
        return text
    await chat.tg.wait_for("sendPhoto", answered)
    return None


async def test_operators_ban_unban_and_set_a_users_limits_with_an_audit_log(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    operator = Chat(tg, OPERATOR_ID, tg.user(OPERATOR_ID))
    user = Chat(tg, CHAT_ID, tg.user(USER_ID))
    controls = webhook_bot.services.db.user_controls

    usage = await say(operator, "/botban")
    assert usage.startswith("Usage: /botban <user id> [reason]")
    assert (await say(operator, "/botban someone")).startswith("Usage: /botban")
    assert await say(operator, f"/botban {OPERATOR_ID}") == (
        "🔒 Operators (ADMIN_IDS) can't be banned."
    )
    hidden = await say(operator, "/botban", reply_to=forwarded_from(tg, OPERATOR_ID, None))
    assert hidden.startswith("❓ The sender of that message hides their account in forwards")
    assert await controls.get(OPERATOR_ID) is None

    done = await say(operator, f"/botban {USER_ID} flooding the bot")
    assert done == f"🚫 User {USER_ID} is banned from the bot everywhere."
    assert await say(operator, f"/botban {USER_ID}") == f"User {USER_ID} was already banned."
    assert await photo_answer(user, "make it night") == BANNED
    assert not kie.tasks  # nothing downloaded, uploaded or submitted

    bad = await say(operator, f"/userlimits {USER_ID} daily=many")
    assert bad.startswith("❓ I don't understand “daily=many”.\nUsage: /userlimits")
    assert (await say(operator, f"/userlimits {USER_ID} speed=3")).startswith("❓")
    assert (await say(operator, f"/userlimits {USER_ID} in_flight=-1")).startswith("❓")
    assert await controls.limits_for(USER_ID) is None
    changed = await say(operator, f"/userlimits {USER_ID} in_flight=1 daily=0 credits=12.5")
    assert changed == (
        f"✅ Limits of user {USER_ID}: in flight 1, edits per day no limit, credits per day 12.5."
    )
    assert await controls.limits_for(USER_ID) == UserOverrides(1, 0, 12.5)
    await say(operator, f"/userlimits {USER_ID} credits=default")
    assert await controls.limits_for(USER_ID) == UserOverrides(1, 0, None)
    record = await say(operator, f"/userlimits {USER_ID}")
    assert record == (
        f"User {USER_ID}: banned: yes; on the allowlist: no; limits: in flight 1, "
        "edits per day no limit."
    )

    # Unbanned by replying to a message forwarded from the user: at once, no restart.
    unbanned = await say(operator, "/botunban", reply_to=forwarded_from(tg, OPERATOR_ID, USER_ID))
    assert unbanned == f"✅ User {USER_ID} is no longer banned."
    assert await photo_answer(user, "make it day") is None
    await webhook_bot.wait_state(EditState.DELIVERED)
    await say(operator, f"/userlimits {USER_ID} reset")
    assert await controls.limits_for(USER_ID) is None

    oplog = await say(operator, "/oplog")
    lines = oplog.splitlines()
    assert lines[0] == "Operators' changes, newest first"
    actions = [line.split(" — ")[1] for line in lines[1:]]
    assert actions == [
        f"set the limits of {USER_ID} -",
        f"unbanned {USER_ID}",
        f"set the limits of {USER_ID} max_in_flight=1, daily_edits=0",
        f"set the limits of {USER_ID} max_in_flight=1, daily_edits=0, daily_credits=12.5",
        f"banned {USER_ID} flooding the bot",
    ]
    assert all(f": {OPERATOR_ID} — " in line for line in lines[1:])

    overview = (await say(operator, "/limits")).splitlines()
    assert overview[0] == "Limits and spend"
    assert "📎 As file: 1 per 5 min per result, 20 per 1 h per user" in overview
    assert "💳 Low-credit alert below: off" in overview
    assert f"Last 24 h: 1 edits sent, {kie.task_cost:g} credits" in overview
    assert f"• {USER_ID} (Alice): 1 edits, {kie.task_cost:g} credits" in overview


async def test_non_operators_cannot_use_the_operators_commands(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    stranger = Chat(tg, 5005, tg.user(5005, language_code="ru"))
    commands = ("/botban 1001", "/botunban 1001", "/botallow 5005", "/botdisallow 1001")
    for command in (*commands, "/userlimits 5005 daily=1000", "/limits", "/oplog"):
        assert await say(stranger, command) == "🔒 Эта команда — для операторов бота."
    group = -100_321
    tg.register_chat(group, chat_type="supergroup")
    in_group = Chat(tg, group, tg.user(OPERATOR_ID))
    assert await say(in_group, "/botban 1001") == (
        "🔒 Use the operators' commands in a private chat with me."
    )
    controls = webhook_bot.services.db.user_controls
    assert await controls.listed() == [] and await controls.log() == []


async def post_to(bot: RunningBot, update: Json) -> None:
    """Deliver an update to one replica's webhook, as a load balancer would."""
    headers = {"X-Telegram-Bot-Api-Secret-Token": bot.settings.resolved_webhook_secret}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{bot.url}/telegram", json=update, headers=headers) as response,
    ):
        assert response.status == 200


class ReplicaChat(Chat):
    """A chat whose updates go to the replica named before each send."""

    replica: RunningBot

    async def deliver(self, update: Json) -> None:
        await post_to(self.replica, update)


async def test_runtime_ban_and_allow_hold_at_once_on_both_replicas(
    tg: FakeTelegram,
    kie: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
    postgres: PostgresServer,
) -> None:
    database_url = postgres.new_database()
    replicas = [
        await start_bot(
            make_settings(
                DATABASE_URL=database_url,
                ALLOWED_USER_IDS="4242",
                LOW_CREDITS_ALERT="10",
                CREDITS_CHECK_INTERVAL="0.05",
            )
        )
        for _ in range(2)
    ]
    await tg.wait_for("setWebhook", count=2)
    first, second = replicas
    operator = ReplicaChat(tg, OPERATOR_ID, tg.user(OPERATOR_ID))
    user = ReplicaChat(tg, CHAT_ID, tg.user(USER_ID))

    user.replica = second
    assert await photo_answer(user, "before") == DENIED
    operator.replica = first
    allowed = await say(operator, f"/botallow {USER_ID}")
    assert allowed == f"✅ User {USER_ID} is on the allowlist."  # access is closed: no note
    assert await photo_answer(user, "allowed on the other replica") is None
    assert len(kie.tasks) == 1

    operator.replica = second
    assert await say(operator, f"/botban {USER_ID}") == (
        f"🚫 User {USER_ID} is banned from the bot everywhere."
    )
    user.replica = first
    assert await photo_answer(user, "banned on the other replica") == BANNED
    operator.replica = first
    await say(operator, f"/botunban {USER_ID}")
    await say(operator, f"/botdisallow {USER_ID}")
    user.replica = second
    assert await photo_answer(user, "off the allowlist") == DENIED
    assert len(kie.tasks) == 1
    entries = await second.services.db.user_controls.log()
    assert [entry.action for entry in entries] == ["disallow", "unban", "ban", "allow"]

    # Both replicas look at the credit balance: one alert between them for one incident.
    kie.credits = 5
    await tg.wait_for("sendMessage", lambda c: c in alerts(tg))
    await looks(kie, 6)
    assert len(alerts(tg)) == 1


async def test_a_users_own_limits_set_by_an_operator_are_enforced_at_once(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    """The test settings switch the per-user limits off; /userlimits turns one user's on."""
    await tg.wait_for("setWebhook")
    operator = Chat(tg, OPERATOR_ID, tg.user(OPERATOR_ID))
    user = Chat(tg, CHAT_ID, tg.user(USER_ID))
    other = Chat(tg, CHAT_ID + 1, tg.user(USER_ID + 1))
    await say(operator, f"/userlimits {USER_ID} daily=1")

    assert await photo_answer(user, "make it day") is None
    refused = await photo_answer(user, "make it night")
    assert refused is not None and refused.startswith(
        "⏳ You've reached the limit of 1 edits per day. Try again in"
    )
    assert len(kie.tasks) == 1  # nothing was submitted for the refused request
    assert await photo_answer(other, "make it night") is None  # others are unaffected

    await say(operator, f"/userlimits {USER_ID} reset")
    assert await photo_answer(user, "make it dusk") is None
    assert len(kie.tasks) == 3

    overview = (await say(operator, "/limits")).splitlines()
    assert (
        "👤 Per user (operators exempt): in flight no limit, edits per day no limit, "
        "credits per day no limit"
    ) in overview
    assert "🧾 Spend caps: today (UTC) off; this month off" in overview  # none configured
