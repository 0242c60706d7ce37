"""Every provider family through the real bot: fake Telegram <-> bot <-> fake provider.

One test per scenario, run for each family (KIE playground, Apikley, KIE 4o Image, odkkk):
callback mode, status polling, a failed task, documented error codes, retried server
errors. Then what only some families have: KIE webhook signatures, the 4o download-url
fallback, odkkk's https-only callbacks, the shared KIE rate limiter and /credits.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from functools import partial
from typing import Any, Literal

import aiohttp
import pytest
from PIL import Image

from bot.app import create_app
from bot.config import Settings
from bot.providers.kie import signature
from bot.startup import StartupError
from bot.web import make_runner
from domain.edit import EditState
from storage.chat_settings import ChatPrefs
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
PROXY = "https://bot.test"
CAPTION = "replace the background"

PLAYGROUND_MODEL = "kie-playground:qwen/image-edit"
APIKLEY_MODEL = "apikley:qwen/image-edit"
GPT4O_MODEL = "gpt-4o-image"
ODKKK_MODEL = "odkkk:qwen-image-edit"


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


# The provider families ----------------------------------------------------------------------

FakeProvider = FakeKie | FakeOdkkk


@dataclass(frozen=True)
class Family:
    """How the scenarios below meet one provider family: its model, fake server and paths."""

    provider: str
    model: str
    server: Literal["kie", "apikley", "odkkk"]
    create_path: str
    photo_field: str  # where the create body names the (first) photo, dotted
    settings: Callable[[FakeProvider], dict[str, Any]]

    @asynccontextmanager
    async def serve(self, kie: FakeKie, **options: Any) -> AsyncIterator[FakeProvider]:
        """The family's fake server: the shared KIE fake, or one of its own."""
        if self.server == "kie":
            yield kie
        elif self.server == "apikley":
            async with FakeKie(APIKLEY_KEY, flavor="apikley", **options) as apikley:
                yield apikley
        else:
            async with FakeOdkkk(ODKKK_KEY, callback_backoff=(0.05, 0.1, 0.2), **options) as odkkk:
                yield odkkk

    def fail_next(
        self, fake: FakeProvider, code: int, msg: str | None = None, *, http_status: bool = False
    ) -> None:
        """Make the next create call answer with the documented error `code`."""
        if isinstance(fake, FakeOdkkk):
            assert not http_status  # odkkk always answers errors with the HTTP status
            fake.fail_next(code, message=msg)
        else:
            fake.fail_next(self.create_path, code, msg, http_status=http_status)


PLAYGROUND = Family(
    provider="kie-playground",
    model=PLAYGROUND_MODEL,
    server="kie",
    create_path="/api/v1/playground/createTask",
    photo_field="input.image_url",
    settings=lambda fake: {"KIE_PLAYGROUND": True},
)
APIKLEY = Family(
    provider="apikley",
    model=APIKLEY_MODEL,
    server="apikley",
    create_path="/api/v1/jobs/createTask",
    photo_field="input.image_url",
    settings=lambda fake: {"APIKLEY_API_KEY": APIKLEY_KEY, "APIKLEY_API_URL": fake.url},
)
GPT4O = Family(
    provider="kie-4o",
    model=GPT4O_MODEL,
    server="kie",
    create_path="/api/v1/gpt4o-image/generate",
    photo_field="filesUrl.0",
    settings=lambda fake: {},
)
ODKKK = Family(
    provider="odkkk",
    model=ODKKK_MODEL,
    server="odkkk",
    create_path="/v1/images/generations",
    photo_field="image_urls.0",
    settings=lambda fake: {"ODKKK_API_KEY": ODKKK_KEY, "ODKKK_API_URL": fake.url},
)


def family_settings(
    make_settings: SettingsFactory, family: Family, fake: FakeProvider, **extra: Any
) -> Settings:
    values = {"DEFAULT_MODEL": family.model, **family.settings(fake), **extra}
    return make_settings(**values)


