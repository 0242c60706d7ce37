"""Settings through inline keyboards, commands and languages, end to end through the fake Bot API.

Buttons are pressed with callback_query updates built from the menu message the bot really
sent (its current state in the fake, after every in-place edit); what the press changed is
checked in the database and in the next task the fake KIE received.
"""

from __future__ import annotations

from typing import Any

from domain.edit import EditState
from storage.chat_settings import ChatPrefs, ChatSettings
from tests.conftest import CHAT_ID, USER_ID, BotStarter, RunningBot, SettingsFactory
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram_server import ApiCall

Json = dict[str, Any]
GROUP_ID = -100_555
MEMBER_ID = 2002
ADMIN_ID = 2003
ANONYMOUS_ADMIN_BOT = 1087968824  # Telegram's GroupAnonymousBot


def keyboard(message: Json) -> list[tuple[str, str]]:
    """(text, callback_data) of every inline button of a message."""
    markup = message.get("reply_markup") or {}
    return [
        (button["text"], button["callback_data"])
        for row in markup.get("inline_keyboard", [])
        for button in row
        if "callback_data" in button
    ]


def data_of(message: Json, label: str) -> str:
    """The callback data of the button whose text is `label` (ignoring a ✅ mark)."""
    found = [data for text, data in keyboard(message) if text.removeprefix("✅ ") == label]
    assert len(found) == 1, f"no single button {label!r} in {keyboard(message)}"
    return found[0]


class Chat:
    """One user talking to the bot in one chat, pressing buttons like Telegram would."""

    def __init__(
        self,
        tg: FakeTelegram,
        chat_id: int,
        user: Json,
        *,
        chat_type: str | None = None,
        polling: bool = False,
        thread_id: int | None = None,
    ) -> None:
        self.tg = tg
        self.chat_id = chat_id
        self.user = user
        self.chat_type = chat_type
        self.polling = polling
        self.thread_id = thread_id  # writing in this forum topic

    async def deliver(self, update: Json) -> None:
        """Hand an update to the bot the way Telegram would in its mode."""
        if self.polling:
            self.tg.push_update(update)
        else:
            assert await self.tg.post_webhook(update) == 200

    async def send(self, text: str, *, reply_to: Json | None = None) -> Json:
        update = self.tg.text_update(
            self.chat_id,
            self.user,
            text,
            reply_to=reply_to,
            chat_type=self.chat_type,
            thread_id=self.thread_id,
        )
        await self.deliver(update)
        return self.tg.message_of(update)

    async def reply_of(self, message: Json, *, method: str = "sendMessage") -> ApiCall:
        """The bot's reply to one of our messages."""

        def replies(call: ApiCall) -> bool:
            reply = call.params.get("reply_parameters") or {}
            return bool(
                reply.get("message_id") == message["message_id"]
                and call.params.get("chat_id") == self.chat_id
            )

        return (await self.tg.wait_for(method, replies))[0]

    async def command(self, text: str) -> Json:
        """Send a command; return the bot's answer message."""
        sent = await self.send(text)
        return self.tg.sent_message(await self.reply_of(sent))

    async def press(self, message: Json, data: str) -> ApiCall:
        """Press a button of `message`; return the answerCallbackQuery of this press."""
        current = self.tg.message(self.chat_id, message["message_id"]) or message
        update = self.tg.callback_query_update(self.user, current, data)
        query_id = update["callback_query"]["id"]
        await self.deliver(update)
        answers = await self.tg.wait_for(
            "answerCallbackQuery", lambda c: c.params["callback_query_id"] == query_id
        )
        assert len(answers) == 1 and answers[0].ok
        return answers[0]

    async def tap(self, menu: Json, label: str) -> Json:
        """Press the button labelled `label` in the menu's current state; return the new state."""
        current = self.menu(menu)
        await self.press(current, data_of(current, label))
        return self.menu(menu)

    def menu(self, menu: Json) -> Json:
        current = self.tg.message(self.chat_id, menu["message_id"])
        assert current is not None
        return current

    async def type_answer(self, question: ApiCall, text: str) -> ApiCall:
        """Answer the bot's ForceReply question; return the bot's confirmation."""
        asked = self.tg.sent_message(question)
        answer = await self.send(text, reply_to=asked)
        return await self.reply_of(answer)


