"""Fair queues: one provider account's turns are shared fairly between requesters and its
rate limit holds for all replicas together (both live in the database: storage/turns.py).

The real bot (create_app) against the fake Bot API and the fake KIE, on a real SQLite file;
the replica test runs two instances of the service on one database file behind a
round-robin balancer, as two replicas would share one database.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from bot.keys import METRICS
from domain import steps
from domain.edit import Edit, EditState
from storage.db import Database
from storage.schema import provider_turns
from storage.turns import Account, Sending, fair_order
from tests.conftest import BotStarter, RunningBot, SettingsFactory, free_port
from tests.fakes.balancer import RoundRobin
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.pg import PostgresServer
from tests.reliability import eventually, replies_to
from tests.test_db import db, new_edit  # noqa: F401  (the fixture: SQLite and PostgreSQL)

HEAVY, LIGHT = 2001, 2002
IN_LINE = re.compile(r"⏳ In line: position (\d+), about (\d+) s")


async def send_all(tg: FakeTelegram, senders: list[int], caption: str = "hat") -> list[dict]:
    """Each sender's photo, all posted at once through the webhook; their messages."""
    updates = [
        tg.photo_update(user_id, tg.user(user_id), make_jpeg(320, 240), caption=f"{caption} {n}")
        for n, user_id in enumerate(senders)
    ]
    statuses = await asyncio.gather(*(tg.post_webhook(update) for update in updates))
    assert statuses == [200] * len(updates)
    return [tg.message_of(update) for update in updates]


async def edits_of(bot: RunningBot, user_id: int) -> list[Edit]:
    return [edit for edit in await bot.edits() if edit.user_id == user_id]


def test_fair_order_is_round_robin_weighted_by_recent_turns() -> None:
    # Requester 1 queued five edits before 2 and 3 queued one each; 1 had two turns lately.
    queued = [(10, 1), (11, 1), (12, 1), (13, 1), (14, 1), (20, 2), (30, 3)]
    assert fair_order(queued, {}, {}) == [10, 20, 30, 11, 12, 13, 14]
    assert fair_order(queued, {1: 2}, {1: 99.0}) == [20, 30, 10, 11, 12, 13, 14]
    # Equal keys: the requester served longest ago goes first.
    assert fair_order([(5, 1), (6, 2)], {1: 1, 2: 1}, {1: 50.0, 2: 40.0}) == [6, 5]


async def test_waiting_edits_get_the_windows_free_turns_at_once_in_fair_order(
    db: Database,  # noqa: F811
) -> None:
    now = time.time()
    account = Account("kie", ("kie",), max_calls=4, period=60.0)
    senders = [7, 7, 7, 8, 9]  # one user's three photos, then two others'
    queued = [
        await db.edits.create(
            new_edit(
                f"fair:{n}",
                chat_type="private",
                chat_id=who,
                user_id=who,
                lease_owner="me",
                lease_until=now + 60,
            )
        )
        for n, who in enumerate(senders)
    ]
    ids = [edit.id for edit in queued if edit is not None]
    candidates = {edit_id: Sending("me", {}) for edit_id in ids}
    offer = await db.turns.take(account, steps.BEGIN_SUBMIT, candidates, now=now)
    # One transaction gave the window's four turns, round robin: 7, 8, 9, then 7 again.
    assert [edit.id for edit in offer.taken] == [ids[0], ids[3], ids[4], ids[1]]
    assert all(edit.state is EditState.SUBMITTING for edit in offer.taken)
    rest = {ids[2]: candidates[ids[2]]}
    full = await db.turns.take(account, steps.BEGIN_SUBMIT, rest, now=now + 1)
    assert full.taken == () and full.free_at == now + 60.0


