"""Every provider family through the real bot: fake Telegram <-> bot <-> fake provider.

For each family (KIE playground, Apikley, KIE 4o Image, odkkk): callback mode, status
polling, a failed task and documented error codes; plus KIE webhook signatures, the 4o
download-url fallback, the shared KIE rate limiter and /credits.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from bot.app import create_app
from bot.providers.base import SubmitRequest
from bot.providers.kie import signature
from domain.edit import EditState
from tests.conftest import (
    CHAT_ID,
    USER_ID,
    BotStarter,
    RunningBot,
    SettingsFactory,
    free_port,
)
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.odkkk import FakeOdkkk
from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram_server import ApiCall

APIKLEY_KEY = "apikley-test-key"
ODKKK_KEY = "odkkk-test-key"
ADMIN_ID = 9001
HMAC_KEY = "kie-webhook-hmac-key"

PLAYGROUND_MODEL = "kie-playground:qwen/image-edit"
APIKLEY_MODEL = "apikley:qwen/image-edit"
GPT4O_MODEL = "gpt-4o-image"
ODKKK_MODEL = "odkkk:qwen-image-edit"


@pytest.fixture
async def apikley() -> AsyncIterator[FakeKie]:
    fake = FakeKie(APIKLEY_KEY, flavor="apikley")
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def odkkk() -> AsyncIterator[FakeOdkkk]:
    fake = FakeOdkkk(ODKKK_KEY, callback_backoff=(0.05, 0.1, 0.2))
    await fake.start()
    yield fake
    await fake.stop()


async def deliver(bot: RunningBot, tg: FakeTelegram, update: dict[str, Any]) -> None:
    """Hand an update to the bot the way Telegram would in its mode."""
    if bot.settings.webhook_mode:
        assert await tg.post_webhook(update) == 200
    else:
        tg.push_update(update)


async def ready(bot: RunningBot, tg: FakeTelegram) -> None:
    if bot.settings.webhook_mode:
        await tg.wait_for("setWebhook")
    else:
        await tg.wait_until_polling()


def replies_to(message: dict[str, Any]) -> Any:
    def check(call: ApiCall) -> bool:
        reply = call.params.get("reply_parameters") or {}
        return bool(reply.get("message_id") == message["message_id"])

    return check


async def send_photo(
    bot: RunningBot, tg: FakeTelegram, caption: str, image: bytes | None = None
) -> dict[str, Any]:
    update = tg.photo_update(
        CHAT_ID, tg.user(USER_ID), image or make_jpeg(320, 240), caption=caption
    )
    await deliver(bot, tg, update)
    return tg.message_of(update)


async def expect_edit_delivered(
    bot: RunningBot, tg: FakeTelegram, caption: str, image: bytes | None = None
) -> None:
    message = await send_photo(bot, tg, caption, image)
    await tg.wait_for("sendPhoto", replies_to(message))


async def expect_failure_text(
    bot: RunningBot, tg: FakeTelegram, caption: str, fragment: str
) -> None:
    await send_photo(bot, tg, caption)
    await tg.wait_for("editMessageText", lambda c: fragment in c.params["text"])


def paths(fake: FakeKie | FakeOdkkk, fragment: str) -> list[str]:
    return [path for _, path in fake.requests if fragment in path]


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


# KIE playground -----------------------------------------------------------------------------


async def test_playground_with_callback(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(DEFAULT_MODEL=PLAYGROUND_MODEL, KIE_PLAYGROUND=True))
    await ready(bot, tg)
    image = make_jpeg(640, 480)
    await expect_edit_delivered(bot, tg, "add flowers", image)
    task = next(iter(kie.tasks.values()))
    assert task.api == "playground" and task.model == "qwen/image-edit"
    assert task.inputs == [image]
    assert task.callback_url is not None
    assert task.callback_url.startswith(f"{bot.url}/callbacks/kie-playground/1?token=")
    assert tg.files_sent_to(CHAT_ID) == task.results
    edit = await bot.wait_state(EditState.DELIVERED)
    assert edit.provider == "kie-playground" and edit.model == PLAYGROUND_MODEL
    assert not paths(kie, "recordInfo") and not paths(kie, "/jobs/")


async def test_playground_with_status_polling(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(
        make_settings(webhook=False, DEFAULT_MODEL=PLAYGROUND_MODEL, KIE_PLAYGROUND=True)
    )
    await ready(bot, tg)
    await expect_edit_delivered(bot, tg, "add flowers")
    task = next(iter(kie.tasks.values()))
    assert task.api == "playground" and task.callback_url is None
    assert paths(kie, "/api/v1/playground/recordInfo")
    assert "queuing" in task.history and "generating" in task.history
    await bot.wait_state(EditState.DELIVERED)


async def test_playground_failed_task_callback_with_code_501(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(DEFAULT_MODEL=PLAYGROUND_MODEL, KIE_PLAYGROUND=True))
    await ready(bot, tg)
    kie.next_outcome(fail=("500", "Internal server error"))
    await expect_failure_text(bot, tg, "x-ray", "couldn't edit this photo: Internal server error")
    callback = (await kie.wait_callbacks())[0]
    assert callback.body["code"] == 501 and callback.status == 200
    edit = await bot.wait_state(EditState.FAILED)
    assert edit.error_code == "task_failed:500"
    assert not tg.calls_of("sendPhoto")


async def test_playground_documented_error_codes(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(DEFAULT_MODEL=PLAYGROUND_MODEL, KIE_PLAYGROUND=True))
    await ready(bot, tg)
    create = "/playground/createTask"
    kie.fail_next(create, 401)
    await expect_failure_text(bot, tg, "a", "misconfigured")
    kie.fail_next(create, 402, http_status=True)
    await expect_failure_text(bot, tg, "b", "out of credits")
    kie.fail_next(create, 422, "input.num_inference_steps must be between 2 and 49")
    await expect_failure_text(bot, tg, "c", "rejected the request (num_inference_steps)")
    assert not kie.tasks
    assert all(path.startswith("/api/v1/playground/") for path in paths(kie, "createTask"))


# Apikley ----------------------------------------------------------------------------------


def apikley_settings(make_settings: SettingsFactory, apikley: FakeKie, **extra: Any) -> Any:
    return make_settings(
        DEFAULT_MODEL=APIKLEY_MODEL,
        APIKLEY_API_KEY=APIKLEY_KEY,
        APIKLEY_API_URL=apikley.url,
        **extra,
    )


async def test_apikley_with_callback(
    tg: FakeTelegram,
    kie: FakeKie,
    apikley: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
) -> None:
    bot = await start_bot(apikley_settings(make_settings, apikley))
    await ready(bot, tg)
    image = make_jpeg(600, 800)
    await expect_edit_delivered(bot, tg, "make it autumn", image)
    task = next(iter(apikley.tasks.values()))
    assert task.task_id.startswith("task_qwen_")
    assert task.request["input"]["image_size"] == "portrait_4_3"
    assert task.callback_url is not None
    assert task.callback_url.startswith(f"{bot.url}/callbacks/apikley/1?token=")
    assert task.inputs == [image]
    assert tg.files_sent_to(CHAT_ID) == task.results
    await bot.wait_state(EditState.DELIVERED)
    assert not kie.tasks and not paths(apikley, "recordInfo")


async def test_apikley_with_status_polling(
    tg: FakeTelegram,
    kie: FakeKie,
    apikley: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
) -> None:
    bot = await start_bot(apikley_settings(make_settings, apikley, webhook=False))
    await ready(bot, tg)
    image = make_jpeg(800, 450)
    await expect_edit_delivered(bot, tg, "make it autumn", image)
    task = next(iter(apikley.tasks.values()))
    assert task.callback_url is None
    assert task.request["input"]["image_url"].startswith(f"{kie.url}/files/")  # KIE upload
    assert task.inputs == [image]
    assert paths(apikley, "/api/v1/jobs/recordInfo")
    await bot.wait_state(EditState.DELIVERED)


async def test_apikley_failed_task(
    tg: FakeTelegram,
    apikley: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
) -> None:
    bot = await start_bot(apikley_settings(make_settings, apikley))
    await ready(bot, tg)
    apikley.next_outcome(fail=("500", "Internal server error"))
    await expect_failure_text(bot, tg, "x-ray", "couldn't edit this photo: Internal server error")
    assert (await bot.wait_state(EditState.FAILED)).error_code == "task_failed:500"


async def test_apikley_documented_error_codes(
    tg: FakeTelegram,
    apikley: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
) -> None:
    bot = await start_bot(apikley_settings(make_settings, apikley))
    await ready(bot, tg)
    apikley.fail_next("/createTask", 402)
    await expect_failure_text(bot, tg, "a", "out of credits")
    apikley.fail_next("/createTask", 422, "input.guidance_scale must be between 0 and 20")
    await expect_failure_text(bot, tg, "b", "rejected the request (guidance_scale)")
    apikley.fail_next("/createTask", 505)
    await expect_failure_text(bot, tg, "c", "disabled this feature")
    # 455 (maintenance) is retried with backoff, then the edit goes through.
    apikley.fail_next("/createTask", 455)
    await expect_edit_delivered(bot, tg, "d")
    assert len(paths(apikley, "createTask")) == 5 and len(apikley.tasks) == 1
    codes = [(await bot.edit(i)).error_code for i in (1, 2, 3)]
    assert codes == ["insufficient_credits", "validation:guidance_scale", "feature_disabled"]


# KIE 4o Image -------------------------------------------------------------------------------


async def test_4o_with_callback(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(DEFAULT_MODEL=GPT4O_MODEL))
    await ready(bot, tg)
    image = make_jpeg(900, 600)
    await expect_edit_delivered(bot, tg, "replace the sky", image)
    task = next(iter(kie.tasks.values()))
    assert task.api == "gpt4o" and task.task_id.startswith("task_4o_")
    body = task.request
    assert body["size"] == "3:2" and body["nVariants"] == 1
    assert body["filesUrl"][0].startswith(f"{bot.url}/files/")
    assert body["callBackUrl"].startswith(f"{bot.url}/callbacks/kie-4o/1?token=")
    assert task.inputs == [image]
    assert tg.files_sent_to(CHAT_ID) == task.results
    await bot.wait_state(EditState.DELIVERED)
    assert not paths(kie, "record-info")


async def test_4o_with_status_polling(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(webhook=False, DEFAULT_MODEL=GPT4O_MODEL))
    await ready(bot, tg)
    await expect_edit_delivered(bot, tg, "replace the sky", make_jpeg(400, 600))
    task = next(iter(kie.tasks.values()))
    assert task.callback_url is None and task.request["size"] == "2:3"
    assert paths(kie, "/api/v1/gpt4o-image/record-info")
    await bot.wait_state(EditState.DELIVERED)


async def test_4o_failed_task_by_callback(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(DEFAULT_MODEL=GPT4O_MODEL))
    await ready(bot, tg)
    kie.next_outcome(fail=("400", "Content policy violation"))
    await expect_failure_text(bot, tg, "a", "couldn't edit this photo: Content policy violation")
    callback = (await kie.wait_callbacks())[0]
    assert callback.body["data"] is None and callback.status == 200  # identified by URL
    assert (await bot.wait_state(EditState.FAILED)).error_code == "task_failed:400"
    assert not paths(kie, "record-info")


async def test_4o_failed_task_by_polling(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(webhook=False, DEFAULT_MODEL=GPT4O_MODEL))
    await ready(bot, tg)
    kie.next_outcome(fail=("451", "image download failed"))
    await expect_failure_text(bot, tg, "a", "couldn't edit this photo: image download failed")
    assert (await bot.wait_state(EditState.FAILED)).error_code == "task_failed:451"


async def test_4o_documented_error_codes(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(DEFAULT_MODEL=GPT4O_MODEL))
    await ready(bot, tg)
    generate = "/gpt4o-image/generate"
    kie.fail_next(generate, 401)
    await expect_failure_text(bot, tg, "a", "misconfigured")
    kie.fail_next(generate, 402)
    await expect_failure_text(bot, tg, "b", "out of credits")
    kie.fail_next(generate, 422, 'size must be one of "1:1", "3:2", "2:3"')
    await expect_failure_text(bot, tg, "c", "rejected the request (size)")
    assert not kie.tasks


async def test_4o_result_through_download_url_when_direct_fetch_is_refused(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    kie.refuse_direct_result_fetch = True
    bot = await start_bot(make_settings(DEFAULT_MODEL=GPT4O_MODEL))
    await ready(bot, tg)
    await expect_edit_delivered(bot, tg, "replace the sky")
    task = next(iter(kie.tasks.values()))
    assert paths(kie, "/api/v1/gpt4o-image/download-url")
    assert tg.files_sent_to(CHAT_ID) == task.results
    await bot.wait_state(EditState.DELIVERED)


# KIE webhook signatures ---------------------------------------------------------------------


async def test_signed_callbacks_are_accepted_also_for_failures_without_task_id(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    kie.hmac_key = HMAC_KEY
    bot = await start_bot(make_settings(DEFAULT_MODEL=GPT4O_MODEL, KIE_WEBHOOK_HMAC_KEY=HMAC_KEY))
    await ready(bot, tg)
    await expect_edit_delivered(bot, tg, "a")
    kie.next_outcome(fail=("500", "Internal error"))
    await expect_failure_text(bot, tg, "b", "couldn't edit this photo: Internal error")
    callbacks = await kie.wait_callbacks(2)
    assert all("X-Webhook-Signature" in c.headers for c in callbacks)
    for task_id in kie.tasks:  # each task's last delivery was accepted
        assert [c for c in callbacks if c.task_id == task_id][-1].status == 200
    assert not paths(kie, "record-info")


async def test_badly_signed_callbacks_are_refused_and_polling_takes_over(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    kie.hmac_key = "a-different-key"
    bot = await start_bot(
        make_settings(DEFAULT_MODEL=GPT4O_MODEL, KIE_WEBHOOK_HMAC_KEY=HMAC_KEY, CALLBACK_GRACE=0.5)
    )
    await ready(bot, tg)
    await expect_edit_delivered(bot, tg, "a")
    callbacks = await kie.wait_callbacks(1)
    assert all(c.status == 401 for c in callbacks)
    assert paths(kie, "record-info")  # the result came through status polling


async def test_stale_signature_is_refused_and_a_fresh_one_accepted(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    kie.hmac_key = HMAC_KEY
    bot = await start_bot(make_settings(DEFAULT_MODEL=GPT4O_MODEL, KIE_WEBHOOK_HMAC_KEY=HMAC_KEY))
    await ready(bot, tg)
    kie.next_outcome(callbacks=0)
    await send_photo(bot, tg, "a")
    task = await kie.wait_task()
    await bot.wait_state(EditState.SUBMITTED)
    assert task.callback_url is not None
    url = task.callback_url
    body = json.dumps(kie.callback_body(task))

    def headers(timestamp: int, key: str = HMAC_KEY) -> dict[str, str]:
        ts = str(timestamp)
        return {
            "Content-Type": "application/json",
            "X-Webhook-Timestamp": ts,
            "X-Webhook-Signature": signature(key, task.task_id, ts),
        }

    now = int(time.time())
    async with aiohttp.ClientSession() as session:
        for sent_headers, expected in (
            (headers(now - 3600), 401),  # stale
            (headers(now, key="wrong"), 401),  # bad
            ({"Content-Type": "application/json"}, 401),  # missing
            (headers(now), 200),  # valid
        ):
            async with session.post(url, data=body, headers=sent_headers) as resp:
                assert resp.status == expected
    await tg.wait_for("sendPhoto")
    await bot.wait_state(EditState.DELIVERED)


# odkkk --------------------------------------------------------------------------------------


def odkkk_settings(make_settings: SettingsFactory, odkkk: FakeOdkkk, **extra: Any) -> Any:
    return make_settings(
        DEFAULT_MODEL=ODKKK_MODEL, ODKKK_API_KEY=ODKKK_KEY, ODKKK_API_URL=odkkk.url, **extra
    )


async def test_odkkk_with_callback_behind_an_https_proxy(
    tg: FakeTelegram, odkkk: FakeOdkkk, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    port = free_port()
    settings = odkkk_settings(
        make_settings, odkkk, port=port, PUBLIC_BASE_URL="https://bot.test", STORAGE="local"
    )
    bot = await start_bot(settings)
    # A TLS proxy would forward https://bot.test to the bot: both fakes rewrite the URL.
    odkkk.url_rewrites = {"https://bot.test": bot.url}
    await tg.wait_for("setWebhook")
    assert tg.webhook_url == "https://bot.test/telegram"
    tg.webhook_url = f"{bot.url}/telegram"
    small = make_jpeg(200, 150)  # below odkkk's 384 px minimum side: upscaled
    await expect_edit_delivered(bot, tg, "replace the background", small)
    task = next(iter(odkkk.tasks.values()))
    assert task.request["model"] == "qwen-image-edit"
    assert task.request["prompt"] == "replace the background"
    assert task.request["image_urls"][0].startswith("https://bot.test/files/")
    assert task.callback_url is not None
    assert task.callback_url.startswith("https://bot.test/callbacks/odkkk/1?token=")
    assert odkkk.callbacks[0].status == 200
    assert size_of(task.inputs[0]) == (512, 384)
    assert tg.files_sent_to(CHAT_ID) == task.results
    await bot.wait_state(EditState.DELIVERED)
    assert not paths(odkkk, "/v1/tasks/")


async def test_odkkk_with_http_public_url_falls_back_to_polling(
    tg: FakeTelegram, odkkk: FakeOdkkk, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(odkkk_settings(make_settings, odkkk))
    await ready(bot, tg)
    await expect_edit_delivered(bot, tg, "replace the background", make_jpeg(640, 480))
    task = next(iter(odkkk.tasks.values()))
    assert "callback_url" not in task.request
    assert paths(odkkk, f"/v1/tasks/{task.task_id}")
    assert not odkkk.callbacks
    await bot.wait_state(EditState.DELIVERED)


async def test_odkkk_long_polling_with_a_configured_task_path_and_a_large_photo(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    async with FakeOdkkk(ODKKK_KEY, query_path="/v2/query/{id}") as odkkk:
        bot = await start_bot(
            odkkk_settings(make_settings, odkkk, webhook=False, ODKKK_TASK_PATH="/v2/query/{id}")
        )
        await ready(bot, tg)
        await expect_edit_delivered(bot, tg, "sharpen", make_jpeg(3500, 500))
        task = next(iter(odkkk.tasks.values()))
        assert task.request["image_urls"][0].startswith(f"{kie.url}/files/")  # KIE upload
        assert size_of(task.inputs[0]) == (3072, 439)
        assert paths(odkkk, "/v2/query/")
        await bot.wait_state(EditState.DELIVERED)


async def test_odkkk_failed_task(
    tg: FakeTelegram, odkkk: FakeOdkkk, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(odkkk_settings(make_settings, odkkk))
    await ready(bot, tg)
    odkkk.next_outcome(fail=("500", "model crashed"))
    await expect_failure_text(bot, tg, "x", "couldn't edit this photo: model crashed")
    assert (await bot.wait_state(EditState.FAILED)).error_code == "task_failed:500"


async def test_odkkk_documented_error_codes(
    tg: FakeTelegram, odkkk: FakeOdkkk, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(odkkk_settings(make_settings, odkkk, PROVIDER_MAX_RETRIES=0))
    await ready(bot, tg)
    odkkk.fail_next(400)
    await expect_failure_text(bot, tg, "a", "rejected the request (model)")
    odkkk.fail_next(401)
    await expect_failure_text(bot, tg, "b", "misconfigured")
    odkkk.fail_next(429)
    await expect_failure_text(bot, tg, "c", "overloaded")
    odkkk.fail_next(503)
    await expect_failure_text(bot, tg, "d", "unavailable right now")
    codes = [(await bot.edit(i)).error_code for i in (1, 2, 3, 4)]
    assert codes == ["validation:model", "provider_auth", "rate_limited", "unavailable"]
    assert not odkkk.tasks


async def test_odkkk_server_errors_are_retried(
    tg: FakeTelegram, odkkk: FakeOdkkk, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(odkkk_settings(make_settings, odkkk))
    await ready(bot, tg)
    odkkk.fail_next(502)
    odkkk.fail_next(500)
    await expect_edit_delivered(bot, tg, "x")
    assert len(paths(odkkk, "/v1/images/generations")) == 3 and len(odkkk.tasks) == 1


# Shared KIE limiter, DEFAULT_MODEL, /credits ------------------------------------------------


async def test_kie_families_share_one_limiter_so_a_burst_waits_instead_of_429(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    kie.rate_limit = (2, 0.3)  # the account's limit, enforced by the fake with HTTP 429
    bot = await start_bot(
        make_settings(KIE_PLAYGROUND=True, KIE_RATE_LIMIT="2/0.6", PROVIDER_MAX_RETRIES=0)
    )
    registry = bot.services.registry
    providers = [registry.provider(name) for name in ("kie", "kie-playground", "kie-4o")]
    limiters = {id(getattr(provider, "limiter", None)) for provider in providers}
    assert len(limiters) == 1
    image_url = f"{kie.url}/files/missing.jpg"
    submits = []
    for index, model_id in enumerate(
        ["qwen/image-edit", PLAYGROUND_MODEL, GPT4O_MODEL, "qwen/image-edit", GPT4O_MODEL]
    ):
        spec = registry.model(model_id)
        request = SubmitRequest(model=spec, prompt=f"burst {index}", image_urls=(image_url,))
        submits.append(registry.provider(spec.provider).submit(request))
    task_ids = await asyncio.gather(*submits)  # a 429 would raise RateLimited here
    assert len(set(task_ids)) == 5 and len(kie.tasks) == 5
    creates = [p for p in kie.requests if p[1].endswith(("/createTask", "/generate"))]
    assert len(creates) == 5


async def test_default_model_must_be_enabled(make_settings: SettingsFactory) -> None:
    runner = web.AppRunner(create_app(make_settings(DEFAULT_MODEL=PLAYGROUND_MODEL)))
    try:
        with pytest.raises(RuntimeError) as info:
            await runner.setup()
    finally:
        await runner.cleanup()
    assert "DEFAULT_MODEL=kie-playground:qwen/image-edit" in str(info.value)
    assert "gpt-4o-image" in str(info.value)


async def test_credits_for_admins_only(
    tg: FakeTelegram, kie: FakeKie, polling_bot: RunningBot
) -> None:
    await ready(polling_bot, tg)
    kie.credits = 1234.5
    tg.push_update(tg.text_update(ADMIN_ID, tg.user(ADMIN_ID), "/credits"))
    answer = await tg.wait_for("sendMessage", lambda c: c.params["chat_id"] == ADMIN_ID)
    assert answer[0].params["text"] == "💰 KIE credits left: 1234.5"
    assert paths(kie, "/api/v1/chat/credit")
    tg.push_update(tg.text_update(CHAT_ID, tg.user(USER_ID, language_code="ru"), "/credits"))
    refusal = await tg.wait_for("sendMessage", lambda c: c.params["chat_id"] == CHAT_ID)
    assert refusal[0].params["text"] == "🔒 Баланс кредитов видят только владельцы бота."
    assert len(paths(kie, "/api/v1/chat/credit")) == 1
    kie.fail_next("/chat/credit", 401)
    tg.push_update(tg.text_update(ADMIN_ID, tg.user(ADMIN_ID), "/credits"))
    failed = await tg.wait_for("sendMessage", lambda c: c.params["chat_id"] == ADMIN_ID, count=2)
    assert failed[1].params["text"] == (
        "😔 KIE did not tell the credits (provider_auth). Please try again later."
    )


async def test_credits_when_kie_is_not_configured(
    tg: FakeTelegram,
    kie: FakeKie,
    odkkk: FakeOdkkk,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
) -> None:
    bot = await start_bot(odkkk_settings(make_settings, odkkk, KIE_API_KEY=None))
    await ready(bot, tg)
    assert set(bot.services.registry.providers) == {"odkkk"}
    await tg.post_webhook(tg.text_update(ADMIN_ID, tg.user(ADMIN_ID), "/credits"))
    answer = await tg.wait_for("sendMessage", lambda c: c.params["chat_id"] == ADMIN_ID)
    assert "no KIE account" in answer[0].params["text"]
    assert not kie.requests
