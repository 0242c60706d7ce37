"""`bot.telegram_http.AiohttpRequest`, the service's PTB transport, against the fake Bot API.

Real PTB `Bot` methods over HTTP on loopback: form and multipart requests, uploads as bytes,
file objects and `attach://` parts, file downloads, every error family the delivery code
maps (400/403/429 via the answer's JSON, 5xx and refused connections as NetworkError,
timeouts as TimedOut), pool limits, and the session's lifecycle.
"""

from __future__ import annotations

import asyncio
import io
import socket
import traceback
from collections.abc import AsyncIterator

import pytest
from PIL import Image
from telegram import Bot, InputFile, InputMediaPhoto
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)

from bot.delivery import telegram_call
from bot.lifecycle.context import ChatUnreachable, DeliveryFailed
from bot.telegram_http import AiohttpRequest
from tests.fakes.telegram import FakeTelegram

CHAT = 5151


def jpeg(width: int = 64, height: int = 48, color: str = "blue") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server
        assert server.server_errors == []


def make_bot(fake: FakeTelegram, request: AiohttpRequest | None = None) -> Bot:
    return Bot(
        fake.token,
        base_url=fake.base_url,
        base_file_url=fake.base_file_url,
        request=request or AiohttpRequest(connection_pool_size=8),
        get_updates_request=AiohttpRequest(connection_pool_size=1),
    )


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    async with make_bot(fake) as b:
        yield b


async def test_plain_methods_and_their_parameters(fake: FakeTelegram, bot: Bot) -> None:
    message = await bot.send_message(CHAT, "héllo <b>world</b>", parse_mode="HTML")
    assert message.text == "héllo world"
    assert message.chat.id == CHAT
    [call] = fake.calls_of("sendMessage")
    assert call.params["chat_id"] == CHAT
    assert call.params["parse_mode"] == "HTML"
    assert await bot.delete_message(CHAT, message.message_id) is True
    assert fake.is_deleted(CHAT, message.message_id)


async def test_photo_upload_from_bytes(fake: FakeTelegram, bot: Bot) -> None:
    data = jpeg()
    message = await bot.send_photo(
        CHAT, InputFile(data, filename="edit-1.jpg"), caption="done", write_timeout=30
    )
    assert message.caption == "done"
    [call] = fake.calls_of("sendPhoto")
    assert call.files == {"photo": data}
    assert call.file_names == {"photo": "edit-1.jpg"}
    assert fake.files_sent_to(CHAT) == [data]


async def test_document_upload_from_a_file_object(fake: FakeTelegram, bot: Bot) -> None:
    data = b"%PDF-1.4 not really" * 100
    document = InputFile(io.BytesIO(data), filename="notes.pdf", read_file_handle=False)
    message = await bot.send_document(CHAT, document)
    assert message.document is not None
    assert message.document.file_name == "notes.pdf"
    [call] = fake.calls_of("sendDocument")
    assert call.files == {"document": data}


async def test_media_group_with_attached_parts(fake: FakeTelegram, bot: Bot) -> None:
    first, second = jpeg(color="red"), jpeg(color="green")
    media = [
        InputMediaPhoto(InputFile(first, filename="a.jpg", attach=True), caption="two"),
        InputMediaPhoto(InputFile(second, filename="b.jpg", attach=True)),
    ]
    messages = await bot.send_media_group(CHAT, media)
    assert len(messages) == 2
    assert messages[0].caption == "two"
    [call] = fake.calls_of("sendMediaGroup")
    assert sorted(call.files.values()) == sorted([first, second])
    assert all(name.startswith("attached") for name in call.files)


async def test_file_download(fake: FakeTelegram, bot: Bot) -> None:
    data = jpeg(320, 200)
    info = fake.add_file(data)
    file = await bot.get_file(info.file_id)
    assert file.file_path is not None
    assert await bot.request.retrieve(file.file_path) == data
    assert bytes(await file.download_as_bytearray()) == data


