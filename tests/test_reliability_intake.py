"""Durable intake: an update Telegram was told arrived survives a SIGKILL; a repeated
update_id does nothing; the webhook is registered only once the port listens.

The bursts run the real service (`python -m bot`) and SIGKILL it as soon as Telegram has
its acknowledgements (the last webhook 200; the getUpdates call confirming the last
update). Photo downloads (getFile) are held back during the first run, so every edit is
still being prepared (`queued`) when the process dies: the story is the intake alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.keys import INTAKE
from domain.edit import EditState
from tests.conftest import KIE_KEY, BotStarter, SettingsFactory, free_port
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.reliability import (
    Service,
    eventually,
    let_leases_run_out,
    read_rows,
    service_env,
    to_chat,
)

BURST = 200
FIRST_USER = 50_000


@pytest.fixture
async def kie() -> AsyncIterator[FakeKie]:
    fake = FakeKie(KIE_KEY, credits=10_000.0)
    await fake.start()
    yield fake
    await fake.stop()


def burst_env(tg: FakeTelegram, kie: FakeKie, data_dir: Path, *, webhook: bool) -> dict[str, str]:
    env = service_env(tg, kie, data_dir, free_port()) | {
        "KIE_RATE_LIMIT": "1000/1",
        "UPDATE_LEASE": "1",  # a dead process's updates are taken over after 1 s
    }
    if not webhook:
        del env["PUBLIC_BASE_URL"]  # long polling; photos reach KIE through its upload API
    return env


def photo_updates(tg: FakeTelegram) -> list[dict[str, Any]]:
    """One photo with a caption from each of BURST users (per-user limits play no part)."""
    return [
        tg.photo_update(
            FIRST_USER + n,
            tg.user(FIRST_USER + n),
            make_jpeg(64, 48, (n % 255, 80, 160)),
            caption=f"edit number {n}",
        )
        for n in range(BURST)
    ]


async def check_each_answered_once(
    tg: FakeTelegram, kie: FakeKie, db_url: str, updates: list[dict[str, Any]]
) -> None:
    """After the restart: exactly one edit per update, each delivered once."""
    messages = [tg.message_of(update) for update in updates]

    async def all_delivered() -> bool:
        rows = await read_rows(db_url)
        return len(rows) == BURST and all(row["state"] == "delivered" for row in rows)

    await eventually(all_delivered, within=120, what=f"{BURST} edits delivered")
    rows = await read_rows(db_url)
    assert sorted((row["chat_id"], row["message_id"]) for row in rows) == sorted(
        (message["chat"]["id"], message["message_id"]) for message in messages
    )
    creates = [path for _, path in kie.requests if path.endswith("/createTask")]
    assert len(creates) == len(kie.tasks) == BURST
    photos = Counter(call.params["chat_id"] for call in tg.calls_of("sendPhoto") if call.ok)
    assert sorted(photos.values()) == [1] * BURST
    assert {int(chat) for chat in photos} == {m["chat"]["id"] for m in messages}
    for message in messages:  # "Editing your photo…" at most once (the first run's)
        assert len(to_chat(tg, message["chat"]["id"], "sendMessage")) <= 1


async def test_webhook_burst_survives_sigkill_after_the_last_200(
    tg: FakeTelegram, kie: FakeKie, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    service = Service(burst_env(tg, kie, data_dir, webhook=True), tmp_path)
    db_url = f"sqlite:///{(data_dir / 'bot.sqlite3').resolve()}"
    updates = photo_updates(tg)
    gate = asyncio.Semaphore(50)

    async def deliver(update: dict[str, Any]) -> int:
        async with gate:
            return await tg.post_webhook(update)

    try:
        await service.start(tg)
        tg.delay("getFile", 120)
        statuses = await asyncio.gather(*(deliver(update) for update in updates))
        await service.kill()  # Telegram got every 200: it will not send these again
        assert statuses == [200] * BURST

        tg.delay("getFile", 0)
        await let_leases_run_out(db_url)
        await service.start(tg)
        await check_each_answered_once(tg, kie, db_url, updates)
    finally:
        await service.close()


async def test_polling_burst_survives_sigkill_once_the_offset_moved_past_it(
    tg: FakeTelegram, kie: FakeKie, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    service = Service(burst_env(tg, kie, data_dir, webhook=False), tmp_path)
    db_url = f"sqlite:///{(data_dir / 'bot.sqlite3').resolve()}"
    updates = photo_updates(tg)
    try:
        await service.start(tg)
        await tg.wait_until_polling()
        tg.delay("getFile", 120)
        for update in updates:
            tg.push_update(update)
        # The moment a getUpdates offset confirms the last one, Telegram forgets them all.
        await eventually(lambda: tg.pending_updates == 0, within=30, what="all confirmed")
        await service.kill()

        tg.delay("getFile", 0)
        await let_leases_run_out(db_url)
        await service.start(tg)
        await check_each_answered_once(tg, kie, db_url, updates)
    finally:
        await service.close()


@pytest.mark.parametrize("webhook", [True, False], ids=["webhook", "polling"])
async def test_a_repeated_update_id_does_nothing(
    tg: FakeTelegram, make_settings: SettingsFactory, start_bot: BotStarter, webhook: bool
) -> None:
    bot = await start_bot(make_settings(webhook=webhook))
    chat_id = 4242
    update = tg.text_update(chat_id, tg.user(chat_id), "/start")
    update["update_id"] = 777_000_001
    if webhook:
        for _ in range(3):
            assert await tg.post_webhook(update) == 200
    else:
        await tg.wait_until_polling()
        for _ in range(3):
            tg.push_update(update)
    await tg.wait_for("sendMessage", timeout=10)

    async def handled() -> bool:
        rows = await bot.services.db.execute(sa.text("SELECT done_at FROM updates"))
        done = [row[0] is not None for row in rows.all()] == [True]
        return done and len(bot.app[INTAKE]) == 0  # and nothing more is being handled

    await eventually(handled, what="the update recorded once and handled")
    if not webhook:
        await eventually(lambda: tg.pending_updates == 0, what="the repeats confirmed")
    assert len(to_chat(tg, chat_id, "sendMessage")) == 1


async def test_the_port_listens_before_the_webhook_is_registered(
    tg: FakeTelegram, kie: FakeKie, tmp_path: Path
) -> None:
    service = Service(service_env(tg, kie, tmp_path / "data", free_port()), tmp_path)
    try:
        await service.start(tg)
    finally:
        await service.close()
    # The fake connected to the webhook's port when setWebhook arrived.
    assert tg.webhook_probes == [True]


@pytest.mark.parametrize(("setting", "level"), [(None, 1), ("FULL", 2), ("full", 2)])
async def test_sqlite_synchronous_is_a_setting(
    make_settings: SettingsFactory, start_bot: BotStarter, setting: str | None, level: int
) -> None:
    overrides = {} if setting is None else {"SQLITE_SYNCHRONOUS": setting}
    bot = await start_bot(make_settings(**overrides))
    rows = await bot.services.db.execute(sa.text("PRAGMA synchronous"))
    assert rows.scalar_one() == level  # 1: NORMAL, 2: FULL


async def test_an_update_handled_again_after_a_crash_before_done_repeats_nothing(
    tg: FakeTelegram,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The process died after handling a photo update but before marking it done: the
    update is handled again, and the edit (keyed by chat and message) is not repeated."""
    bot = await start_bot(make_settings(UPDATE_LEASE=0.3))
    chat_id = 4343
    update = tg.photo_update(chat_id, tg.user(chat_id), make_jpeg(64, 48), caption="brighter")
    assert await tg.post_webhook(update) == 200
    await bot.wait_state(EditState.DELIVERED)
    db = bot.services.db
    caplog.set_level(logging.INFO, logger="bot")
    await db.execute(
        sa.text("UPDATE updates SET done_at = NULL, lease_until = 0, payload = :payload"),
        {"payload": json.dumps(update)},
    )

    async def handled_again() -> bool:
        return await db.updates.count_pending() == 0 and len(bot.app[INTAKE]) == 0

    await eventually(handled_again, what="the update handled again")
    assert "repeated update ignored" in caplog.messages  # the handler did run again
    assert [edit.state for edit in await bot.edits()] == [EditState.DELIVERED]
    assert len(to_chat(tg, chat_id, "sendPhoto")) == 1
    assert len(to_chat(tg, chat_id, "sendMessage")) == 1  # "Editing your photo…", once
