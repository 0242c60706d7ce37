"""Graceful shutdown: SIGTERM to the real service (`python -m bot`) with work in flight.

It stops taking new work, finishes what it is doing (a result being sent), persists what
waits on others (a task still running at the provider), gives every lease back and exits
with status 0; the next run picks everything up and nothing is lost or sent twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import CHAT_ID, KIE_KEY, TOKEN, USER_ID, free_port
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.reliability import Service, eventually, read_rows, service_env

HMAC_KEY = "chaos-hmac-key"


class WatchedTelegram(FakeTelegram):
    """Records which methods have arrived (before any injected delay is served)."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.arrived: list[str] = []

    async def _apply_delay(self, name: str) -> None:
        self.arrived.append(name)
        await super()._apply_delay(name)


@pytest.fixture
async def tg() -> AsyncIterator[WatchedTelegram]:
    fake = WatchedTelegram(TOKEN)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def kie() -> AsyncIterator[FakeKie]:
    fake = FakeKie(KIE_KEY, hmac_key=HMAC_KEY, callback_backoff=(0.3, 0.6, 1.2))
    await fake.start()
    yield fake
    await fake.stop()


def photo(tg: FakeTelegram, caption: str) -> dict[str, Any]:
    return tg.photo_update(CHAT_ID, tg.user(USER_ID), make_jpeg(96, 64), caption=caption)


async def offer(tg: FakeTelegram, update: dict[str, Any]) -> bool:
    """Telegram delivering a webhook update: True when the service took it."""
    try:
        return await tg.post_webhook(update) == 200
    except aiohttp.ClientError:
        return False


async def test_sigterm_finishes_or_persists_in_flight_work_and_exits_cleanly(
    tg: WatchedTelegram, kie: FakeKie, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = service_env(tg, kie, data_dir, free_port()) | {
        "KIE_WEBHOOK_HMAC_KEY": HMAC_KEY,
        "LOG_LEVEL": "DEBUG",
    }
    service = Service(env, tmp_path)
    db_url = f"sqlite+aiosqlite:///{(data_dir / 'bot.sqlite3').resolve()}"

    async def rows() -> list[dict[str, Any]]:
        return await read_rows(db_url)

    try:
        await service.start(tg)
        # 1: a task still running at the provider.
        kie.next_outcome(hold=True)
        first = photo(tg, "first")
        assert await tg.post_webhook(first) == 200
        await eventually(
            lambda: _states(rows(), ["submitted"]), within=20, what="the first edit submitted"
        )
        # 2: a result being sent right now (Telegram takes two seconds to answer).
        tg.delay("sendPhoto", 2.0, times=1)
        second = photo(tg, "second")
        assert await tg.post_webhook(second) == 200
        await eventually(lambda: "sendPhoto" in tg.arrived, within=20, what="sendPhoto sent")

        assert service.process is not None
        service.process.send_signal(15)  # SIGTERM
        third = photo(tg, "third")  # Telegram keeps delivering updates meanwhile
        taken = await offer(tg, third)
        exit_code = await asyncio.wait_for(service.process.wait(), 40)
        assert exit_code == 0

        after = await rows()
        assert after[0]["state"] == "submitted"  # persisted, waiting for the provider
        assert after[1]["state"] == "delivered"  # finished before exiting
        assert all(row["lease_owner"] is None for row in after)  # every lease given back
        if taken:
            # Either handled before the shutdown began (submitted like any other edit), or
            # recorded during it and left for the next run to submit (it serves the photo).
            assert (after[2]["state"], len(kie.tasks)) in {("submitted", 3), ("queued", 2)}
        else:  # refused: Telegram delivers it again later
            assert len(after) == 2
        kie.release_all()  # the provider finishes while the service is down
        await kie.wait_callbacks(1)

        await service.start(tg)
        if not taken:
            assert await offer(tg, third)
        try:
            await eventually(
                lambda: _states(rows(), ["delivered"] * 3), within=30, what="all three delivered"
            )
        except AssertionError as exc:
            details = [(r["state"], r["error_code"], r["task_id"]) for r in await rows()]
            raise AssertionError(f"{exc}: {details}") from None
        await kie.wait_for(lambda: not kie._background, within=30, what="callbacks to finish")
    finally:
        await service.close()

    sent = [call for call in tg.calls_of("sendPhoto") if call.ok]
    replied = sorted(call.params["reply_parameters"]["message_id"] for call in sent)
    assert replied == sorted(
        tg.message_of(update)["message_id"] for update in (first, second, third)
    )
    first_run = service.stderr(1)
    records = [json.loads(line) for line in first_run.splitlines() if line.strip()]
    assert not [r for r in records if r["level"] in ("ERROR", "CRITICAL")], "unclean shutdown"
    # Submissions stopped at the signal, before aiohttp stopped listening.
    assert any(r["msg"] == "signal received: no new submissions" for r in records)
    assert any(r["level"] == "DEBUG" for r in records)
    logs = service.stderr()
    for secret in (TOKEN, TOKEN.split(":")[1], KIE_KEY, HMAC_KEY):
        assert secret not in logs


async def _states(rows: Any, expected: list[str]) -> bool:
    return [row["state"] for row in await rows] == expected