@pytest.mark.parametrize(
    ("status", "description", "error"),
    [
        (400, "Bad Request: chat not found", BadRequest),
        (403, "Forbidden: bot was blocked by the user", Forbidden),
        (502, "Bad Gateway", NetworkError),
        (500, "Internal Server Error", NetworkError),
    ],
)
async def test_error_answers_are_mapped_by_status(
    fake: FakeTelegram, bot: Bot, status: int, description: str, error: type[Exception]
) -> None:
    fake.fail("sendMessage", status, description)
    with pytest.raises(error) as raised:
        await bot.send_message(CHAT, "x")
    assert description.rsplit(": ", 1)[-1].lower() in str(raised.value).lower()
    assert not isinstance(raised.value, TimedOut)


async def test_flood_control_carries_retry_after(fake: FakeTelegram, bot: Bot) -> None:
    fake.fail("sendPhoto", 429, "Too Many Requests: retry after 7", retry_after=7)
    with pytest.raises(RetryAfter) as raised:
        await bot.send_photo(CHAT, InputFile(jpeg(), filename="p.jpg"))
    assert "Retry in 7" in str(raised.value)


async def test_wrong_token_is_invalid_token(fake: FakeTelegram) -> None:
    request = AiohttpRequest()
    await request.initialize()
    try:
        with pytest.raises(InvalidToken):
            await request.post(f"{fake.url}/bot123:wrong/getMe")
    finally:
        await request.shutdown()


async def test_slow_answer_is_timed_out(fake: FakeTelegram, bot: Bot) -> None:
    fake.delay("sendMessage", 2.0, times=1)
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimedOut) as raised:
        await bot.send_message(CHAT, "slow", read_timeout=0.2)
    assert asyncio.get_running_loop().time() - started < 1.5
    assert "read" in raised.value.message
    # The connection is not poisoned: the next call works.
    assert (await bot.send_message(CHAT, "fast")).text == "fast"


async def test_slow_download_is_timed_out(fake: FakeTelegram, bot: Bot) -> None:
    fake.delay("getFile", 2.0, times=1)
    with pytest.raises(TimedOut):
        await bot.get_file(fake.add_file(jpeg()).file_id, read_timeout=0.2)


async def test_pool_timeout_when_every_connection_is_busy(fake: FakeTelegram) -> None:
    request = AiohttpRequest(connection_pool_size=1, pool_timeout=0.2)
    async with make_bot(fake, request) as bot:
        fake.delay("sendMessage", 1.0, times=1)
        busy = asyncio.create_task(bot.send_message(CHAT, "holds the only connection"))
        await asyncio.sleep(0.1)
        with pytest.raises(TimedOut) as raised:
            await bot.send_message(CHAT, "waits for it", pool_timeout=0.1)
        assert "Pool timeout" in raised.value.message
        assert (await busy).text == "holds the only connection"
        texts = [call.params["text"] for call in fake.calls_of("sendMessage")]
        assert texts == ["holds the only connection"]  # the second was never sent


def idle_connections(request: AiohttpRequest) -> int:
    session = request._session
    assert session is not None and session.connector is not None
    return sum(len(conns) for conns in session.connector._conns.values())


async def test_connections_are_kept_alive_and_limited(fake: FakeTelegram) -> None:
    request = AiohttpRequest(connection_pool_size=3)
    async with make_bot(fake, request) as bot:
        for i in range(5):
            await bot.send_message(CHAT, f"one after another {i}")
        assert idle_connections(request) == 1  # one kept-alive connection, reused
        fake.delay("sendMessage", 0.2, times=12)
        await asyncio.gather(*(bot.send_message(CHAT, f"at once {i}") for i in range(12)))
        assert idle_connections(request) == 3  # never more than the pool