def field(body: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        body = body[int(key)] if isinstance(body, list) else body[key]
    return body


def creates(fake: FakeProvider) -> list[str]:
    """The paths of the calls that asked `fake` to create a task."""
    create_paths = tuple(f.create_path for f in (PLAYGROUND, APIKLEY, GPT4O, ODKKK))
    return [path for _, path in fake.requests if path.endswith(create_paths)]


async def start_behind_https_proxy(
    tg: FakeTelegram,
    fake: FakeProvider,
    settings: Callable[..., Settings],
    start_bot: BotStarter,
) -> RunningBot:
    """The bot with PUBLIC_BASE_URL https://bot.test, as a TLS proxy in front would give it."""
    bot = await start_bot(settings(port=free_port(), PUBLIC_BASE_URL=PROXY, STORAGE="local"))
    # The proxy would forward https://bot.test to the bot: both fakes rewrite the URL.
    fake.url_rewrites = {PROXY: bot.url}
    await tg.wait_for("setWebhook")
    assert tg.webhook_url == f"{PROXY}/telegram"
    tg.webhook_url = f"{bot.url}/telegram"
    return bot


@dataclass(frozen=True)
class Delivery:
    """One family's edit that goes through; what its fake must have seen on the way."""

    family: Family
    photo: tuple[int, int]
    fetched: tuple[int, int] | None = None  # the size the provider fetched, when resized
    task: dict[str, Any] = dataclass_field(default_factory=dict)  # FakeTask attributes
    body: dict[str, Any] = dataclass_field(default_factory=dict)  # create body, dotted keys
    task_id_prefix: str = ""
    behind_https_proxy: bool = False
    never_asked: tuple[str, ...] = ()  # path fragments the bot must not have called
    status_path: str = ""  # the status query the bot polled
    history: tuple[str, ...] = ()  # phases the fake's task went through
    fake_options: dict[str, Any] = dataclass_field(default_factory=dict)
    settings: dict[str, Any] = dataclass_field(default_factory=dict)


async def deliver_an_edit(
    case: Delivery,
    *,
    webhook: bool,
    tg: FakeTelegram,
    kie: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
) -> None:
    family = case.family
    async with family.serve(kie, **case.fake_options) as fake:
        settings = partial(family_settings, make_settings, family, fake, **case.settings)
        if case.behind_https_proxy:
            bot = await start_behind_https_proxy(tg, fake, settings, start_bot)
            public_url = PROXY
        else:
            bot = await start_bot(settings(webhook=webhook))
            await ready(bot, tg)
            public_url = bot.url
        image = make_jpeg(*case.photo)
        await expect_edit_delivered(bot, tg, CAPTION, image)
        task = next(iter(fake.tasks.values()))
        assert task.task_id.startswith(case.task_id_prefix)
        for name, value in case.task.items():
            assert getattr(task, name) == value, name
        for name, value in case.body.items():
            assert field(task.request, name) == value, name
        if case.fetched is None:
            assert task.inputs == [image]
        else:
            assert size_of(task.inputs[0]) == case.fetched
        photo_url = field(task.request, family.photo_field)
        if webhook:
            assert photo_url.startswith(f"{public_url}/files/")
            callback = f"{public_url}/callbacks/{family.provider}/1?token="
            assert task.callback_url is not None and task.callback_url.startswith(callback)
            assert fake.callbacks[0].status == 200
        else:
            assert photo_url.startswith(f"{kie.url}/files/")  # KIE upload
            assert task.callback_url is None
            assert paths(fake, case.status_path)
        assert all(phase in task.history for phase in case.history)
        assert tg.files_sent_to(CHAT_ID) == task.results
        edit = await bot.wait_state(EditState.DELIVERED)
        assert edit.provider == family.provider and edit.model == family.model
        assert not any(paths(fake, fragment) for fragment in case.never_asked)
        if fake is not kie:
            assert not kie.tasks


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            Delivery(
                PLAYGROUND,
                photo=(640, 480),
                task={"api": "playground", "model": "qwen/image-edit"},
                never_asked=("recordInfo", "/jobs/"),
            ),
            id="playground",
        ),
        pytest.param(
            Delivery(
                APIKLEY,
                photo=(600, 800),
                task_id_prefix="task_qwen_",
                body={"input.image_size": "portrait_4_3"},
                never_asked=("recordInfo",),
            ),
            id="apikley",
        ),
        pytest.param(
            Delivery(
                GPT4O,
                photo=(900, 600),
                task={"api": "gpt4o"},
                task_id_prefix="task_4o_",
                body={"size": "3:2", "nVariants": 1},
                never_asked=("record-info",),
            ),
            id="4o",
        ),
        pytest.param(
            Delivery(
                ODKKK,
                photo=(200, 150),  # below odkkk's 384 px minimum side: upscaled
                fetched=(512, 384),
                body={"model": "qwen-image-edit", "prompt": CAPTION},
                behind_https_proxy=True,  # odkkk calls back only to public https URLs
                never_asked=("/v1/tasks/",),
            ),
            id="odkkk",
        ),
    ],
)
async def test_edit_with_callback(
    case: Delivery,
    tg: FakeTelegram,
    kie: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
) -> None:
    await deliver_an_edit(
        case, webhook=True, tg=tg, kie=kie, make_settings=make_settings, start_bot=start_bot
    )


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            Delivery(
                PLAYGROUND,
                photo=(320, 240),
                task={"api": "playground"},
                status_path="/api/v1/playground/recordInfo",
                history=("queuing", "generating"),
            ),
            id="playground",
        ),
        pytest.param(
            Delivery(APIKLEY, photo=(800, 450), status_path="/api/v1/jobs/recordInfo"),
            id="apikley",
        ),
        pytest.param(
            Delivery(
                GPT4O,
                photo=(400, 600),
                body={"size": "2:3"},
                status_path="/api/v1/gpt4o-image/record-info",
            ),
            id="4o",
        ),
        pytest.param(
            Delivery(
                ODKKK,
                photo=(3500, 500),  # longer than odkkk's 3072 px maximum side: downscaled
                fetched=(3072, 439),
                fake_options={"query_path": "/v2/query/{id}"},
                settings={"ODKKK_TASK_PATH": "/v2/query/{id}"},
                status_path="/v2/query/",
            ),
            id="odkkk-configured-task-path",
        ),
    ],
)
async def test_edit_with_status_polling(
    case: Delivery,
    tg: FakeTelegram,
    kie: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
) -> None:
    await deliver_an_edit(
        case, webhook=False, tg=tg, kie=kie, make_settings=make_settings, start_bot=start_bot
    )