def force_reply(call: ApiCall) -> bool:
    markup = call.params.get("reply_markup") or {}
    return bool(markup.get("force_reply"))


async def stored(bot: RunningBot, chat_id: int) -> ChatPrefs:
    """The settings as the database has them (a fresh store: no cache)."""
    return await ChatSettings(bot.services.db.backend).get(chat_id)


async def photo(tg: FakeTelegram, chat: Chat, caption: str, *, image: bytes | None = None) -> Json:
    update = tg.photo_update(
        chat.chat_id,
        chat.user,
        image or make_jpeg(800, 600),
        caption=caption,
        chat_type=chat.chat_type,
    )
    assert await tg.post_webhook(update) == 200
    return tg.message_of(update)


async def test_settings_menu_changes_the_next_task(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    menu = await me.command("/settings")
    assert "Model: Qwen Image Edit" in menu["text"]
    assert "Output size: Auto (from the photo)" in menu["text"]
    assert "Seed: Random" in menu["text"]

    state = await me.tap(menu, "🖼 Images")
    assert "How many variants" in state["text"]
    state = await me.tap(menu, "2")
    assert "Now: 2" in state["text"] and ("✅ 2", data_of(state, "2")) in keyboard(state)
    state = await me.tap(menu, "⬅️ Back")
    assert "Images: 2" in state["text"]
    await me.tap(menu, "🗂 Format")
    await me.tap(menu, "jpeg")
    await me.tap(menu, "⬅️ Back")
    # Pressing the value that is already chosen changes nothing and is still answered.
    await me.tap(menu, "🗂 Format")
    await me.tap(menu, "jpeg")
    await me.tap(menu, "⬅️ Back")

    await me.tap(menu, "🎲 Seed")
    await me.tap(menu, "📌 Fixed: enter a number")
    question = (await tg.wait_for("sendMessage", force_reply))[-1]
    assert "whole number from 0 to 2147483647" in question.params["text"]
    bad = await me.type_answer(question, "forty-two")
    assert "must be a whole number" in bad.params["text"] and force_reply(bad)
    confirmed = await me.type_answer(bad, "42")
    assert confirmed.params["text"] == "✅ 🎲 Seed: 42"
    assert "Now: 42" in me.menu(menu)["text"]  # the menu was refreshed in place
    await me.tap(menu, "⬅️ Back")

    await me.tap(menu, "🚫 Negative prompt")
    await me.tap(menu, "✍️ Enter text")
    question = (await tg.wait_for("sendMessage", force_reply, count=3))[-1]
    confirmed = await me.type_answer(question, "blurry,   low quality")
    assert confirmed.params["text"] == "✅ 🚫 Negative prompt: blurry, low quality"

    prefs = await stored(webhook_bot, CHAT_ID)
    assert dict(prefs.params) == {
        "num_images": 2,
        "output_format": "jpeg",
        "seed": 42,
        "negative_prompt": "blurry, low quality",
    }
    # Every press was answered exactly once; the menu was always edited in place.
    assert all(call.ok for call in tg.calls_of("answerCallbackQuery"))
    assert {c.params["message_id"] for c in tg.calls_of("editMessageText")} == {menu["message_id"]}
    assert not kie.tasks  # the typed answers were settings, not prompts

    sent = await photo(tg, me, "make the sky purple")
    group = await me.reply_of(sent, method="sendMediaGroup")
    assert len(group.params["media"]) == 2
    task = next(iter(kie.tasks.values()))
    assert task.request["input"] == {
        "prompt": "make the sky purple",
        "image_url": task.request["input"]["image_url"],
        "num_images": "2",
        "output_format": "jpeg",
        "seed": 42,
        "negative_prompt": "blurry, low quality",
        "image_size": "landscape_4_3",  # still chosen from the photo's shape
    }
    # Media groups cannot carry buttons: they follow in a message of their own.
    first = tg.sent_messages(group)[0]
    buttons = await me.reply_of(first)
    assert [data for _, data in keyboard(tg.sent_message(buttons))] == ["r1:a:1", "r1:f:1"]
    await webhook_bot.wait_state(EditState.DELIVERED)


async def test_switching_model_drops_unsupported_settings(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    menu = await me.command("/settings")
    for option, value in (("🖼 Images", "3"), ("🗂 Format", "png"), ("🔁 Steps", "40")):
        await me.tap(menu, option)
        await me.tap(menu, value)
        await me.tap(menu, "⬅️ Back")
    assert dict((await stored(webhook_bot, CHAT_ID)).params) == {
        "num_images": 3,
        "output_format": "png",
        "num_inference_steps": 40,
    }

    models = await me.command("/model")  # the quick switch
    labels = [text.removeprefix("✅ ") for text, _ in keyboard(models)]
    assert "Qwen Image Edit · kie" in labels and "Nano Banana Edit · kie" in labels
    assert "✅ Qwen Image Edit · kie" in [text for text, _ in keyboard(models)]
    models = await me.tap(models, "Nano Banana Edit · kie")
    assert "✅ Nano Banana Edit · kie" in [text for text, _ in keyboard(models)]
    prefs = await stored(webhook_bot, CHAT_ID)
    assert prefs.model == "google/nano-banana-edit"
    assert dict(prefs.params) == {"output_format": "png"}

    home = await me.tap(models, "⚙️ All settings")
    labels = [text for text, _ in keyboard(home)]
    assert "📐 Aspect ratio" in labels and "🗂 Format" in labels
    assert "🖼 Images" not in labels and "🔁 Steps" not in labels

    sent = await photo(tg, me, "a beach")
    await me.reply_of(sent, method="sendPhoto")
    task = next(iter(kie.tasks.values()))
    assert task.model == "google/nano-banana-edit"
    assert task.request["input"]["output_format"] == "png"
    assert "num_images" not in task.request["input"]
    assert "num_inference_steps" not in task.request["input"]


async def test_only_group_admins_change_group_settings(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    tg.register_chat(GROUP_ID, chat_type="supergroup", title="Cats & Dogs")
    tg.set_chat_member(GROUP_ID, ADMIN_ID, "administrator")
    member = Chat(tg, GROUP_ID, tg.user(MEMBER_ID, first_name="Bob"))
    admin = Chat(tg, GROUP_ID, tg.user(ADMIN_ID, first_name="Ann"))

    menu = await member.command("/settings@edit_test_bot")
    assert "Settings of Cats &amp; Dogs" not in menu["text"]  # entities parsed: plain text
    assert "Settings of Cats & Dogs" in menu["text"]
    assert "Only group admins can change them." in menu["text"]
    edits_before = len(tg.calls_of("editMessageText"))

    refusal = await member.press(menu, data_of(menu, "📎 Send as files: Off"))
    assert refusal.params["show_alert"] is True
    assert refusal.params["text"] == "🔒 Only group admins can change the group's settings."
    refusal = await member.press(menu, data_of(menu, "🖼 Images"))
    assert refusal.params["show_alert"] is True
    assert len(tg.calls_of("editMessageText")) == edits_before  # the menu did not change
    assert await stored(webhook_bot, GROUP_ID) == ChatPrefs()
    members = [c for c in tg.calls_of("getChatMember") if c.params["user_id"] == MEMBER_ID]
    assert len(members) == 1  # the answer is cached

    state = await admin.tap(menu, "📎 Send as files: Off")
    assert "Send as files: On" in state["text"]
    assert (await stored(webhook_bot, GROUP_ID)).send_as_file is True
    assert (await stored(webhook_bot, MEMBER_ID)) == ChatPrefs()  # not the users' own settings

    # A negative prompt asked from the admin and answered by an anonymous admin (as the group).
    await admin.tap(menu, "🚫 Negative prompt")
    await admin.tap(menu, "✍️ Enter text")
    question = (await tg.wait_for("sendMessage", force_reply))[-1]
    assert question.params["reply_markup"]["selective"] is True
    mention = tg.sent_message(question)["entities"][0]  # Ann is asked, by name
    assert mention.get("url") == f"tg://user?id={ADMIN_ID}" or mention["type"] == "text_mention"
    asked = tg.sent_message(question)
    # A plain member answering the question sets nothing.
    refused = await member.reply_of(await member.send("no dogs", reply_to=asked))
    assert refused.params["text"] == "🔒 Only group admins can change the group's settings."
    assert await stored(webhook_bot, GROUP_ID) == ChatPrefs(send_as_file=True)
    anonymous = tg.text_update(GROUP_ID, tg.user(ANONYMOUS_ADMIN_BOT), "no cats", reply_to=asked)
    anonymous["message"]["sender_chat"] = tg.message_of(anonymous)["chat"]
    assert await tg.post_webhook(anonymous) == 200
    confirmation = await admin.reply_of(tg.message_of(anonymous))
    assert confirmation.params["text"] == "✅ 🚫 Negative prompt: no cats"
    assert await stored(webhook_bot, GROUP_ID) == ChatPrefs(
        send_as_file=True, params={"negative_prompt": "no cats"}
    )

    # The group's settings apply to a member's edit in the group.
    sent = await photo(tg, member, "/edit make it pop")
    document = await member.reply_of(sent, method="sendDocument")
    assert document.ok
    task = next(iter(kie.tasks.values()))
    assert task.request["input"]["negative_prompt"] == "no cats"


async def test_language_from_telegram_and_overridden_in_settings(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    russian = Chat(tg, 3003, tg.user(3003, language_code="ru-RU"))
    assert (await russian.command("/help"))["text"].startswith("Как отредактировать фото")

    me = Chat(tg, CHAT_ID, tg.user(USER_ID, language_code="en"))
    assert (await me.command("/help"))["text"].startswith("How to edit a photo")
    menu = await me.command("/settings")
    await me.tap(menu, "🌐 Language")
    state = await me.tap(menu, "Русский")
    assert state["text"].startswith("⚙️ Настройки")  # the menu speaks the new language at once
    assert "Язык: Русский" in state["text"]
    assert (await stored(webhook_bot, CHAT_ID)).lang == "ru"
    assert (await me.command("/help"))["text"].startswith("Как отредактировать фото")

    sent = await photo(tg, me, "make it blue")
    status = await me.reply_of(sent)
    assert status.params["text"] == "⏳ Принято! Редактирую фото…"
    result = await me.reply_of(sent, method="sendPhoto")
    assert result.params["caption"].startswith("✨ Готово!")
    assert [text for text, _ in keyboard(tg.sent_message(result))] == ["🔁 Ещё раз", "📎 Файлом"]

    await me.tap(menu, "🌐 Язык")
    state = await me.tap(menu, "Как в Telegram")
    assert state["text"].startswith("⚙️ Settings")
    assert (await stored(webhook_bot, CHAT_ID)).lang is None


async def test_commands_are_published_per_language_and_for_group_admins(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")  # the commands are set before the webhook

    def names(commands: list[Json]) -> list[str]:
        return [command["command"] for command in commands]

    everyone = tg.commands()
    assert names(everyone) == [
        "start",
        "help",
        "settings",
        "model",
        "edit",
        "imagine",
        "history",
        "cancel",
        "usage",
    ]
    assert everyone[5]["description"] == "Draw an image: /imagine <prompt>"
    assert everyone[2]["description"] == "Model, size, format and other settings"
    assert tg.commands(scope={"type": "all_private_chats"}) == everyone
    russian = tg.commands(language_code="ru")
    assert names(russian) == names(everyone)
    assert russian[2]["description"] == "Модель, размер, формат и другие настройки"
    members = tg.commands(scope={"type": "all_group_chats"})
    assert names(members) == ["edit", "imagine", "history", "cancel", "help"]
    admins = tg.commands(scope={"type": "all_chat_administrators"})
    moderation = ["moderation", "modlog", "usage", "allow", "deny", "ban", "unban", "block"]
    assert names(admins) == [*names(members), "settings", "model", *moderation, "unblock", "remove"]
    admins_ru = tg.commands(scope={"type": "all_chat_administrators"}, language_code="ru")
    assert admins_ru[1]["description"] == "Нарисовать изображение: /imagine <запрос>"
    assert admins_ru[6]["description"] == "Сменить модель"
    assert admins_ru[7]["description"].startswith("Модерация")
    assert all(call.ok for call in tg.calls_of("setMyCommands"))
    languages = 1 + len(webhook_bot.services.translator.command_languages())
    assert len(tg.calls_of("setMyCommands")) == 4 * languages


async def test_stale_and_unknown_buttons_are_answered_politely(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    menu = await me.command("/settings")
    for data in ("s1:zzz", "s1:v:n:99", "s1:m:0000000000", "s9:home", "whatever"):
        answer = await me.press(menu, data)
        assert answer.params["text"] == "This button is no longer valid."
    # An option the current model does not take (aspect ratio is not Qwen's): menu redrawn.
    answer = await me.press(menu, "s1:o:ar")
    assert answer.params["text"] == "This button is no longer valid."
    assert await stored(webhook_bot, CHAT_ID) == ChatPrefs()

    await me.tap(menu, "♻️ Reset to defaults")
    closed = await me.tap(menu, "✖️ Close")
    assert closed["text"].startswith("⚙️ Settings saved.") and "reply_markup" not in closed


async def test_reset_keeps_the_language(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings())
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    menu = await me.command("/settings")
    await me.tap(menu, "📎 Send as files: Off")
    await me.tap(menu, "🌐 Language")
    await me.tap(menu, "Русский")
    await me.tap(menu, "🖼 Изображений")
    await me.tap(menu, "4")
    await me.tap(menu, "⬅️ Назад")
    assert await stored(bot, CHAT_ID) == ChatPrefs(
        lang="ru", send_as_file=True, params={"num_images": 4}
    )
    state = await me.tap(menu, "♻️ Сбросить")
    assert "Изображений: 1" in state["text"]
    assert await stored(bot, CHAT_ID) == ChatPrefs(lang="ru")


async def test_settings_work_in_polling_mode_too(
    tg: FakeTelegram, kie: FakeKie, polling_bot: RunningBot
) -> None:
    await tg.wait_until_polling()
    me = Chat(tg, CHAT_ID, tg.user(USER_ID), polling=True)
    menu = await me.command("/settings")
    await me.tap(menu, "⚡ Acceleration")
    state = await me.tap(menu, "High")
    assert "Now: High" in state["text"]
    assert await stored(polling_bot, CHAT_ID) == ChatPrefs(params={"acceleration": "high"})
    update = tg.photo_update(CHAT_ID, me.user, make_jpeg(300, 400), caption="sharper")
    tg.push_update(update)
    await me.reply_of(tg.message_of(update), method="sendPhoto")
    task = next(iter(kie.tasks.values()))
    assert task.request["input"]["acceleration"] == "high"


async def test_a_question_answered_without_reply_and_a_newer_prompt_question(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    menu = await me.command("/settings")
    await me.tap(menu, "🚫 Negative prompt")
    await me.tap(menu, "✍️ Enter text")
    typed = await me.send("blurry")  # not a reply: the next text answers the question
    assert (await me.reply_of(typed)).params["text"] == "✅ 🚫 Negative prompt: blurry"

    await me.tap(menu, "✍️ Enter text")  # asked again, but then a photo without caption…
    update = tg.photo_update(CHAT_ID, me.user, make_jpeg(400, 300))
    await me.deliver(update)
    ask = await me.reply_of(tg.message_of(update))
    assert ask.params["text"].startswith("✍️ What should I change?")
    prompt = await me.send("make it red")  # …so this text is the photo's prompt
    await me.reply_of(prompt, method="sendPhoto")
    task = next(iter(kie.tasks.values()))
    assert task.request["input"]["prompt"] == "make it red"
    assert task.request["input"]["negative_prompt"] == "blurry"
    assert (await stored(webhook_bot, CHAT_ID)).params == {"negative_prompt": "blurry"}
