"""Paid edits survive a SIGKILL: a successful payment Telegram was told arrived (the webhook's
200) and that was not yet credited is credited after the restart, and every payment is
credited exactly once (README: "Paid edits (Telegram Stars)").

The real service (`python -m bot`) gets a burst of payments larger than its concurrent
update handling (256) while the receipts (sendMessage) are held back, so the first handlers
credit and then wait on their receipt, and the rest wait for a slot: when the process is
killed right after the last 200, some payments are credited and some are not.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from storage.db import Database
from storage.schema import balance_ledger
from tests.conftest import free_port
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.reliability import Service, eventually, service_env

BURST = 300  # more than the 256 updates the bot handles at once
FIRST_USER = 70_000
PAYLOAD = "pack:10:50"


async def purchases(db_url: str) -> Counter[int]:
    """Purchase entries per user, read through a separate connection."""
    db = Database(db_url)
    try:
        stmt = sa.select(balance_ledger.c.user_id).where(balance_ledger.c.kind == "purchase")
        return Counter(int(user_id) for (user_id,) in (await db.execute(stmt)).all())
    finally:
        await db.close()


async def test_payments_acknowledged_before_a_sigkill_are_credited_once_after_the_restart(
    tg: FakeTelegram, kie: FakeKie, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = service_env(tg, kie, data_dir, free_port()) | {
        "STARS_PACKS": "10:50",
        "UPDATE_LEASE": "1",  # a dead process's updates are taken over after 1 s
    }
    service = Service(env, tmp_path)
    db_url = f"sqlite:///{(data_dir / 'bot.sqlite3').resolve()}"
    users = [FIRST_USER + n for n in range(BURST)]
    payments = [tg.successful_payment_update(user, tg.user(user), PAYLOAD, 50) for user in users]
    gate = asyncio.Semaphore(50)

    async def deliver(update: dict[str, Any]) -> int:
        async with gate:
            return await tg.post_webhook(update)

    try:
        await service.start(tg)
        tg.delay("sendMessage", 120)
        statuses = await asyncio.gather(*(deliver(update) for update in payments))
        await service.kill()  # Telegram got every 200: it will not send these again
        assert statuses == [200] * BURST
        before = await purchases(db_url)
        assert len(before) < BURST  # some payments were not credited when the process died
        assert set(before.values()) <= {1}

        tg.delay("sendMessage", 0)
        await service.start(tg)

        async def all_credited() -> bool:
            return len(await purchases(db_url)) == BURST

        await eventually(all_credited, within=60, what=f"{BURST} payments credited")
        after = await purchases(db_url)
        assert after == Counter(users)  # each exactly once
        db = Database(db_url)
        try:
            for user in users[:: BURST // 10]:
                assert (await db.balances.account(user)).balance == 10
        finally:
            await db.close()

        async def all_receipts() -> bool:
            receipts = {
                call.params["chat_id"]
                for call in tg.calls_of("sendMessage")
                if call.ok and "Receipt id" in str(call.params["text"])
            }
            return receipts == set(users)

        await eventually(all_receipts, within=60, what="a receipt for every payment")
    finally:
        await service.close()