@pytest.mark.parametrize(
    ("family", "webhook", "fail", "callback"),
    [
        pytest.param(
            PLAYGROUND, True, ("500", "Internal server error"), {"code": 501}, id="playground"
        ),
        pytest.param(APIKLEY, True, ("500", "Internal server error"), None, id="apikley"),
        # The 4o failure callback names no task: the bot knows it by the callback URL.
        pytest.param(
            GPT4O, True, ("400", "Content policy violation"), {"data": None}, id="4o-callback"
        ),
        pytest.param(GPT4O, False, ("451", "image download failed"), None, id="4o-polling"),
        pytest.param(ODKKK, True, ("500", "model crashed"), None, id="odkkk"),
    ],
)
async def test_failed_task(
    family: Family,
    webhook: bool,
    fail: tuple[str, str],
    callback: dict[str, Any] | None,
    tg: FakeTelegram,
    kie: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
) -> None:
    async with family.serve(kie) as fake:
        bot = await start_bot(family_settings(make_settings, family, fake, webhook=webhook))
        await ready(bot, tg)
        fake.next_outcome(fail=fail)
        await expect_failure_text(bot, tg, "x-ray", f"couldn't edit this photo: {fail[1]}")
        if callback is not None:
            delivered = (await fake.wait_callbacks())[0]
            assert delivered.status == 200
            for name, value in callback.items():
                assert delivered.body[name] == value, name
            assert not paths(fake, "record-info")
        edit = await bot.wait_state(EditState.FAILED)
        assert edit.error_code == f"task_failed:{fail[0]}"
        assert not tg.calls_of("sendPhoto")


# (code, message, as HTTP status, what the user reads, the edit's error code)
Rejection = tuple[int, str | None, bool, str, str]


@pytest.mark.parametrize(
    ("family", "rejections", "settings"),
    [
        pytest.param(
            PLAYGROUND,
            [
                (401, None, False, "misconfigured", "provider_auth"),
                (402, None, True, "out of credits", "insufficient_credits"),
                (
                    422,
                    "input.num_inference_steps must be between 2 and 49",
                    False,
                    "rejected the request (num_inference_steps)",
                    "validation:num_inference_steps",
                ),
            ],
            {},
            id="playground",
        ),
        pytest.param(
            APIKLEY,
            [
                (402, None, False, "out of credits", "insufficient_credits"),
                (
                    422,
                    "input.guidance_scale must be between 0 and 20",
                    False,
                    "rejected the request (guidance_scale)",
                    "validation:guidance_scale",
                ),
                (505, None, False, "disabled this feature", "feature_disabled"),
            ],
            {},
            id="apikley",
        ),
        pytest.param(
            GPT4O,
            [
                (401, None, False, "misconfigured", "provider_auth"),
                (402, None, False, "out of credits", "insufficient_credits"),
                (
                    422,
                    'size must be one of "1:1", "3:2", "2:3"',
                    False,
                    "rejected the request (size)",
                    "validation:size",
                ),
            ],
            {},
            id="4o",
        ),
        pytest.param(
            ODKKK,
            [
                (400, None, False, "rejected the request (model)", "validation:model"),
                (401, None, False, "misconfigured", "provider_auth"),
                (429, None, False, "overloaded", "rate_limited"),
                (503, None, False, "unavailable right now", "unavailable"),
            ],
            {"PROVIDER_MAX_RETRIES": 0},  # 429 and 503 would be retried
            id="odkkk",
        ),
    ],
)
async def test_documented_error_codes(
    family: Family,
    rejections: list[Rejection],
    settings: dict[str, Any],
    tg: FakeTelegram,
    kie: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
) -> None:
    async with family.serve(kie) as fake:
        bot = await start_bot(family_settings(make_settings, family, fake, **settings))
        await ready(bot, tg)
        for index, (code, msg, http_status, fragment, _) in enumerate(rejections):
            family.fail_next(fake, code, msg, http_status=http_status)
            await expect_failure_text(bot, tg, f"edit {index}", fragment)
        codes = [(await bot.edit(i + 1)).error_code for i in range(len(rejections))]
        assert codes == [error_code for *_, error_code in rejections]
        assert not fake.tasks
        assert creates(fake) == [family.create_path] * len(rejections)


