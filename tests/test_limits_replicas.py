"""Spending limits shared by two replicas on one PostgreSQL database.

Two instances of the real service (create_app) share a PostgreSQL database (a real server on
127.0.0.1) and KIE's upload storage; a round-robin load balancer in front of them is the
public URL, so the requests of one burst land on alternating replicas and race each other
for the last slot and the last credits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from domain.edit import EditState
from storage.schema import edits
from tests.conftest import USER_ID, BotStarter, RunningBot, SettingsFactory, free_port
from tests.fakes.balancer import RoundRobin
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.pg import PostgresServer
from tests.reliability import eventually

OPERATOR = 9001
IMAGE = make_jpeg(256, 192)
CAP = "⏸ The bot has reached its spending limit for today. Try again in"
BUSY = "⏳ You already have 2 edits in progress. Send this again once one of them is done."


@pytest.fixture
async def replicas(
    tg: FakeTelegram,
    postgres: PostgresServer,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
) -> AsyncIterator[list[RunningBot]]:
    balancer = RoundRobin(free_port())
    database_url = postgres.new_database()
    bots: list[RunningBot] = []
    await balancer.start()
    try:
        for _n in range(2):  # one after the other: the second finds the schema current
            settings = make_settings(
                PUBLIC_BASE_URL=balancer.url,
                DATABASE_URL=database_url,
                STORAGE="kie",
                USER_MAX_IN_FLIGHT=2,
                SPEND_CAP_DAILY=20,
                MODEL_COSTS="qwen/image-edit=4",  # as the fake KIE reports in callbacks
            )
            bots.append(await start_bot(settings))
        balancer.upstreams = [bot.url for bot in bots]
        await tg.wait_for("setWebhook", count=2)
        yield bots
    finally:
        await balancer.stop()


async def all_at_once(tg: FakeTelegram, senders: list[int]) -> None:
    updates = [
        tg.photo_update(user_id, tg.user(user_id), IMAGE, caption=f"hat {n}")
        for n, user_id in enumerate(senders)
    ]
    statuses = await asyncio.gather(*(tg.post_webhook(update) for update in updates))
    assert statuses == [200] * len(updates)


def said(tg: FakeTelegram, start: str) -> int:
    return sum(1 for c in tg.calls_of("sendMessage") if str(c.params["text"]).startswith(start))


async def test_replicas_share_the_per_user_limit_and_never_overspend_the_cap(
    tg: FakeTelegram, kie: FakeKie, replicas: list[RunningBot]
) -> None:
    tg.user(OPERATOR)
    db = replicas[0].services.db
    # One user's ten photos over both replicas, tasks held: two in flight, eight refused.
    kie.next_outcome(hold=True)
    kie.next_outcome(hold=True)
    await all_at_once(tg, [USER_ID] * 10)
    await tg.wait_for("sendMessage", lambda c: c.params["text"] == BUSY, count=8, timeout=30)
    await kie.wait_for(lambda: len(kie.tasks) == 2, what="two tasks")
    kie.release_all()
    await tg.wait_for("sendPhoto", count=2, timeout=30)

    # 8 of 20 credits spent: twelve users race for the last 12 (three edits of 4).
    await all_at_once(tg, [5000 + n for n in range(12)])
    await tg.wait_for("sendMessage", lambda c: str(c.params["text"]).startswith(CAP), count=9)
    await tg.wait_for("sendPhoto", count=5, timeout=30)

    async def settled() -> bool:
        rows = (await db.execute(sa.select(edits.c.state, edits.c.credits))).all()
        return all(state == EditState.DELIVERED.value for state, _credits in rows)

    await eventually(settled, within=30, what="every edit delivered")
    rows = (await db.execute(sa.select(edits.c.credits))).all()
    assert len(rows) == 5 and len(kie.tasks) == 5
    assert sum(credits for (credits,) in rows) == 20  # the cap, reached exactly, never over
    assert said(tg, CAP) == 9 and said(tg, BUSY) == 8
    # Each alert at most once, although both replicas saw the spend cross the line (the 80%
    # one is left out when the first to look already found the cap reached).
    alerts = [
        str(c.params["text"]).split("\n")[0]
        for c in tg.calls_of("sendMessage")
        if c.params["chat_id"] == OPERATOR
    ]
    assert alerts.count("⚠️ Operator alert: spend_cap_full") == 1
    assert alerts.count("⚠️ Operator alert: spend_cap_near") <= 1 and len(alerts) <= 2
