"""Repeated or oversized work is bounded, end to end: "As file" presses are throttled per
result and per user, and a provider returning far more results than asked delivers only
what the edit asked for, for every provider family."""

from __future__ import annotations

from typing import Any

import pytest

from domain.edit import EditState
from tests.conftest import CHAT_ID, USER_ID, BotStarter, SettingsFactory
from tests.fakes._common import FakeTask
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.test_e2e_poll_failures import FAMILIES, family_fake
from tests.test_e2e_providers import ready, send_photo
from tests.test_e2e_results import edited
from tests.test_e2e_settings import Chat, data_of

OPERATOR_ID = 9001  # ADMIN_IDS of the test settings


async def test_as_file_is_throttled_per_result_and_per_user(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(AS_FILE_RESULT_LIMIT="1/300", AS_FILE_USER_LIMIT="2/3600"))
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    results = []
    for n in range(3):
        _, sent = await edited(tg, me, f"make it a painting {n}", make_jpeg(200, 160))
        await bot.wait_state(EditState.DELIVERED, edit_id=n + 1)
        results.append(tg.sent_message(sent))
    first, second, third = results

    answer = await me.press(first, data_of(first, "📎 As file"))
    assert answer.params["text"] == "📎 Sending the original file…"
    await me.reply_of(first, method="sendDocument")
    again = await me.press(first, data_of(first, "📎 As file"))  # the same result, at once
    assert again.params["show_alert"] is True
    assert again.params["text"] == (
        "⏳ Original files were sent very recently. You can ask again in 5 min."
    )
    answer = await me.press(second, data_of(second, "📎 As file"))  # another result: allowed
    assert answer.params["text"] == "📎 Sending the original file…"
    await me.reply_of(second, method="sendDocument")
    over = await me.press(third, data_of(third, "📎 As file"))  # the user's third in an hour
    assert over.params["text"] == (
        "⏳ Original files were sent very recently. You can ask again in 1 h."
    )
    assert len(tg.calls_of("sendDocument")) == 2

    # Someone else pressing under the first result (in a group it could be anyone) is
    # refused too: the limit is the result's. The operators are exempt.
    other = Chat(tg, CHAT_ID, tg.user(4004))
    assert (await other.press(first, data_of(first, "📎 As file"))).params["text"].startswith("⏳")
    operator = Chat(tg, CHAT_ID, tg.user(OPERATOR_ID))
    for _ in range(3):
        answer = await operator.press(third, data_of(third, "📎 As file"))
        assert answer.params["text"] == "📎 Sending the original file…"
    await tg.wait_for("sendDocument", count=5)
    assert len(kie.tasks) == 3  # nothing was submitted again


# (family, webhook mode: results from the callback rather than a status query, images asked)
CASES = [
    ("kie-jobs", True, 2),
    ("kie-jobs", False, 1),
    ("kie-4o", False, 1),
    ("apikley", False, 1),
    ("odkkk", False, 1),
]


@pytest.mark.parametrize(("family", "webhook", "asked"), CASES)
async def test_a_provider_returning_120_results_delivers_what_was_asked(
    family: str,
    webhook: bool,
    asked: int,
    tg: FakeTelegram,
    kie: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = FAMILIES[family]
    async with family_fake(spec, kie, 200) as fake:

        def many(task: FakeTask) -> tuple[int, str]:
            return 120, "png"

        monkeypatch.setattr(fake, "result_spec", many)
        settings = make_settings() if webhook else spec.settings(make_settings, fake)
        bot = await start_bot(settings)
        await ready(bot, tg)
        if asked > 1:
            await bot.services.db.chat_settings.update(
                CHAT_ID, lambda prefs: prefs.with_param("num_images", asked), user_id=USER_ID
            )
        message = await send_photo(bot, tg, "many variants", make_jpeg(48, 48))
        edit = await bot.wait_state(EditState.DELIVERED, within=20)
        task = next(iter(fake.tasks.values()))
        assert len(task.result_urls) == 120
        if webhook:
            assert fake.callbacks and not [p for _, p in fake.requests if "ecord" in p]
        assert edit.result_urls == task.result_urls[:asked]
        method = "sendPhoto" if asked == 1 else "sendMediaGroup"

        def replies(call: Any) -> bool:
            return bool(call.params["reply_parameters"]["message_id"] == message["message_id"])

        await tg.wait_for(method, replies)
        assert tg.files_sent_to(CHAT_ID) == task.results[:asked]
        assert not tg.calls_of("sendMediaGroup" if asked == 1 else "sendPhoto")