@pytest.mark.parametrize(
    ("family", "codes"),
    [
        pytest.param(PLAYGROUND, [500], id="playground"),
        pytest.param(APIKLEY, [455], id="apikley-maintenance"),
        pytest.param(GPT4O, [500], id="4o"),
        pytest.param(ODKKK, [502, 500], id="odkkk"),
    ],
)
async def test_server_errors_are_retried(
    family: Family,
    codes: list[int],
    tg: FakeTelegram,
    kie: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
) -> None:
    async with family.serve(kie) as fake:
        bot = await start_bot(family_settings(make_settings, family, fake))
        await ready(bot, tg)
        for code in codes:
            family.fail_next(fake, code)
        await expect_edit_delivered(bot, tg, "x")
        assert creates(fake) == [family.create_path] * (len(codes) + 1)
        assert len(fake.tasks) == 1
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


async def test_odkkk_with_http_public_url_falls_back_to_polling(
    tg: FakeTelegram, odkkk: FakeOdkkk, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(family_settings(make_settings, ODKKK, odkkk))
    await ready(bot, tg)
    await expect_edit_delivered(bot, tg, "replace the background", make_jpeg(640, 480))
    task = next(iter(odkkk.tasks.values()))
    assert "callback_url" not in task.request
    assert paths(odkkk, f"/v1/tasks/{task.task_id}")
    assert not odkkk.callbacks
    await bot.wait_state(EditState.DELIVERED)


# Shared KIE limiter, DEFAULT_MODEL, /credits ------------------------------------------------


async def test_kie_families_share_one_limit_so_a_burst_waits_instead_of_429(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    kie.rate_limit = (2, 0.3)  # the account's limit, enforced by the fake with HTTP 429
    bot = await start_bot(
        make_settings(KIE_PLAYGROUND=True, KIE_RATE_LIMIT="2/0.6", PROVIDER_MAX_RETRIES=0)
    )
    await ready(bot, tg)
    models = ["qwen/image-edit", PLAYGROUND_MODEL, GPT4O_MODEL, "qwen/image-edit", GPT4O_MODEL]
    updates = []
    for index, model_id in enumerate(models):
        user_id = 7000 + index  # one private chat each, so each may choose its model

        def choose(prefs: ChatPrefs, model_id: str = model_id) -> ChatPrefs:
            return replace(prefs, model=model_id)

        await bot.services.db.chat_settings.update(user_id, choose, user_id=user_id)
        updates.append(
            tg.photo_update(
                user_id, tg.user(user_id), make_jpeg(320, 240), caption=f"burst {index}"
            )
        )
    await asyncio.gather(*(deliver(bot, tg, update) for update in updates))
    # A 429 would end an edit (no retries): every one is delivered instead.
    await tg.wait_for("sendPhoto", count=5, timeout=20)
    assert {task.api for task in kie.tasks.values()} == {"jobs", "playground", "gpt4o"}
    creates = [p for p in kie.requests if p[1].endswith(("/createTask", "/generate"))]
    assert len(creates) == 5


async def test_default_model_must_be_enabled(make_settings: SettingsFactory) -> None:
    runner = make_runner(create_app(make_settings(DEFAULT_MODEL=PLAYGROUND_MODEL)))
    try:
        with pytest.raises(StartupError) as info:
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
    bot = await start_bot(family_settings(make_settings, ODKKK, odkkk, KIE_API_KEY=None))
    await ready(bot, tg)
    assert set(bot.services.registry.providers) == {"odkkk"}
    await tg.post_webhook(tg.text_update(ADMIN_ID, tg.user(ADMIN_ID), "/credits"))
    answer = await tg.wait_for("sendMessage", lambda c: c.params["chat_id"] == ADMIN_ID)
    assert "no KIE account" in answer[0].params["text"]
    assert not kie.requests
