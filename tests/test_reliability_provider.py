"""Provider faults (timeouts, 5xx, 429, 402) and result downloads (scheme, size, content)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from bot.providers.transport import RetryPolicy
from domain.edit import Edit, EditState
from tests.conftest import KIE_KEY, BotStarter, RunningBot, SettingsFactory
from tests.fakes.images import make_jpeg, make_noise_png
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.reliability import (
    ContentServer,
    callback_url,
    post,
    quiesce,
    send_edit,
    sent_ok,
    success_body,
    to_chat,
)

ADMIN_ID = 9001


class SlowKie(FakeKie):
    """FakeKie whose createTask answers only after `create_delay` seconds (and then still
    creates the task, as a real server that finishes a request its client gave up on)."""

    create_delay = 0.0

    async def _jobs_create(self, request: web.Request) -> web.Response:
        await request.read()  # the request arrived whole; only the answer is late
        if self.create_delay:
            await asyncio.sleep(self.create_delay)
        return await super()._jobs_create(request)


@pytest.fixture
async def slow_kie() -> AsyncIterator[SlowKie]:
    fake = SlowKie(KIE_KEY)
    await fake.start()
    yield fake
    await fake.stop()


def creates(kie: FakeKie) -> int:
    return len([path for _, path in kie.requests if path.endswith("/createTask")])


async def notice(tg: FakeTelegram, bot: RunningBot, key: str, count: int = 1) -> None:
    text = bot.services.tr("en", key)
    await tg.wait_for("editMessageText", lambda c: c.params["text"] == text, count=count)


async def test_create_timeout_is_never_retried_and_the_user_is_told(
    tg: FakeTelegram, slow_kie: SlowKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    kie = slow_kie
    kie.create_delay = 1.0
    bot = await start_bot(
        make_settings(KIE_API_URL=kie.url, KIE_UPLOAD_URL=kie.url, PROVIDER_TIMEOUT=0.3)
    )
    await tg.wait_for("setWebhook")
    message = await send_edit(bot, tg)
    failed = await bot.wait_state(EditState.FAILED)
    assert failed.error_code == "submit_uncertain"
    await notice(tg, bot, "error.submit_uncertain")
    # The provider did create the task after all; its callback delivers the result.
    await bot.wait_state(EditState.DELIVERED)
    await quiesce(bot)
    assert creates(kie) == 1 and len(kie.tasks) == 1  # never sent twice
    task = next(iter(kie.tasks.values()))
    [sent] = sent_ok(tg, "sendPhoto", message)
    assert sent.files["photo"] == task.results[0]


async def test_server_errors_and_rate_limits_are_retried_then_explained(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(PROVIDER_MAX_RETRIES=2))
    await tg.wait_for("setWebhook")
    kie.fail_next("/createTask", 500, "Internal server error", times=3)
    await send_edit(bot, tg, "one")
    await notice(tg, bot, "error.unavailable")
    assert creates(kie) == 3  # the first try and two retries, then a clear message
    kie.fail_next("/createTask", 429, "Request rate limit exceeded", http_status=True, times=3)
    await send_edit(bot, tg, "two")
    await notice(tg, bot, "error.rate_limited")
    assert creates(kie) == 6 and not kie.tasks
    assert (await bot.edit(1)).error_code == "unavailable"
    assert (await bot.edit(2)).error_code == "rate_limited"


def test_backoff_is_exponential_with_jitter_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_retries=5, backoff_base=1.0, backoff_max=30.0)
    for attempt in range(8):
        ceiling = min(30.0, 2.0**attempt)
        delays = {policy.delay(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(delays) > 1  # jittered, so clients do not retry in lockstep
    assert policy.delay(0, retry_after=7.0) == 7.0


async def test_out_of_credits_alerts_admins_once_per_incident(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    kie.fail_next("/createTask", 402, "Insufficient credits", times=3)
    for n in range(3):
        await send_edit(webhook_bot, tg, f"edit {n}")
    await notice(tg, webhook_bot, "error.insufficient_credits", count=3)
    await quiesce(webhook_bot)
    assert len(to_chat(tg, ADMIN_ID, "sendMessage")) == 1

    await send_edit(webhook_bot, tg, "credits are back")  # the incident is over ...
    await webhook_bot.wait_state(EditState.DELIVERED, 4)
    kie.fail_next("/createTask", 402, "Insufficient credits")
    await send_edit(webhook_bot, tg, "and gone again")  # ... a new one starts
    await notice(tg, webhook_bot, "error.insufficient_credits", count=4)
    await quiesce(webhook_bot)
    alerts = to_chat(tg, ADMIN_ID, "sendMessage")
    assert len(alerts) == 2
    assert all("insufficient_credits" in call.params["text"] for call in alerts)
    assert KIE_KEY not in json.dumps([call.params for call in alerts])


async def held(bot: RunningBot, tg: FakeTelegram, kie: FakeKie) -> tuple[dict[str, Any], Edit]:
    await tg.wait_for("setWebhook")
    kie.next_outcome(hold=True, callbacks=0)
    message = await send_edit(bot, tg)
    return message, await bot.wait_state(EditState.SUBMITTED)


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://127.0.0.1/r.png", "gopher://x/", "data:image/png;base64,AA"],
)
async def test_result_url_with_another_scheme_is_refused(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot, url: str
) -> None:
    message, edit = await held(webhook_bot, tg, kie)
    body = success_body(edit.task_id or "", url)
    status, _ = await post(callback_url(webhook_bot, edit), json_body=body)
    assert status == 200
    failed = await webhook_bot.wait_state(EditState.FAILED)
    assert failed.error_code == "result_url_scheme"
    await notice(tg, webhook_bot, "error.result_url_scheme")
    assert not sent_ok(tg, "sendPhoto", message)


async def test_oversized_result_is_refused(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(MAX_RESULT_BYTES=20_000))
    await tg.wait_for("setWebhook")
    message = await send_edit(bot, tg, image=make_noise_png(200, 200))
    failed = await bot.wait_state(EditState.FAILED)
    assert failed.error_code == "result_too_large"
    await notice(tg, bot, "error.result_too_large")
    assert not sent_ok(tg, "sendPhoto", message)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html>not found</html>", "text/html"),
        (b"", "image/png"),
        (make_jpeg(64, 64)[:200], "image/jpeg"),  # truncated
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png"),
    ],
)
async def test_result_that_is_not_an_image_is_refused(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot, body: bytes, content_type: str
) -> None:
    message, edit = await held(webhook_bot, tg, kie)
    async with ContentServer({"/r.png": (body, content_type)}) as cdn:
        payload = success_body(edit.task_id or "", f"{cdn.url}/r.png")
        status, _ = await post(callback_url(webhook_bot, edit), json_body=payload)
        assert status == 200
        failed = await webhook_bot.wait_state(EditState.FAILED)
    assert failed.error_code == "result_not_image"
    await notice(tg, webhook_bot, "error.result_not_image")
    assert not sent_ok(tg, "sendPhoto", message)
