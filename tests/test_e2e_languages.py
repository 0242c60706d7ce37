"""Every language end to end through the fake Bot API: chosen in /settings, taken from the
user's Telegram language, and each one's command menu published under its two-letter code."""

from __future__ import annotations

import re
from typing import Any

from bot.i18n import DEFAULT_LANG
from tests.conftest import CHAT_ID, USER_ID, RunningBot
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.test_e2e_settings import Chat, keyboard, stored

Json = dict[str, Any]
LANGUAGES = ["en", "ru", "es", "pt_BR", "id", "tr", "uk", "fa", "ar", "de", "hi", "uz"]


def first_line(html: str) -> str:
    """The first line of a catalog text as Telegram shows it (tags gone)."""
    return re.sub(r"<[^>]+>", "", html).split("\n")[0]


async def test_every_language_is_chosen_in_settings(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    translator = webhook_bot.services.translator
    assert set(translator.languages) >= set(LANGUAGES)
    me = Chat(tg, CHAT_ID, tg.user(USER_ID, language_code="en"))
    menu = await me.command("/settings")
    speaking = DEFAULT_LANG
    for lang in [*(code for code in translator.languages if code != DEFAULT_LANG), DEFAULT_LANG]:
        listed = await me.tap(menu, translator.tr(speaking, "settings.opt.lang"))
        rows = listed["reply_markup"]["inline_keyboard"]
        # "From Telegram" alone, then every language in its own name, two to a row, then Back.
        assert len(rows[0]) == 1 and rows[0][0]["callback_data"] == "s1:l:auto"
        names = [button["text"].removeprefix("✅ ") for row in rows[1:-1] for button in row]
        assert names == [translator.tr(code, "lang.name") for code in translator.languages]
        assert all(len(row) <= 2 for row in rows[1:-1])

        state = await me.tap(menu, translator.tr(lang, "lang.name"))
        assert state["text"].startswith(first_line(translator.tr(lang, "settings.title.private")))
        assert (await stored(webhook_bot, CHAT_ID)).lang == lang
        help_text = (await me.command("/help"))["text"]
        assert help_text.startswith(first_line(translator.tr(lang, "help.text")))
        speaking = lang


async def test_the_telegram_language_picks_the_catalog(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    translator = webhook_bot.services.translator
    for user_id, code, lang in [
        (4001, "pt-br", "pt_BR"),
        (4002, "uk", "uk"),
        (4003, "ar", "ar"),
        (4004, "zz", "en"),
    ]:
        chat = Chat(tg, user_id, tg.user(user_id, language_code=code))
        answer = await chat.command("/settings")
        assert answer["text"].startswith(first_line(translator.tr(lang, "settings.title.private")))
        labels = [text for text, _ in keyboard(answer)]
        assert translator.tr(lang, "settings.opt.lang") in labels


async def test_every_language_gets_its_command_menu(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")  # the commands are set before the webhook
    translator = webhook_bot.services.translator
    codes = {"ru": "ru", "pt": "pt_BR", "id": "id", "tr": "tr", "uk": "uk", "fa": "fa"}
    codes |= {"ar": "ar", "de": "de", "hi": "hi", "uz": "uz", "es": "es", "": "en"}
    for code, lang in codes.items():
        for scope in (None, {"type": "all_private_chats"}, {"type": "all_chat_administrators"}):
            menu = tg.commands(scope=scope, language_code=code)
            settings = next(command for command in menu if command["command"] == "settings")
            assert settings["description"] == translator.tr(lang, "command.settings")
    calls = tg.calls_of("setMyCommands")
    assert all(call.ok for call in calls)
    assert {call.params.get("language_code") for call in calls} == (set(codes) - {""}) | {None}
