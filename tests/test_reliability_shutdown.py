"""Graceful shutdown: SIGTERM to the real service (`python -m bot`) with work in flight.

It stops taking new work, finishes what it is doing (a result being sent), persists what
waits on others (a task still running at the provider), gives every lease back and exits
with status 0; the next run picks everything up and nothing is lost or sent twice.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import SHUTDOWN_GRACE
from tests.conftest import CHAT_ID, KIE_KEY, TOKEN, USER_ID, free_port
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.reliability import Service, eventually, read_rows, sent_ok, service_env

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


async def test_sigterm_leaves_edits_waiting_for_the_rate_limiter_queued_for_the_next_run(
    tg: WatchedTelegram, kie: FakeKie, tmp_path: Path
) -> None:
    """150 edits wait for the provider's rate limiter (one task a second) when SIGTERM
    arrives: none of them is sent any more, the process exits within its grace period, and
    the next run submits every one of them, once."""
    data_dir = tmp_path / "data"
    env = service_env(tg, kie, data_dir, free_port()) | {
        "KIE_WEBHOOK_HMAC_KEY": HMAC_KEY,
        "KIE_RATE_LIMIT": "1/1",
    }
    service = Service(env, tmp_path)
    db_url = f"sqlite+aiosqlite:///{(data_dir / 'bot.sqlite3').resolve()}"

    async def rows() -> list[dict[str, Any]]:
        return await read_rows(db_url)

    count = 150
    updates = [photo(tg, f"edit {n}") for n in range(count)]
    try:
        await service.start(tg)
        for update in updates:
            assert await tg.post_webhook(update) == 200
        # Every photo is prepared (stored for the provider): all that is left is the wait.
        files = data_dir / "files"
        await eventually(
            lambda: files.is_dir() and len(list(files.iterdir())) >= count,
            within=90,
            what="every input photo stored",
        )
        # Signal right after a task was created: the limiter holds the next one back for a
        # second, so no create request is on the wire when the signal arrives.
        created = len(kie.tasks)
        await eventually(lambda: len(kie.tasks) > created, within=10, what="a task created")
        at_signal = len(kie.tasks)
        signalled = time.monotonic()
        assert service.process is not None
        service.process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.wait_for(service.process.wait(), SHUTDOWN_GRACE + 10)
        assert exit_code == 0
        assert time.monotonic() - signalled < SHUTDOWN_GRACE
        assert len(kie.tasks) == at_signal  # no task created after the signal
        after = await rows()
        assert len(after) == count
        assert all(row["lease_owner"] is None for row in after)
        left = [row for row in after if row["state"] == "queued"]
        assert len(left) == count - at_signal  # durably queued, nothing failed
        assert all(row["blob_keys"] is None for row in left)  # their photos are prepared anew

        service.env["KIE_RATE_LIMIT"] = "1000/1"
        await service.start(tg)
        try:
            await eventually(
                lambda: _states(rows(), ["delivered"] * count),
                within=120,
                what="every edit delivered",
            )
        except AssertionError as exc:
            states = sorted({(r["state"], r["error_code"]) for r in await rows()}, key=str)
            raise AssertionError(f"{exc}: {states}") from None
        await kie.wait_for(lambda: not kie._background, within=30, what="callbacks to finish")
    finally:
        await service.close()

    creates = [path for _, path in kie.requests if path.endswith("/createTask")]
    assert len(creates) == len(kie.tasks) == count  # each edit's task created once
    for update in updates:
        assert len(sent_ok(tg, "sendPhoto", tg.message_of(update))) == 1
    records = [json.loads(line) for line in service.stderr(1).splitlines() if line.strip()]
    assert not [r for r in records if r["level"] in ("ERROR", "CRITICAL")], "unclean shutdown"


async def _states(rows: Any, expected: list[str]) -> bool:
    return [row["state"] for row in await rows] == expected
