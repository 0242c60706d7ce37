"""Operations: /healthz, /metrics, structured logs, and secrets that never reach the logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import OperationalError

from bot.config import Settings
from bot.logs import settings_secrets, setup_logging
from domain.edit import EditState
from tests.conftest import KIE_KEY, TOKEN, BotStarter, RunningBot, SettingsFactory
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.reliability import callback_url, eventually, post, quiesce, send_edit

HMAC_KEY = "ops-hmac-key-never-logged"


async def health(bot: RunningBot) -> tuple[int, dict[str, Any]]:
    status, body = await post(f"{bot.url}/healthz", method="GET")
    return status, json.loads(body)


async def test_healthz_checks_the_database_and_the_webhook(
    tg: FakeTelegram,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    webhook_bot = await start_bot(make_settings(WEBHOOK_CHECK_TTL=0))  # every probe asks
    await tg.wait_for("setWebhook")
    assert await health(webhook_bot) == (
        200,
        {"ok": True, "checks": {"database": "ok", "webhook": "ok"}},
    )
    real = tg.webhook_url
    tg.webhook_url = "https://somebody.else.example/telegram"  # another deployment took over
    status, body = await health(webhook_bot)
    assert status == 503 and body["checks"]["webhook"] == "not set"
    tg.webhook_url = real

    async def broken() -> bool:
        raise OperationalError("SELECT 1", {}, Exception("database is locked"))

    monkeypatch.setattr(webhook_bot.services.db, "ping", broken)
    status, body = await health(webhook_bot)
    assert status == 503 and body["checks"]["database"].startswith("error")


async def test_healthz_in_polling_mode(tg: FakeTelegram, polling_bot: RunningBot) -> None:
    await tg.wait_until_polling()
    status, body = await health(polling_bot)
    assert status == 200 and body["checks"] == {"database": "ok", "webhook": "polling"}


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def value(found: dict[str, Any], name: str, **labels: str) -> float:
    return sum(
        v for sample_labels, v in found.get(name, []) if labels.items() <= sample_labels.items()
    )


async def test_metrics_in_prometheus_format(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    tg.fail("sendPhoto", 502, "Bad Gateway", times=3)  # one failed delivery attempt
    kie.next_outcome(callbacks=2)
    await send_edit(webhook_bot, tg, "first")
    edit = await webhook_bot.wait_state(EditState.DELIVERED, within=15)
    await post(callback_url(webhook_bot, edit, token="wrong"), json_body={})
    kie.next_outcome(hold=True)
    await send_edit(webhook_bot, tg, "second")
    await webhook_bot.wait_state(EditState.SUBMITTED, 2)
    await quiesce(webhook_bot)

    async def scrape() -> dict[str, list[tuple[dict[str, str], float]]]:
        status, raw = await post(f"{webhook_bot.url}/metrics", method="GET")
        assert status == 200
        return samples(raw.decode())

    async def snapshot_caught_up() -> bool:  # the row counts are refreshed in the background
        return value(await scrape(), "bot_edits", state="submitted", provider="kie") == 1

    await eventually(snapshot_caught_up, what="a snapshot with the second edit")
    found = await scrape()
    assert value(found, "bot_edits", state="delivered", provider="kie") == 1
    assert value(found, "bot_edits", state="submitted", provider="kie") == 1
    assert value(found, "bot_queue_depth", queue="provider") == 1
    assert value(found, "bot_queue_depth", queue="delivery") == 0
    assert value(found, "bot_queue_depth", queue="submit") == 0
    assert "telegram_updates" in {labels["queue"] for labels, _ in found["bot_queue_depth"]}
    assert value(found, "bot_provider_latency_seconds_count", method="POST") >= 2
    assert value(found, "bot_provider_calls_total", outcome="ok") >= 2
    assert value(found, "bot_callbacks_total", result="applied") == 1
    assert value(found, "bot_callbacks_total", result="duplicate") == 1
    assert value(found, "bot_callbacks_total", result="bad_token") == 1
    assert value(found, "bot_delivery_failures_total", provider="kie") == 1
    assert value(found, "bot_edit_events_total", event="delivered", provider="kie") == 1


@pytest.fixture
def captured_logs() -> Iterator[Callable[[Settings], io.StringIO]]:
    """Install the service's own logging setup, writing to a buffer instead of stderr."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    quiet = ("httpx", "httpcore", "aiohttp.access")
    levels = {name: logging.getLogger(name).level for name in quiet}

    def install(settings: Settings) -> io.StringIO:
        setup_logging(settings.log_level, settings_secrets(settings))
        buffer = io.StringIO()
        [handler] = root.handlers
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(buffer)
        return buffer

    yield install
    root.handlers[:], level = saved
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


async def test_debug_logs_are_json_with_ids_and_never_carry_secrets(
    tg: FakeTelegram,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
    captured_logs: Callable[[Settings], io.StringIO],
) -> None:
    signed = FakeKie(KIE_KEY, hmac_key=HMAC_KEY)
    await signed.start()
    try:
        settings = make_settings(
            KIE_API_URL=signed.url,
            KIE_UPLOAD_URL=signed.url,
            KIE_WEBHOOK_HMAC_KEY=HMAC_KEY,
            LOG_LEVEL="DEBUG",
        )
        logs = captured_logs(settings)
        bot = await start_bot(settings)
        await tg.wait_for("setWebhook")
        signed.next_outcome(callbacks=2)
        await send_edit(bot, tg)
        edit = await bot.wait_state(EditState.DELIVERED)
        await quiesce(bot)
        # A failure whose traceback would quote the bot's API URL (and so the token).
        logging.getLogger("bot.test").error(
            "boom", exc_info=RuntimeError(f"POST {tg.url}/bot{TOKEN}/sendPhoto failed")
        )
        await bot.stop()
    finally:
        await signed.stop()

    text = logs.getvalue()
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert len(records) > 50  # DEBUG really was on
    secrets = [TOKEN, TOKEN.split(":")[1], KIE_KEY, HMAC_KEY, settings.resolved_webhook_secret]
    for secret in secrets:
        assert secret not in text, f"a secret leaked into the logs: {secret[:6]}…"
    assert "***" in text  # secrets were there to scrub (PTB logs setWebhook's secret_token)
    submitted = [r for r in records if r["msg"] == "edit submitted"]
    assert submitted and submitted[0]["edit_id"] == edit.id
    assert submitted[0]["task_id"] == edit.task_id
    accepted = [r for r in records if r["msg"] == "callback accepted"]
    assert {r["task_id"] for r in accepted} == {edit.task_id} and len(accepted) == 2
    assert [r["changed"] for r in accepted] == [True, False]
    delivered = [r for r in records if r["msg"] == "edit delivered"]
    assert delivered[0]["edit_id"] == edit.id and delivered[0]["task_id"] == edit.task_id
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)


def test_the_database_password_is_redacted_from_logs(
    make_settings: SettingsFactory, captured_logs: Callable[[Settings], io.StringIO]
) -> None:
    # A driver or SQLAlchemy error may quote the URL it was given, password included.
    url = "postgresql+asyncpg://bot:pa%24%24-never-logged@db.internal:5432/bot"
    logs = captured_logs(make_settings(DATABASE_URL=url))
    logging.getLogger("bot").error("cannot connect to %s (password pa$$-never-logged)", url)
    text = logs.getvalue()
    assert "db.internal" in text
    assert "never-logged" not in text, text