async def test_a_heavy_burst_delays_a_light_users_photo_by_at_most_one_window(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    period = 1.0
    bot = await start_bot(make_settings(KIE_RATE_LIMIT=f"2/{period}"))
    await tg.wait_for("setWebhook")
    await send_all(tg, [HEAVY] * 20)
    # The heavy user's first two take the window; the other eighteen wait their turns.
    await kie.wait_for(lambda: len(kie.tasks) == 2, what="the first two tasks")
    [light] = await send_all(tg, [LIGHT], caption="light")

    [edit] = await edits_of(bot, LIGHT)
    sent = await bot.wait_edit(lambda e: e.submitted_at is not None, edit.id, within=10)
    assert sent.submitted_at is not None
    # At most one window's turns went to others after it arrived (without fair turns, all
    # eighteen of the heavy user's waiting photos would: nine windows) ...
    mine = kie.tasks[str(sent.task_id)].create_time / 1000
    ahead = [
        task
        for task in kie.tasks.values()
        if sent.created_at < task.create_time / 1000 < mine and task.task_id != sent.task_id
    ]
    assert len(ahead) <= 2, len(ahead)
    # ... so it waited one window at most (the turn it waits for frees within it), plus the
    # time to fetch, convert and store the photo and send the request.
    assert sent.submitted_at - sent.created_at < period + 1.0
    heavy = await edits_of(bot, HEAVY)
    waiting = [e for e in heavy if e.submitted_at is None or e.submitted_at > sent.submitted_at]
    assert len(waiting) >= 14

    # While it waited, its status message said it was next, a window away at most.
    [status] = await tg.wait_for("sendMessage", replies_to(light))
    message_id = tg.sent_message(status)["message_id"]
    shown = [
        c.params["text"]
        for c in tg.calls_of("editMessageText")
        if c.params.get("message_id") == message_id and c.params["chat_id"] == LIGHT
    ]
    assert shown and shown[0].startswith("⏳ Got it! Editing your photo…\n")
    place = IN_LINE.search(shown[0])
    assert place is not None and place.groups() == ("1", "1")
    # The heavy user's edits were told their places further back.
    positions = [
        int(match[1])
        for c in tg.calls_of("editMessageText")
        if c.params["chat_id"] == HEAVY and (match := IN_LINE.search(c.params["text"]))
    ]
    assert positions and max(positions) >= 10


async def test_the_place_in_line_is_shown_again_as_the_edit_moves_up(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    period = 0.5
    settings = make_settings(KIE_RATE_LIMIT=f"2/{period}", STATUS_EDIT_INTERVAL=0.1)
    await start_bot(settings)
    await tg.wait_for("setWebhook")
    photos = await send_all(tg, [HEAVY] * 12)
    last = photos[-1]
    [status] = await tg.wait_for("sendMessage", replies_to(last))
    message_id = tg.sent_message(status)["message_id"]
    await tg.wait_for("sendPhoto", replies_to(last), timeout=20)

    texts = [
        c.params["text"]
        for c in tg.calls_of("editMessageText")
        if c.params.get("message_id") == message_id and c.params["chat_id"] == HEAVY
    ]
    positions = [int(match[1]) for text in texts if (match := IN_LINE.search(text))]
    # Told its place when it started waiting, then again each window as turns went to the
    # photos ahead of it: closer every time (an unchanged place is not rewritten).
    assert len(positions) >= 3, texts
    assert positions == sorted(positions, reverse=True), positions
    assert len(set(positions)) == len(positions), positions
    assert positions[0] >= 8 and positions[-1] <= 4, positions


@pytest.fixture(params=["sqlite", "postgresql"])
async def replicas(
    request: pytest.FixtureRequest,
    tg: FakeTelegram,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
) -> AsyncIterator[list[RunningBot]]:
    """Two instances of the service on one database (one SQLite file in their shared
    DATA_DIR, or one PostgreSQL database), behind one public URL."""
    extra = {}
    if request.param == "postgresql":
        postgres: PostgresServer = request.getfixturevalue("postgres")
        extra["DATABASE_URL"] = postgres.new_database()
    balancer = RoundRobin(free_port())
    bots: list[RunningBot] = []
    await balancer.start()
    try:
        for _n in range(2):  # one after the other: the second finds the schema current
            settings = make_settings(PUBLIC_BASE_URL=balancer.url, KIE_RATE_LIMIT="3/1", **extra)
            bots.append(await start_bot(settings))
        assert bots[0].settings.database_url == bots[1].settings.database_url
        balancer.upstreams = [bot.url for bot in bots]
        await tg.wait_for("setWebhook", count=2)
        yield bots
    finally:
        await balancer.stop()


async def test_two_replicas_together_never_exceed_the_providers_limit(
    tg: FakeTelegram, kie: FakeKie, replicas: list[RunningBot]
) -> None:
    limit, period = 3, 1.0
    senders = [3000 + n % 4 for n in range(12)]  # four users, twelve photos over both replicas
    turns: dict[int, float] = {}  # edit id: when it took its turn (rows leave after a window)

    async def watch_turns() -> None:
        stmt = sa.select(provider_turns.c.edit_id, provider_turns.c.taken_at)
        while True:
            rows = (await replicas[0].services.db.execute(stmt)).all()
            turns.update((int(edit_id), float(taken_at)) for edit_id, taken_at in rows)
            await asyncio.sleep(0.01)

    watching = asyncio.ensure_future(watch_turns())
    try:
        await send_all(tg, senders)
        await tg.wait_for("sendPhoto", count=12, timeout=30)
    finally:
        watching.cancel()
    assert not watching.done() or watching.cancelled()  # it watched until the end

    async def delivered() -> bool:
        return all(e.state is EditState.DELIVERED for e in await replicas[0].edits())

    await eventually(delivered, within=10, what="every edit delivered")
    assert len(await replicas[0].edits()) == 12 and len(kie.tasks) == 12
    # Both replicas sent tasks (each submits the edits it received).
    sent = [
        bot.app[METRICS].registry.get_sample_value(
            "bot_edit_events_total", {"event": "submitted", "provider": "kie"}
        )
        for bot in replicas
    ]
    assert all(sent) and sum(n or 0 for n in sent) == 12
    # Any `limit + 1` turns span a whole window, whichever replicas took them ...
    taken = sorted(turns.values())
    assert len(taken) == 12
    assert min(taken[i + limit] - taken[i] for i in range(len(taken) - limit)) >= period
    # ... and so do the creations the provider saw, however late a request arrived after its
    # turn was taken: a turn counts until `period` after the provider's answer. (The fake
    # stamps creations in whole milliseconds.)
    created = sorted(task.create_time / 1000 for task in kie.tasks.values())
    spans = [created[i + limit] - created[i] for i in range(len(created) - limit)]
    assert min(spans) > period - 0.002, spans
    # Per-process limiters would have let each replica send three per window: six at once.
    assert created[-1] - created[0] > 3 * period
