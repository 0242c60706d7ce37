"""Leases that hold under a live worker: waits longer than a lease change nothing.

A Telegram flood wait during a delivery, the provider's rate limiter and a 429 back-off
during a submission: each lasts several times the (scaled-down) lease, and the worker keeps
the edit all along, so nothing is sent, paid or reported twice and nobody is told their
edit was interrupted.
"""

from __future__ import annotations

import asyncio
import time

import sqlalchemy as sa

from domain.edit import EditState
from storage.schema import edits
from tests.conftest import CHAT_ID, BotStarter, RunningBot, SettingsFactory
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.reliability import quiesce, send_edit, sent_ok, to_chat

# One-second leases renewed five times a second; the waits below last three seconds or more.
SHORT_LEASES = {
    "SUBMIT_LEASE": 1,
    "DELIVERY_LEASE": 1,
    "NOTIFY_LEASE": 1,
    "POLL_LEASE": 1,
    "LEASE_RENEW_INTERVAL": 0.2,
}
TEXT_METHODS = ("sendMessage", "editMessageText")


async def lease_of(bot: RunningBot, edit_id: int) -> tuple[str, str | None, float | None]:
    """The edit's state, lease owner and lease expiry, as stored."""
    columns = (edits.c.state, edits.c.lease_owner, edits.c.lease_until)
    rows = await bot.services.db.execute(sa.select(*columns).where(edits.c.id == edit_id))
    row = rows.first()
    return (str(row[0]), row[1], row[2]) if row is not None else ("", None, None)


async def held_past_its_expiry(
    bot: RunningBot, edit_id: int, state: EditState, *, within: float = 10.0
) -> None:
    """The edit stays in `state` under one worker's lease after that lease, as first seen,
    would have run out: the live worker renewed it and nobody took the edit over."""
    deadline = time.monotonic() + within
    first: tuple[str, str | None, float | None] | None = None
    while time.monotonic() < deadline:
        now = time.time()
        current, owner, until = await lease_of(bot, edit_id)
        if current == state.value and owner is not None:
            if first is None:
                first = (current, owner, until)
            elif owner == first[1] and first[2] is not None and now > first[2]:
                return
        await asyncio.sleep(0.02)
    raise AssertionError(f"edit {edit_id}: no lease held in {state} past its expiry ({first})")


async def test_a_flood_wait_longer_than_the_delivery_lease_sends_one_result(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(**SHORT_LEASES))
    await tg.wait_for("setWebhook")
    retry_after = 3  # three delivery leases
    tg.fail(
        "sendPhoto", 429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after
    )
    message = await send_edit(bot, tg)
    await held_past_its_expiry(bot, 1, EditState.SUCCEEDED)
    await bot.wait_state(EditState.DELIVERED, within=20)
    await quiesce(bot)
    assert [call.status for call in tg.calls_of("sendPhoto")] == [429, 200]
    assert len(sent_ok(tg, "sendPhoto", message)) == 1


async def test_a_submission_held_longer_than_its_lease_is_created_and_delivered_once(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    # One task per three seconds, and the first create request refused with a 429 and a
    # back-off of 1.5-3 s: both edits wait several submit leases before their task exists.
    bot = await start_bot(
        make_settings(**SHORT_LEASES, KIE_RATE_LIMIT="1/3", PROVIDER_BACKOFF_BASE=3)
    )
    await tg.wait_for("setWebhook")
    kie.fail_next("/createTask", 429, "Request rate limit exceeded", http_status=True)
    first = await send_edit(bot, tg, "one")
    second = await send_edit(bot, tg, "two")
    # They wait while `queued` (nothing was sent: a crash there would be no uncertainty).
    await asyncio.gather(
        held_past_its_expiry(bot, 1, EditState.QUEUED),
        held_past_its_expiry(bot, 2, EditState.QUEUED),
    )
    for edit_id in (1, 2):
        await bot.wait_state(EditState.DELIVERED, edit_id, within=30)
    await quiesce(bot)
    creates = [path for _, path in kie.requests if path.endswith("/createTask")]
    assert len(creates) == 3  # the refused request, then one per edit
    assert len(kie.tasks) == 2
    edits = [await bot.edit(edit_id) for edit_id in (1, 2)]
    assert {edit.task_id for edit in edits} == set(kie.tasks)
    assert all(edit.error_code is None for edit in edits)
    for message in (first, second):
        assert len(sent_ok(tg, "sendPhoto", message)) == 1
    interrupted = bot.services.tr("en", "error.submit_interrupted")
    told = [call.params.get("text") for call in to_chat(tg, CHAT_ID, *TEXT_METHODS)]
    assert told and interrupted not in told


async def test_a_failure_notice_ending_during_a_late_delivery_leaves_its_lease_alone(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    # The create request times out, so the user is told the edit may not have started; the
    # task's callback arrives while that notice is still on its way, and the result's
    # delivery starts before the notice is recorded. Recording the notice must not give
    # back the delivery's lease: the sweeper would send the result a second time.
    bot = await start_bot(make_settings(**SHORT_LEASES, PROVIDER_TIMEOUT=0.3))
    await tg.wait_for("setWebhook")
    kie.slow_answers("/createTask", 2.0)  # the task exists; its id comes too late
    kie.next_outcome(delay=1.0)  # it finishes while the notice is being sent
    tg.delay("editMessageText", 1.5)
    tg.delay("sendPhoto", 2.0)
    message = await send_edit(bot, tg)
    await bot.wait_state(EditState.DELIVERED, within=20)
    await quiesce(bot)
    uncertain = bot.services.tr("en", "error.submit_uncertain")
    told = [call.params["text"] for call in tg.calls_of("editMessageText") if call.ok]
    assert told == [uncertain]
    assert (await bot.edit(1)).notified_at is not None
    assert len(kie.tasks) == 1
    assert len(sent_ok(tg, "sendPhoto", message)) == 1
