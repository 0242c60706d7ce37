"""Provider callbacks under duplicates, forgeries, late arrivals and malformed bodies.

Every refused callback gets a 4xx and leaves the edit's row exactly as it was; every
accepted duplicate leads to one delivery.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.web.callbacks import MAX_CALLBACK_BYTES
from domain.edit import EditState
from tests.conftest import KIE_KEY, BotStarter, RunningBot, SettingsFactory
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.reliability import callback_url, post, quiesce, send_edit, sent_ok, success_body
from tests.test_fast_paths import count_transactions

HMAC_KEY = "reliability-hmac-key"
DUMMY = "http://127.0.0.1:9/r.png"


async def held_edit(bot: RunningBot, tg: FakeTelegram, kie: FakeKie) -> tuple[Any, Any]:
    """An edit submitted to the provider whose task waits for `kie.release`."""
    await tg.wait_for("setWebhook")
    kie.next_outcome(hold=True)
    message = await send_edit(bot, tg)
    edit = await bot.wait_state(EditState.SUBMITTED)
    return message, edit


async def test_duplicate_callbacks_deliver_once(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    kie.next_outcome(callbacks=3)
    message = await send_edit(webhook_bot, tg)
    attempts = await kie.wait_callbacks(3)
    assert [attempt.status for attempt in attempts] == [200, 200, 200]
    await webhook_bot.wait_state(EditState.DELIVERED)
    await quiesce(webhook_bot)

    # The provider's retry long after: the same body again, by hand.
    first = attempts[0]
    for _ in range(2):
        status, body = await post(first.sent_url, data=json.dumps(first.body).encode())
        assert status == 200 and json.loads(body)["state"] == "delivered"
    await quiesce(webhook_bot)
    assert len(sent_ok(tg, "sendPhoto", message)) == 1
    assert len(tg.calls_of("sendPhoto")) == 1
    metrics = (await post(f"{webhook_bot.url}/metrics", method="GET"))[1].decode()
    assert 'bot_callbacks_total{provider="kie",result="applied"} 1.0' in metrics
    assert 'bot_callbacks_total{provider="kie",result="duplicate"} 4.0' in metrics


async def test_forged_callbacks_are_refused_and_change_nothing(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    message, edit = await held_edit(webhook_bot, tg, kie)
    assert edit.task_id is not None
    good = json.dumps(success_body(edit.task_id, DUMMY)).encode()
    other = webhook_bot.url

    cases: list[tuple[str, bytes, int]] = [
        # unknown edit ids (and ids that are not ids at all)
        (f"{other}/callbacks/kie/999999?token={edit.callback_token}", good, 404),
        (f"{other}/callbacks/kie/0?token={edit.callback_token}", good, 404),
        (f"{other}/callbacks/kie/-1?token={edit.callback_token}", good, 404),
        (f"{other}/callbacks/kie/{'9' * 40}?token={edit.callback_token}", good, 404),
        (f"{other}/callbacks/kie/1_0?token={edit.callback_token}", good, 404),
        (f"{other}/callbacks/odkkk/{edit.id}?token={edit.callback_token}", good, 404),
        (f"{other}/callbacks/nosuch/{edit.id}?token={edit.callback_token}", good, 404),
        # wrong or missing token: answered like an unknown edit (issue 16)
        (callback_url(webhook_bot, edit, token="x" * 32), good, 404),
        (callback_url(webhook_bot, edit, token=""), good, 404),
        (f"{other}/callbacks/kie/{edit.id}", good, 404),
        # the right token, but a task id that is not the edit's
        (callback_url(webhook_bot, edit), json.dumps(success_body("f" * 32, DUMMY)).encode(), 409),
        # malformed bodies
        (callback_url(webhook_bot, edit), b"{not json", 400),
        (callback_url(webhook_bot, edit), b"\xff\xfe\x00", 400),
        (callback_url(webhook_bot, edit), b"[" * 100_000, 400),
        (callback_url(webhook_bot, edit), b'{"code": NaN}', 400),
        (callback_url(webhook_bot, edit), b'{"data": {"taskId": "\\ud800"}}', 400),
        (callback_url(webhook_bot, edit), b'{"data": {"taskId": "\xed\xa0\x80"}}', 400),
        (callback_url(webhook_bot, edit), '{"data": {"taskId": "x"}}'.encode("utf-16"), 400),
        (callback_url(webhook_bot, edit), b'{"credits": 1' + b"0" * 40 + b"}", 400),
        (callback_url(webhook_bot, edit), b"[]", 400),
        (callback_url(webhook_bot, edit), b'{"code": 200, "data": {"state": "weird"}}', 400),
        # oversized
        (callback_url(webhook_bot, edit), b" " * (MAX_CALLBACK_BYTES + 1), 413),
    ]
    for url, body, expected in cases:
        status, _ = await post(url, data=body, headers={"Content-Type": "application/json"})
        assert status == expected, (url, body[:60], status)
        assert await webhook_bot.edit(edit.id) == edit, (url, body[:60])

    # Oversized without a Content-Length (chunked) is cut off just the same.
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b" " * (MAX_CALLBACK_BYTES // 4)

    status, _ = await post(callback_url(webhook_bot, edit), data=chunks())  # type: ignore[arg-type]
    assert status == 413
    assert await webhook_bot.edit(edit.id) == edit

    # The service is unharmed: the genuine callback still completes the edit, once.
    kie.release(edit.task_id)
    await webhook_bot.wait_state(EditState.DELIVERED, edit.id)
    await quiesce(webhook_bot)
    assert len(sent_ok(tg, "sendPhoto", message)) == 1
    metrics = (await post(f"{webhook_bot.url}/metrics", method="GET"))[1].decode()
    for result in ("unknown_edit", "bad_token", "task_mismatch", "malformed", "too_large"):
        assert f'result="{result}"' in metrics
    assert 'provider="nosuch"' not in metrics  # labels never come from the request


async def test_a_body_split_into_small_chunks_is_read_whole(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    message, edit = await held_edit(webhook_bot, tg, kie)
    kie.release(edit.task_id)
    attempt = (await kie.wait_callbacks(1))[0]
    await webhook_bot.wait_state(EditState.DELIVERED, edit.id)
    raw = json.dumps(attempt.body).encode()

    async def trickle() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 7):
            yield raw[start : start + 7]

    status, body = await post(attempt.sent_url, data=trickle())  # type: ignore[arg-type]
    assert status == 200 and json.loads(body)["state"] == "delivered"
    await quiesce(webhook_bot)
    assert len(sent_ok(tg, "sendPhoto", message)) == 1


async def test_late_callback_after_the_edit_expired_changes_nothing(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(CALLBACK_GRACE=0.1, TASK_TIMEOUT=0.5))
    message, edit = await held_edit(bot, tg, kie)
    expired = await bot.wait_state(EditState.EXPIRED, edit.id)
    await tg.wait_for("editMessageText", lambda c: "took too long" in c.params["text"])

    kie.release(edit.task_id)  # the provider finishes after all and calls back
    attempt = (await kie.wait_callbacks(1))[0]
    assert attempt.status == 200  # acknowledged, so the provider stops retrying ...
    await quiesce(bot)
    after = await bot.edit(edit.id)
    assert after.state is EditState.EXPIRED  # ... but nothing changed
    assert after.result_urls == [] and after.finished_at == expired.finished_at
    assert not tg.calls_of("sendPhoto") and not sent_ok(tg, "sendPhoto", message)


@pytest.fixture
async def signed_kie() -> AsyncIterator[FakeKie]:
    fake = FakeKie(KIE_KEY, hmac_key=HMAC_KEY)
    await fake.start()
    yield fake
    await fake.stop()


async def test_kie_signature_is_required_when_a_key_is_set(
    tg: FakeTelegram, signed_kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    kie = signed_kie
    settings = make_settings(
        KIE_API_URL=kie.url, KIE_UPLOAD_URL=kie.url, KIE_WEBHOOK_HMAC_KEY=HMAC_KEY
    )
    bot = await start_bot(settings)
    message, edit = await held_edit(bot, tg, kie)
    task_id = edit.task_id
    assert task_id is not None
    url = callback_url(bot, edit)
    body = json.dumps(success_body(task_id, DUMMY)).encode()
    now = str(int(time.time()))
    stale = str(int(time.time()) - 3600)
    forged: list[dict[str, str]] = [
        {},  # unsigned
        {"X-Webhook-Timestamp": now},
        {"X-Webhook-Timestamp": now, "X-Webhook-Signature": "AAAA"},
        {"X-Webhook-Timestamp": now, "X-Webhook-Signature": kie.sign("another-task", now)},
        {"X-Webhook-Timestamp": stale, "X-Webhook-Signature": kie.sign(task_id, stale)},
        {"X-Webhook-Timestamp": "soon", "X-Webhook-Signature": kie.sign(task_id, "soon")},
    ]
    for headers in forged:
        status, _ = await post(url, data=body, headers=headers)
        assert status == 401, headers
        assert await bot.edit(edit.id) == edit

    # A signature made with another key (the right format, the wrong secret).
    impostor = FakeKie(KIE_KEY, hmac_key="not-the-real-key")
    headers = {"X-Webhook-Timestamp": now, "X-Webhook-Signature": impostor.sign(task_id, now)}
    assert (await post(url, data=body, headers=headers))[0] == 401
    assert await bot.edit(edit.id) == edit

    kie.release(task_id)  # the genuine, signed callback is accepted
    await bot.wait_state(EditState.DELIVERED, edit.id)
    await quiesce(bot)
    assert len(sent_ok(tg, "sendPhoto", message)) == 1
    assert [attempt.status for attempt in kie.callbacks] == [200]


async def test_unauthenticated_callbacks_reach_no_parser_and_write_nothing(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 16: a deeply nested `resultJson` is answered like an unknown edit without
    the token, with 400 (never 500) with it; refused requests run no write statement."""
    _, edit = await held_edit(webhook_bot, tg, kie)
    assert edit.task_id is not None
    await quiesce(webhook_bot)  # the photo's own update is marked done after the submission
    nested = success_body(edit.task_id, DUMMY)
    nested["data"]["resultJson"] = '{"resultUrls": ' + "[" * 100_000 + "]" * 100_000 + "}"
    raw = json.dumps(nested).encode()
    unknown = f"{webhook_bot.url}/callbacks/kie/{edit.id + 1000}?token={edit.callback_token}"
    wrong = "A" * len(edit.callback_token)
    answers = []
    with count_transactions(webhook_bot.services.db) as counts:
        for url, body in [
            (unknown, raw),
            (callback_url(webhook_bot, edit, token=wrong), raw),
            (callback_url(webhook_bot, edit, token="nope"), raw),
            (f"{webhook_bot.url}/callbacks/odkkk/{edit.id}?token={edit.callback_token}", raw),
            (callback_url(webhook_bot, edit, token=wrong), b"{not json"),
        ]:
            answers.append(await post(url, data=body))
    assert answers == [answers[0]] * 5 and answers[0][0] == 404
    assert counts["writing"] == 0, counts
    status, _ = await post(callback_url(webhook_bot, edit), data=raw)
    assert status == 400
    assert await webhook_bot.edit(edit.id) == edit
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