async def test_refused_connection_is_a_network_error_not_a_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    request = AiohttpRequest(connect_timeout=2.0)
    await request.initialize()
    try:
        with pytest.raises(NetworkError) as raised:
            await request.post(f"http://127.0.0.1:{port}/bot1:x/getMe")
        assert not isinstance(raised.value, TimedOut)
    finally:
        await request.shutdown()


async def test_transport_errors_never_carry_the_token() -> None:
    """aiohttp names the URL in some errors (here: a URL that is not HTTP, as a mistyped
    TELEGRAM_API_URL gives); the Bot API URL contains the token, and these errors are logged."""
    token = "123456:AAH-very-secret-token"
    request = AiohttpRequest()
    await request.initialize()
    try:
        with pytest.raises(NetworkError) as raised:
            await request.do_request(f"ftp://127.0.0.1:9/bot{token}/getMe", "POST")
    finally:
        await request.shutdown()
    shown = "".join(traceback.format_exception(raised.value))
    assert "getMe" in shown  # the URL is still named, without its token
    for secret in (token, token.partition(":")[2]):
        assert secret not in shown


async def test_lifecycle() -> None:
    request = AiohttpRequest()
    with pytest.raises(RuntimeError, match="not initialized"):
        await request.do_request("http://127.0.0.1:9/bot1:x/getMe", "POST")
    await request.initialize()
    await request.initialize()  # idempotent
    await request.shutdown()
    await request.shutdown()  # idempotent
    with pytest.raises(RuntimeError, match="not initialized"):
        await request.do_request("http://127.0.0.1:9/bot1:x/getMe", "POST")
    await request.initialize()  # PTB may initialize again after a shutdown
    assert request.read_timeout == 5.0
    await request.shutdown()
    with pytest.raises(ValueError, match="connection_pool_size"):
        AiohttpRequest(connection_pool_size=0)


async def test_delivery_error_mapping_keeps_working(fake: FakeTelegram, bot: Bot) -> None:
    """`bot.delivery.telegram_call` maps this transport's errors as it mapped httpx's."""
    fake.fail("sendMessage", 403, "Forbidden: bot was blocked by the user")
    with pytest.raises(ChatUnreachable):
        await telegram_call(lambda: bot.send_message(CHAT, "x"))
    fake.fail("sendMessage", 400, "Bad Request: message text is empty")
    with pytest.raises(DeliveryFailed) as bad:
        await telegram_call(lambda: bot.send_message(CHAT, "x"))
    assert (bad.value.code, bad.value.permanent) == ("telegram_bad_request", True)
    fake.fail("sendMessage", 502, "Bad Gateway", times=2)
    sent = await telegram_call(lambda: bot.send_message(CHAT, "after two 502s"))
    assert sent.text == "after two 502s"
    fake.delay("sendMessage", 2.0, times=3)
    with pytest.raises(DeliveryFailed) as slow:
        await telegram_call(lambda: bot.send_message(CHAT, "x", read_timeout=0.1), attempts=2)
    assert (slow.value.code, slow.value.permanent) == ("telegram_unavailable", False)


async def test_environment_proxy_is_used(
    fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP(S)_PROXY from the environment apply, as with httpx (here the fake is the proxy)."""
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", fake.url)
    monkeypatch.setenv("http_proxy", fake.url)
    async with Bot(
        fake.token,
        base_url="http://api.telegram.invalid/bot",
        request=AiohttpRequest(),
        get_updates_request=AiohttpRequest(connection_pool_size=1),
    ) as bot:
        assert (await bot.send_message(CHAT, "via the proxy")).text == "via the proxy"


def test_no_proxy_exempts_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    request = AiohttpRequest()
    assert request._proxy_for("https://api.telegram.org/bot1:x/getMe") == (
        "http://proxy.example:3128"
    )
    assert request._proxy_for("https://127.0.0.1:8443/bot1:x/getMe") is None
    assert request._proxy_for("http://api.telegram.org/bot1:x/getMe") is None  # no HTTP proxy
