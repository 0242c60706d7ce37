"""The shipped Grafana dashboard and Prometheus alert rules name only metrics the bot exports,
and the metrics they rely on beyond the edit counters (credits, webhook, database errors)
move as the bot runs."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import sqlalchemy as sa
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import Metrics
from tests.conftest import BotStarter, RunningBot, SettingsFactory
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.reliability import eventually, post

ROOT = Path(__file__).resolve().parent.parent
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported() -> set[str]:
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def expressions() -> list[str]:
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    found = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "photo-edit-bot.json").read_text())
    found += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    return found


def test_every_metric_the_dashboard_and_alerts_name_is_exported() -> None:
    known = exported()
    named = {name for expr in expressions() for name in re.findall(r"\bbot_[a-z_]+", expr)}
    assert named - known == set()
    # The incidents the issue lists each have a rule.
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {
        "ProviderOutOfCredits",
        "WebhookFailing",
        "DeliveriesFailing",
        "QueueGrowing",
        "DatabaseErrors",
    } <= alerts


def scraped(raw: bytes) -> dict[str, float]:
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(raw.decode()):
        for sample in family.samples:
            key = sample.name + json.dumps(sample.labels, sort_keys=True)
            values[key] = sample.value
    return values


async def scrape(bot: RunningBot) -> dict[str, float]:
    status, raw = await post(f"{bot.url}/metrics", method="GET")
    assert status == 200
    return scraped(raw)


async def test_credits_webhook_and_database_errors_reach_metrics(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    kie.credits = 321
    bot = await start_bot(
        make_settings(LOW_CREDITS_ALERT="10", CREDITS_CHECK_INTERVAL="0.05", WEBHOOK_CHECK_TTL="0")
    )
    await tg.wait_for("setWebhook")

    async def credits_seen() -> bool:
        return (await scrape(bot)).get('bot_provider_credits{"account": "kie"}') == 321

    await eventually(credits_seen, what="the balance in /metrics")

    status, _ = await post(f"{bot.url}/healthz", method="GET")
    assert status == 200
    assert (await scrape(bot))["bot_webhook_ok{}"] == 1
    tg.fail("getWebhookInfo", 500, "Internal Server Error", times=10)
    status, _ = await post(f"{bot.url}/healthz", method="GET")
    assert status == 503
    assert (await scrape(bot))["bot_webhook_ok{}"] == 0

    errors = 'bot_database_errors_total{"kind": "OperationalError"}'
    assert errors not in await scrape(bot)
    with contextlib.suppress(sa.exc.OperationalError):
        await bot.services.db.execute(sa.text("SELECT * FROM no_such_table"))
    assert (await scrape(bot))[errors] == 1
    # A unique-key race the code expects is no database error.
    table = "CREATE TABLE once_only (k INTEGER PRIMARY KEY)"
    await bot.services.db.execute(sa.text(table))
    await bot.services.db.execute(sa.text("INSERT INTO once_only VALUES (1)"))
    with contextlib.suppress(sa.exc.IntegrityError):
        await bot.services.db.execute(sa.text("INSERT INTO once_only VALUES (1)"))
    assert not [key for key in await scrape(bot) if "IntegrityError" in key]
    assert (await scrape(bot))[errors] == 1
