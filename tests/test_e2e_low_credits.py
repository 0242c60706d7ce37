"""Low balance: below LOW_CREDITS_ALERT the operators are alerted once per incident, from the
periodic look at KIE's credit endpoint and from callbacks' `remainedCredits`; the incident
ends when the balance is back at or above the threshold."""

from __future__ import annotations

import asyncio
import time

from domain.edit import EditState
from tests.conftest import BotStarter, RunningBot, SettingsFactory
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram_server import ApiCall
from tests.test_e2e_providers import paths, send_photo

OPERATOR_ID = 9001  # ADMIN_IDS of the test settings
CREDIT = "/api/v1/chat/credit"


def alerts(tg: FakeTelegram) -> list[ApiCall]:
    return [
        call
        for call in tg.calls_of("sendMessage")
        if call.params["chat_id"] == OPERATOR_ID and "KIE credits are low" in call.params["text"]
    ]


async def looks(kie: FakeKie, more: int) -> None:
    """Wait until the bot asked the credit endpoint `more` more times."""
    target = len(paths(kie, CREDIT)) + more
    await kie.wait_for(lambda: len(paths(kie, CREDIT)) >= target, 10, "credit looks")


async def incident_over(bot: RunningBot) -> None:
    """Wait until the bot recorded the low-balance incident as over."""
    deadline = time.monotonic() + 10
    while await bot.services.db.alerts.is_open("low_credits"):
        assert time.monotonic() < deadline, "the incident never ended"
        await asyncio.sleep(0.02)


async def test_the_periodic_look_alerts_once_per_incident(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    kie.credits = 100
    bot = await start_bot(make_settings(LOW_CREDITS_ALERT="10", CREDITS_CHECK_INTERVAL="0.05"))
    await tg.wait_for("setWebhook")
    await looks(kie, 2)
    assert not alerts(tg)

    kie.credits = 8
    [alert] = await tg.wait_for("sendMessage", lambda c: c in alerts(tg))
    assert alert.params["text"] == (
        "⚠️ Operator alert: low_credits\nKIE credits are low: 8 left (LOW_CREDITS_ALERT is 10). "
        "Top up the account before edits start failing."
    )
    await looks(kie, 4)
    assert len(alerts(tg)) == 1  # the same incident

    kie.credits = 10  # back at the threshold: the incident is over
    await incident_over(bot)
    kie.credits = 9.5  # a new incident
    await tg.wait_for("sendMessage", lambda c: c in alerts(tg), count=2)
    await looks(kie, 3)
    assert len(alerts(tg)) == 2


async def edit_once(bot: RunningBot, tg: FakeTelegram, n: int) -> None:
    await send_photo(bot, tg, f"edit {n}")
    await bot.wait_state(EditState.DELIVERED, edit_id=n)


async def test_callbacks_remained_credits_alert_once_per_incident(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    kie.credits, kie.task_cost = 13, 2
    bot = await start_bot(make_settings(LOW_CREDITS_ALERT="10", CREDITS_CHECK_INTERVAL="3600"))
    await tg.wait_for("setWebhook")
    # The look at startup (13, fine): it may be done already when the bot is up.
    await kie.wait_for(lambda: len(paths(kie, CREDIT)) == 1, 10, "the look at startup")
    await edit_once(bot, tg, 1)  # 11 left
    await edit_once(bot, tg, 2)  # 9 left: alerted
    [alert] = await tg.wait_for("sendMessage", lambda c: c in alerts(tg))
    assert "KIE credits are low: 9 left" in alert.params["text"]
    await edit_once(bot, tg, 3)  # 7 left: the same incident
    kie.credits = 100
    await edit_once(bot, tg, 4)  # 98 left: over
    await incident_over(bot)
    kie.credits = 5
    await edit_once(bot, tg, 5)  # 3 left: a new incident
    await tg.wait_for("sendMessage", lambda c: c in alerts(tg), count=2)
    assert "KIE credits are low: 3 left" in alerts(tg)[1].params["text"]
    assert len(paths(kie, CREDIT)) == 1  # every later figure came from a callback
    assert len(alerts(tg)) == 2
