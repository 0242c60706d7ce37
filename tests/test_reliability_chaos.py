"""Chaos: SIGKILL the real service (`python -m bot`, webhook mode) with many edits in flight
while provider callbacks keep arriving, restart it on the same DATA_DIR, and check that
every edit is delivered exactly once.

36 edits in three groups of 12, by what their provider task does:

* A finishes at once (its callback is POSTed three times): delivered before the crash;
* B is held, then finishes just before the crash: callbacks (three each, retried) arrive
  while Telegram is refusing sendPhoto, deliveries are being retried when SIGKILL lands,
  and the callbacks go on hitting the dead port;
* C finishes while the service is down: every callback attempt fails, so after the
  restart only the sweeper's status queries can find the results.

Telegram refuses sendPhoto (502) from before B finishes until after the restart, so the
SIGKILL never lands between Telegram accepting a photo and the database recording it (the
one window in which a crash can repeat a send; see test_reliability_telegram and the
README). The dead process's leases are expired at once instead of waited out (5 min).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import CHAT_ID, KIE_KEY, TOKEN, USER_ID, free_port
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.reliability import (
    Service,
    eventually,
    let_leases_run_out,
    read_rows,
    service_env,
)

HMAC_KEY = "chaos-hmac-key"
GROUP = 12


@pytest.fixture
async def kie() -> AsyncIterator[FakeKie]:
    """Callbacks retried over ~2 s, so they keep arriving across the crash."""
    fake = FakeKie(KIE_KEY, hmac_key=HMAC_KEY, callback_backoff=(0.3, 0.6, 1.2))
    await fake.start()
    yield fake
    await fake.stop()


async def test_sigkill_with_edits_in_flight_loses_nothing_and_repeats_nothing(
    tg: FakeTelegram, kie: FakeKie, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = service_env(tg, kie, data_dir, free_port()) | {"KIE_WEBHOOK_HMAC_KEY": HMAC_KEY}
    service = Service(env, tmp_path)
    db_url = f"sqlite+aiosqlite:///{(data_dir / 'bot.sqlite3').resolve()}"
    outage = {"on": False}
    tg.fail("sendPhoto", 502, "Bad Gateway", times=10**6, when=lambda _: outage["on"])
    messages: list[dict[str, object]] = []

    async def send(count: int, *, hold: bool = False) -> None:
        for n in range(count):
            # Held tasks (B, C) repeat their callback half a second apart, so B's repeats
            # are still coming when the service dies.
            kie.next_outcome(callbacks=3, hold=hold, callback_gap=0.5 if hold else 0.0)
            update = tg.photo_update(
                CHAT_ID,
                tg.user(USER_ID),
                make_jpeg(96, 64, (n * 7 % 255, 90, 160)),
                caption=f"edit number {len(messages)}",
            )
            messages.append(tg.message_of(update))
            assert await tg.post_webhook(update) == 200

    async def states_are(exactly: bool = True, **expected: int) -> bool:
        counts = Counter(row["state"] for row in await read_rows(db_url))
        if exactly:
            return all(counts[state] == n for state, n in expected.items())
        return all(counts[state] >= n for state, n in expected.items())

    try:
        await service.start(tg)
        # A: delivered (and recorded) before anything goes wrong.
        await send(GROUP)
        await eventually(lambda: states_are(delivered=GROUP), within=30, what="A delivered")
        # B and C: submitted, their tasks held at the provider.
        await send(2 * GROUP, hold=True)
        await eventually(
            lambda: states_are(delivered=GROUP, submitted=2 * GROUP),
            within=30,
            what="groups B and C submitted",
        )
        ids = list(kie.tasks)
        group_b, group_c = ids[GROUP : 2 * GROUP], ids[2 * GROUP :]

        # Telegram starts refusing photos; B finishes; callbacks pour in.
        outage["on"] = True
        for task_id in group_b:
            kie.release(task_id)
        await eventually(
            lambda: states_are(False, succeeded=GROUP // 2),
            within=30,
            what="half of B recorded as succeeded",
        )
        await eventually(lambda: any(c.status == 502 for c in tg.calls_of("sendPhoto")))
        await service.kill()
        await kie.wait_for(
            lambda: any(not a.ok for a in kie.callbacks if a.task_id in group_b),
            within=10,
            what="a B callback hitting the dead port",
        )

        # Down: C finishes, and every callback attempt fails.
        for task_id in group_c:
            kie.release(task_id)
        for task_id in group_c:
            await kie.wait_callbacks(1, task_id=task_id, within=20)
        assert all(not attempt.ok for attempt in kie.callbacks if attempt.task_id in group_c)
        down = await read_rows(db_url)
        assert Counter(row["state"] for row in down)["delivered"] == GROUP

        # Restart on the same data; Telegram is back.
        outage["on"] = False
        await let_leases_run_out(db_url)
        await service.start(tg)
        await eventually(
            lambda: states_are(delivered=3 * GROUP), within=40, what="every edit delivered"
        )
        # Let the provider's callback retries run out, then nothing more may happen.
        await kie.wait_for(lambda: not kie._background, within=30, what="callbacks to finish")
        await eventually(lambda: _delivered_once(tg, messages), what="one photo per request")
    finally:
        await service.close()

    rows = await read_rows(db_url)
    assert [row["state"] for row in rows] == ["delivered"] * 3 * GROUP
    assert len({row["task_id"] for row in rows}) == 3 * GROUP
    creates = [path for _, path in kie.requests if path.endswith("/createTask")]
    assert len(creates) == len(kie.tasks) == 3 * GROUP  # nothing was submitted twice
    per_message = Counter(
        call.params["reply_parameters"]["message_id"]
        for call in tg.calls_of("sendPhoto")
        if call.ok
    )
    assert sorted(per_message.values()) == [1] * 3 * GROUP
    assert set(per_message) == {message["message_id"] for message in messages}
    for row in rows:
        task = kie.tasks[row["task_id"]]
        [sent] = [
            call
            for call in tg.calls_of("sendPhoto")
            if call.ok and call.params["reply_parameters"]["message_id"] == row["message_id"]
        ]
        assert sent.files["photo"] == task.results[0]  # each user got their own result
    # The B callbacks hit the dead process (and the C ones everything but the new one).
    assert any(not a.ok for a in kie.callbacks if a.task_id in group_b)
    logs = service.stderr()
    for secret in (TOKEN, TOKEN.split(":")[1], KIE_KEY, HMAC_KEY):
        assert secret not in logs


def _delivered_once(tg: FakeTelegram, messages: list[dict[str, object]]) -> bool:
    ok = [call for call in tg.calls_of("sendPhoto") if call.ok]
    return len(ok) == len(messages)
