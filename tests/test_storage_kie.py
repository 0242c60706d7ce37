"""STORAGE=kie: KIE's file upload API through the shared transport, against the fake KIE."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.providers.kie_upload import KieUploadStore
from bot.providers.transport import RetryPolicy, Transport
from domain.edit import EditState
from domain.errors import (
    InsufficientCredits,
    ProtocolError,
    ProviderAuthError,
    ProviderUnavailable,
    ValidationRejected,
)
from storage.blobs import is_key
from tests.conftest import CHAT_ID, KIE_KEY, USER_ID, BotStarter, SettingsFactory
from tests.fakes.images import make_jpeg, make_png
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram

UPLOAD = "/api/file-stream-upload"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def upload_store(
    http: aiohttp.ClientSession, url: str, *, key: str = KIE_KEY, retries: int = 2
) -> KieUploadStore:
    transport = Transport(
        http, timeout=5, retry=RetryPolicy(max_retries=retries, backoff_base=0.01)
    )
    return KieUploadStore(transport, url, key)


async def test_upload_gives_a_download_url_the_provider_can_fetch(
    kie: FakeKie, http: aiohttp.ClientSession
) -> None:
    store = upload_store(http, kie.url + "/")
    image = make_png(20, 10)
    blob = await store.put(image, extension="png")

    assert is_key(blob.key)
    upload = kie.uploads[-1]
    assert upload.method == "stream" and upload.upload_path == "telegram-edits"
    assert upload.file_name == blob.key and upload.mime_type == "image/png"
    assert upload.data == image
    assert blob.url == upload.download_url and blob.url.startswith(kie.url)
    async with http.get(blob.url) as resp:
        assert resp.status == 200 and await resp.read() == image
    # KIE has no delete call and expires uploads itself: both are harmless no-ops.
    await store.delete(blob.key)
    assert await store.sweep(older_than=0) == 0


@pytest.mark.parametrize("http_status", [False, True])
@pytest.mark.parametrize(
    ("code", "error"),
    [
        (401, ProviderAuthError),
        (402, InsufficientCredits),
        (422, ValidationRejected),
    ],
)
async def test_upload_errors_map_like_other_kie_calls(
    kie: FakeKie,
    http: aiohttp.ClientSession,
    code: int,
    error: type[Exception],
    http_status: bool,
) -> None:
    store = upload_store(http, kie.url)
    kie.fail_next(UPLOAD, code, http_status=http_status)
    with pytest.raises(error):
        await store.put(make_jpeg(8, 8), extension="jpg")
    assert not kie.uploads
    assert [p for _, p in kie.requests].count(UPLOAD) == 1  # not retried


async def test_server_errors_are_retried_then_reported(
    kie: FakeKie, http: aiohttp.ClientSession
) -> None:
    store = upload_store(http, kie.url, retries=2)
    kie.fail_next(UPLOAD, 500, times=2)
    blob = await store.put(make_jpeg(8, 8), extension="jpg")
    assert kie.uploads[-1].file_name == blob.key
    assert [p for _, p in kie.requests].count(UPLOAD) == 3

    kie.fail_next(UPLOAD, 500, http_status=True, times=3)
    with pytest.raises(ProviderUnavailable):
        await store.put(make_jpeg(8, 8), extension="jpg")
    assert len(kie.uploads) == 1


async def test_wrong_key_is_an_auth_error(kie: FakeKie, http: aiohttp.ClientSession) -> None:
    store = upload_store(http, kie.url, key="wrong-key")
    with pytest.raises(ProviderAuthError):
        await store.put(make_jpeg(8, 8), extension="jpg")


@pytest.mark.parametrize(
    "answer",
    [
        {"success": True, "code": 200, "msg": "ok", "data": {}},
        {"success": True, "code": 200, "msg": "ok", "data": None},
        {"success": False, "code": 200, "msg": "?", "data": {"downloadUrl": "https://x/y"}},
        ["not", "an", "object"],
    ],
)
async def test_answer_without_a_download_url_is_a_protocol_error(
    http: aiohttp.ClientSession, answer: Any
) -> None:
    async def upload(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(answer)

    app = web.Application()
    app.router.add_post(UPLOAD, upload)
    async with TestServer(app, host="127.0.0.1") as server:
        store = upload_store(http, str(server.make_url("/")))
        with pytest.raises(ProtocolError):
            await store.put(make_jpeg(8, 8), extension="jpg")


# Through the running bot -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "http_status", "text", "error_code"),
    [
        (401, False, "The bot is misconfigured right now", "provider_auth"),
        (402, True, "run out of credits", "insufficient_credits"),
    ],
)
async def test_upload_failure_gives_the_user_a_clear_message(
    tg: FakeTelegram,
    kie: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
    code: int,
    http_status: bool,
    text: str,
    error_code: str,
) -> None:
    bot = await start_bot(make_settings(webhook=False))
    assert bot.settings.resolved_storage == "kie"
    await tg.wait_until_polling()
    kie.fail_next(UPLOAD, code, http_status=http_status)
    tg.push_update(tg.photo_update(CHAT_ID, tg.user(USER_ID), make_jpeg(64, 64), caption="hi"))

    await tg.wait_for("editMessageText", lambda c: text in c.params["text"])
    edit = await bot.wait_state(EditState.FAILED)
    assert edit.error_code == error_code
    assert not kie.tasks  # nothing was submitted without a photo URL
    alerts = [c for c in tg.calls_of("sendMessage") if c.params["chat_id"] == 9001]
    assert len(alerts) == 1 and error_code in alerts[0].params["text"]


async def test_upload_outage_after_retries_says_unavailable(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(webhook=False, PROVIDER_MAX_RETRIES=1))
    await tg.wait_until_polling()
    kie.fail_next(UPLOAD, 500, times=2)
    user = tg.user(USER_ID, language_code="ru")
    tg.push_update(tg.photo_update(CHAT_ID, user, make_jpeg(64, 64), caption="ярче"))

    await tg.wait_for("editMessageText", lambda c: "сейчас недоступен" in c.params["text"])
    assert (await bot.wait_state(EditState.FAILED)).error_code == "unavailable"
    assert [p for _, p in kie.requests].count(UPLOAD) == 2 and not kie.tasks


async def test_upload_recovers_from_one_server_error(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(webhook=False))
    await tg.wait_until_polling()
    kie.fail_next(UPLOAD, 500, http_status=True)
    image = make_jpeg(64, 48)
    tg.push_update(tg.photo_update(CHAT_ID, tg.user(USER_ID), image, caption="sepia"))

    await tg.wait_for("sendPhoto")
    task = next(iter(kie.tasks.values()))
    assert task.inputs == [image]  # the fake fetched the uploaded file from its CDN
    assert task.request["input"]["image_url"] == kie.uploads[-1].download_url
    await bot.wait_state(EditState.DELIVERED)
