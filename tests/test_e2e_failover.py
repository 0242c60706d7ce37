"""Provider failover (FAILOVER): a refusal that proves no task exists moves the edit to the
same model on the next provider; anything that may have created a task never does."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from domain.edit import EditState
from tests.conftest import BotStarter, RunningBot, SettingsFactory
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.test_e2e_providers import (
    ADMIN_ID,
    APIKLEY_KEY,
    creates,
    expect_edit_delivered,
    expect_failure_text,
    ready,
)

JOBS_CREATE = "/api/v1/jobs/createTask"


@pytest.fixture
async def apikley() -> AsyncIterator[FakeKie]:
    async with FakeKie(APIKLEY_KEY, flavor="apikley") as fake:
        yield fake


StartFailoverBot = Callable[..., Awaitable[RunningBot]]


@pytest.fixture
def failover_bot(
    tg: FakeTelegram, apikley: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> StartFailoverBot:
    """A bot with KIE and Apikley enabled; `FAILOVER=kie,apikley` unless told otherwise."""

    async def start(**extra: Any) -> RunningBot:
        values = {"FAILOVER": "kie,apikley", **extra}
        settings = make_settings(APIKLEY_API_KEY=APIKLEY_KEY, APIKLEY_API_URL=apikley.url, **values)
        bot = await start_bot(settings)
        await ready(bot, tg)
        return bot

    return start


def admin_alerts(tg: FakeTelegram) -> list[str]:
    return [
        str(call.params["text"])
        for call in tg.calls_of("sendMessage")
        if str(call.params.get("chat_id")) == str(ADMIN_ID)
    ]


async def test_kie_out_of_credits_fails_over_to_apikley_with_one_task_at_each(
    tg: FakeTelegram, kie: FakeKie, apikley: FakeKie, failover_bot: StartFailoverBot
) -> None:
    bot = await failover_bot()
    kie.fail_next(JOBS_CREATE, 402, "Credits insufficient", http_status=True)

    await expect_edit_delivered(bot, tg, "make it snow")

    assert creates(kie) == [JOBS_CREATE]  # refused: no task there
    assert not kie.tasks
    assert creates(apikley) == [JOBS_CREATE]
    assert len(apikley.tasks) == 1
    edit = await bot.wait_state(EditState.DELIVERED)
    assert (edit.provider, edit.model) == ("apikley", "apikley:qwen/image-edit")
    assert len(tg.calls_of("sendPhoto")) == 1  # one result delivered
    alerts = admin_alerts(tg)
    assert len(alerts) == 1 and "kie" in alerts[0], alerts

    # The account is still empty: the next edit fails over too, and the operators,
    # already told, are not told again (one alert per incident).
    kie.fail_next(JOBS_CREATE, 402, "Credits insufficient", http_status=True)
    await expect_edit_delivered(bot, tg, "make it rain")
    assert len(apikley.tasks) == 2 and not kie.tasks
    assert len(admin_alerts(tg)) == 1


async def test_no_failover_after_a_create_request_timed_out(
    tg: FakeTelegram, kie: FakeKie, apikley: FakeKie, failover_bot: StartFailoverBot
) -> None:
    bot = await failover_bot(PROVIDER_TIMEOUT=0.5)
    kie.slow_answers("createTask", 3)  # sent, never answered in time: a task may exist
    kie.next_outcome(hold=True)  # and it does: it is still running at KIE

    await expect_failure_text(bot, tg, "x", "")
    edit = await bot.wait_state(EditState.FAILED)

    assert edit.error_code == "submit_uncertain"
    assert edit.provider == "kie"
    assert creates(kie) == [JOBS_CREATE]
    assert not creates(apikley)


@pytest.mark.parametrize(
    ("code", "failover"),
    [
        pytest.param(401, True, id="bad-key"),
        pytest.param(422, False, id="refused-parameter"),  # would be refused anywhere
    ],
)
async def test_which_refusals_fail_over(
    code: int,
    failover: bool,
    tg: FakeTelegram,
    kie: FakeKie,
    apikley: FakeKie,
    failover_bot: StartFailoverBot,
) -> None:
    bot = await failover_bot()
    kie.fail_next(JOBS_CREATE, code, "refused", http_status=True)
    if failover:
        await expect_edit_delivered(bot, tg, "x")
        assert len(apikley.tasks) == 1
    else:
        await expect_failure_text(bot, tg, "x", "rejected the request")
        await bot.wait_state(EditState.FAILED)
        assert not creates(apikley)


async def test_without_failover_setting_a_refusal_ends_the_edit(
    tg: FakeTelegram, kie: FakeKie, apikley: FakeKie, failover_bot: StartFailoverBot
) -> None:
    bot = await failover_bot(FAILOVER="")
    kie.fail_next(JOBS_CREATE, 402, "Credits insufficient", http_status=True)
    await expect_failure_text(bot, tg, "x", "out of credits")
    edit = await bot.wait_state(EditState.FAILED)
    assert edit.error_code == "insufficient_credits"
    assert not creates(apikley)


@pytest.mark.parametrize(
    ("telegram_lang", "chosen", "expected"),
    [
        pytest.param("ru", None, "Оповещение для владельца", id="telegram-language"),
        pytest.param("ru", "de", "⚠️", id="chosen-in-the-bot"),
        pytest.param(None, None, "Operator alert", id="unknown-english"),
    ],
)
async def test_operator_alerts_use_the_operators_language(
    telegram_lang: str | None,
    chosen: str | None,
    expected: str,
    tg: FakeTelegram,
    kie: FakeKie,
    apikley: FakeKie,
    failover_bot: StartFailoverBot,
) -> None:
    bot = await failover_bot()
    if chosen is not None:
        await bot.services.db.chat_settings.update(
            ADMIN_ID, lambda prefs: dataclasses.replace(prefs, lang=chosen), user_id=ADMIN_ID
        )
    if telegram_lang is not None:  # the operator wrote to the bot since its start
        operator = tg.user(ADMIN_ID, first_name="Op", language_code=telegram_lang)
        await tg.post_webhook(tg.text_update(ADMIN_ID, operator, "/start"))
        await tg.wait_for("sendMessage", lambda c: c.params["chat_id"] == ADMIN_ID)
    kie.fail_next(JOBS_CREATE, 402, "Credits insufficient", http_status=True)

    await expect_edit_delivered(bot, tg, "make it snow")

    (alert,) = [text for text in admin_alerts(tg) if "insufficient_credits" in text]
    assert expected in alert, alert
    german = bot.services.translator.tr("de", "admin.incident", incident="x", detail="y")
    assert (german.split("x")[0] in alert) == (chosen == "de"), alert
