"""Self-tests of the fake Telegram Bot API server, driven by the real PTB client."""

from __future__ import annotations

import asyncio
import datetime as dtm
import io
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from PIL import Image
from telegram import (
    Bot,
    ChatMemberAdministrator,
    ChatMemberBanned,
    ChatMemberLeft,
    ChatMemberOwner,
    ChatMemberRestricted,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputMediaPhoto,
    InputTextMessageContent,
    MessageEntity,
    ReplyParameters,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import Application, CommandHandler, ContextTypes, MessageHandler, filters

from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram_server import fast_request
from tests.fakes.telegram_text import iter_entities

CHAT = 4242
USER = 4242
GROUP = -1001234567890


def make_image(width: int, height: int, color: str = "red", fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format=fmt)
    return buffer.getvalue()


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(d, callback_data=d) for d in data]])


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server
        assert server.server_errors == []


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(
        fake.token,
        base_url=fake.base_url,
        base_file_url=fake.base_file_url,
        request=fast_request(),
        get_updates_request=fast_request(),
    ) as b:
        yield b


async def test_get_me(fake: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username, me.first_name) == (
        123456,
        True,
        "edit_test_bot",
        "Edit Test Bot",
    )
    assert fake.url.startswith("http://127.0.0.1:")
    assert [call.method for call in fake.calls] == ["getMe", "getMe"]  # initialize + ours


async def test_custom_username() -> None:
    async with (
        FakeTelegram("987654:another-token-that-is-long-enough-for-tg", username="x_bot") as fake,
        Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url) as bot,
    ):
        assert bot.username == "x_bot"
        assert bot.id == 987654


async def test_wrong_token_unknown_and_unmodelled_methods(fake: FakeTelegram) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{fake.url}/bot1:wrong/getMe") as response:
            assert response.status == 401
            assert await response.json() == {
                "ok": False,
                "error_code": 401,
                "description": "Unauthorized",
            }
        async with session.post(f"{fake.base_url}{fake.token}/noSuchMethod") as response:
            assert response.status == 404
            assert (await response.json())["description"] == "Not Found"
        async with session.get(f"{fake.base_url}{fake.token}/setMyName?name=42") as response:
            assert response.status == 500
            assert (
                "does not model the Bot API method setMyName"
                in (await response.json())["description"]
            )
        async with session.get(
            f"{fake.base_url}{fake.token}/sendMessage?chat_id={CHAT}&text=42"
        ) as response:
            assert response.status == 200
        async with session.post(
            f"{fake.base_url}{fake.token}/SENDMESSAGE", json={"chat_id": CHAT, "text": "hi"}
        ) as response:
            assert (await response.json())["result"]["text"] == "hi"
    [call] = fake.calls_of("set_my_name")
    assert call.status == 500  # recorded like every answered call
    [by_get, by_json] = fake.calls_of("sendMessage")
    assert by_get.params == {"chat_id": CHAT, "text": "42"}  # free-text field kept a string
    assert by_json.params == {"chat_id": CHAT, "text": "hi"}
    assert [str(exc) for exc in fake.server_errors] == [
        "the fake Telegram does not model the Bot API method setMyName"
    ]
    fake.server_errors.clear()
    with pytest.raises(InvalidToken, match="rejected by the server"):
        async with Bot("1:wrong", base_url=fake.base_url):
            pass


async def test_send_photo_then_download_it(fake: FakeTelegram, bot: Bot) -> None:
    image = make_image(1000, 600, "blue")
    message = await bot.send_photo(
        CHAT, photo=image, caption="done", reply_markup=keyboard("again")
    )
    assert message.chat.id == CHAT and message.chat.type == "private"
    assert message.from_user is not None and message.from_user.id == bot.id
    assert message.caption == "done"
    assert message.reply_markup == keyboard("again")
    largest = message.photo[-1]
    assert (largest.width, largest.height, largest.file_size) == (1000, 600, len(image))
    assert 2 <= len(message.photo) <= 3
    assert [size.width for size in message.photo] == sorted(size.width for size in message.photo)

    file = await bot.get_file(largest.file_id)
    assert file.file_size == len(image)
    assert bytes(await file.download_as_bytearray()) == image
    thumb = await (await bot.get_file(message.photo[0].file_id)).download_as_bytearray()
    assert Image.open(io.BytesIO(bytes(thumb))).size == (90, 54)

    [call] = fake.calls_of("sendPhoto")
    assert call.files == {"photo": image}
    assert call.params["caption"] == "done"
    assert fake.sent_message(call)["message_id"] == message.message_id
    assert fake.files_sent_to(CHAT) == [image]
    assert fake.bot_messages(CHAT)[0]["caption"] == "done"


async def test_user_photo_is_downloadable_and_resendable_by_file_id(
    fake: FakeTelegram, bot: Bot
) -> None:
    image = make_image(640, 480, "green", "PNG")
    update = fake.photo_update(CHAT, fake.user(USER, username="alice"), image, caption="/edit sky")
    incoming = Update.de_json(update, bot)
    assert incoming.message is not None
    assert incoming.message.caption == "/edit sky"
    assert incoming.message.parse_caption_entities(["bot_command"]) == {
        MessageEntity("bot_command", 0, 5): "/edit"
    }
    largest = incoming.message.photo[-1]
    assert (largest.width, largest.height) == (640, 480)
    file = await bot.get_file(largest.file_id)
    assert bytes(await file.download_as_bytearray()) == image
    assert [info.file_id for info in fake.downloads] == [largest.file_id]

    resent = await bot.send_photo(CHAT, photo=largest.file_id)
    assert resent.photo[-1].file_unique_id == largest.file_unique_id
    assert resent.message_id == incoming.message.message_id + 1
    assert fake.files_sent_to(CHAT) == [image]

    with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
        await bot.get_file("AgACno-such-file")
    with pytest.raises(BadRequest, match=r"(?i)IMAGE_PROCESS_FAILED"):
        await bot.send_photo(CHAT, photo=b"definitely not an image")


async def test_send_media_group(fake: FakeTelegram, bot: Bot) -> None:
    first, second = make_image(300, 200, "red"), make_image(200, 300, "yellow")
    messages = await bot.send_media_group(
        CHAT,
        media=[
            InputMediaPhoto(first, caption="<b>A</b>", parse_mode="HTML"),
            InputMediaPhoto(second),
        ],
    )
    assert len(messages) == 2
    assert messages[0].media_group_id is not None
    assert messages[0].media_group_id == messages[1].media_group_id
    assert messages[1].message_id == messages[0].message_id + 1
    assert messages[0].caption == "A"
    assert messages[0].caption_entities == (MessageEntity("bold", 0, 1),)
    assert messages[1].caption is None
    assert [(m.photo[-1].width, m.photo[-1].height) for m in messages] == [(300, 200), (200, 300)]
    assert fake.files_sent_to(CHAT) == [first, second]
    [call] = fake.calls_of("sendMediaGroup")
    assert sorted(call.files.values(), key=len) == sorted([first, second], key=len)
    assert all(item["media"].startswith("attach://") for item in call.params["media"])
    assert len(fake.sent_messages(call)) == 2
    downloaded = await (await bot.get_file(messages[1].photo[-1].file_id)).download_as_bytearray()
    assert bytes(downloaded) == second


async def test_send_document(fake: FakeTelegram, bot: Bot) -> None:
    data = make_image(50, 50, fmt="PNG")
    message = await bot.send_document(CHAT, document=data, filename="result.png", caption="full")
    assert message.document is not None
    assert (message.document.file_name, message.document.mime_type) == ("result.png", "image/png")
    assert message.document.file_size == len(data)
    file = await bot.get_file(message.document.file_id)
    assert file.file_path is not None and file.file_path.endswith(".png")
    assert bytes(await file.download_as_bytearray()) == data
    assert fake.files_sent_to(CHAT) == [data]


async def test_replies(fake: FakeTelegram, bot: Bot) -> None:
    update = fake.text_update(CHAT, USER, "make it blue")
    user_message_id = fake.message_of(update)["message_id"]

    reply = await bot.send_message(CHAT, "ok", reply_parameters=ReplyParameters(user_message_id))
    assert reply.reply_to_message is not None
    assert reply.reply_to_message.message_id == user_message_id
    assert reply.reply_to_message.text == "make it blue"

    with pytest.raises(BadRequest, match=r"(?i)message to be replied not found"):
        await bot.send_message(CHAT, "x", reply_parameters=ReplyParameters(999))
    with pytest.raises(BadRequest, match=r"(?i)message to be replied not found"):
        await bot.send_message(CHAT, "x", reply_to_message_id=999)

    lenient = await bot.send_message(
        CHAT, "y", reply_parameters=ReplyParameters(999, allow_sending_without_reply=True)
    )
    assert lenient.reply_to_message is None
    assert lenient.text == "y"

    await bot.delete_message(CHAT, user_message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to be replied not found"):
        await bot.send_photo(
            CHAT, make_image(20, 20), reply_parameters=ReplyParameters(user_message_id)
        )
    assert fake.files_sent_to(CHAT) == []


async def test_forum_topics(fake: FakeTelegram, bot: Bot) -> None:
    topic = fake.create_topic(GROUP, "Cats")
    update = fake.photo_update(GROUP, USER, make_image(20, 20), caption="hi", thread_id=topic)
    message = Update.de_json(update, bot).effective_message
    assert message is not None and message.chat.is_forum
    assert message.is_topic_message and message.message_thread_id == topic
    # Not a reply to anything: Telegram shows it as a reply to the topic's opening message.
    assert message.reply_to_message is not None
    assert message.reply_to_message.forum_topic_created is not None

    # A reply lands in the topic of the message it replies to; so does a named topic.
    replied = await bot.send_message(GROUP, "a", reply_parameters=ReplyParameters(message.id))
    assert replied.is_topic_message and replied.message_thread_id == topic
    named = await bot.send_media_group(
        GROUP,
        [InputMediaPhoto(make_image(10, 10)), InputMediaPhoto(make_image(12, 12))],
        message_thread_id=topic,
    )
    assert all(m.message_thread_id == topic for m in named)
    # A reply to a deleted message, without the topic, lands in General.
    fake.user_deletes(GROUP, message.id)
    lost = await bot.send_message(
        GROUP, "b", reply_parameters=ReplyParameters(message.id, allow_sending_without_reply=True)
    )
    assert not lost.is_topic_message and lost.message_thread_id is None
    with pytest.raises(BadRequest, match=r"(?i)message thread not found"):
        await bot.send_message(GROUP, "c", message_thread_id=topic + 1000)
    with pytest.raises(BadRequest, match=r"(?i)message thread not found"):
        await bot.send_message(CHAT, "d", message_thread_id=topic)


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_retry_after(fake: FakeTelegram, bot: Bot) -> None:
    fake.fail("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(CHAT, "flood")
    retry_after = caught.value.retry_after
    seconds = retry_after.total_seconds() if isinstance(retry_after, dtm.timedelta) else retry_after
    assert seconds == 7
    [failed] = fake.calls_of("sendMessage")
    assert failed.response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }
    assert fake.bot_messages(CHAT) == []  # a failed call has no effect
    message = await bot.send_message(CHAT, "after the flood")  # only one failure was armed
    assert message.text == "after the flood"


async def test_fail_with_condition_and_times(fake: FakeTelegram, bot: Bot) -> None:
    fake.fail(
        "send_message",
        400,
        "Bad Request: chat not found",
        times=2,
        when=lambda p: p["chat_id"] == 1,
    )
    assert (await bot.send_message(CHAT, "fine")).text == "fine"
    for _ in range(2):
        with pytest.raises(BadRequest, match=r"(?i)chat not found"):
            await bot.send_message(1, "nope")
    assert (await bot.send_message(1, "now")).text == "now"


async def test_blocked_chat(fake: FakeTelegram, bot: Bot) -> None:
    fake.block_chat(CHAT)
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await bot.send_message(CHAT, "hello?")
    with pytest.raises(Forbidden):
        await bot.send_photo(CHAT, make_image(10, 10))
    [call] = fake.calls_of("sendMessage")
    assert call.status == 403
    assert call.response["description"] == "Forbidden: bot was blocked by the user"
    assert (await bot.send_message(CHAT + 1, "other chat")).chat.id == CHAT + 1
    fake.unblock_chat(CHAT)
    assert (await bot.send_message(CHAT, "back")).text == "back"


async def test_get_updates_returns_pushed_updates_and_confirms(
    fake: FakeTelegram, bot: Bot
) -> None:
    first = fake.text_update(CHAT, fake.user(USER, first_name="Bob"), "/start")
    second = fake.text_update(CHAT, USER, "hello")
    fake.push_update(first)
    fake.push_update(second)
    updates = await bot.get_updates(timeout=1)
    assert [u.update_id for u in updates] == [first["update_id"], second["update_id"]]
    assert updates[0].message is not None and updates[0].message.text == "/start"
    assert updates[0].message.from_user is not None
    assert updates[0].message.from_user.first_name == "Bob"
    assert updates[0].message.entities == (MessageEntity("bot_command", 0, 6),)
    again = await bot.get_updates(offset=updates[0].update_id + 1, timeout=1)
    assert [u.update_id for u in again] == [second["update_id"]]
    assert fake.pending_updates == 1
    assert await bot.get_updates(offset=second["update_id"] + 1, timeout=0) == ()
    assert fake.pending_updates == 0


async def test_get_updates_long_polls(fake: FakeTelegram, bot: Bot) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await bot.get_updates(timeout=1) == ()
    assert loop.time() - started >= 0.95

    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await fake.wait_until_polling()
    update = fake.text_update(CHAT, USER, "wake up")
    started = loop.time()
    fake.push_update(update)
    updates = await poll
    assert loop.time() - started < 1
    assert [u.update_id for u in updates] == [update["update_id"]]


async def test_webhook_delivery(fake: FakeTelegram, bot: Bot) -> None:
    received: asyncio.Future[tuple[dict[str, object], str | None]] = (
        asyncio.get_running_loop().create_future()
    )

    async def handle(request: web.Request) -> web.Response:
        received.set_result(
            (await request.json(), request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        )
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}/hook"
        assert await bot.set_webhook(url, secret_token="s3cr3t", allowed_updates=["message"])
        info = await bot.get_webhook_info()
        assert (info.url, info.allowed_updates) == (url, ("message",))
        assert (fake.webhook_url, fake.webhook_secret) == (url, "s3cr3t")
        with pytest.raises(Conflict, match=r"(?i)webhook is active"):
            await bot.get_updates()

        update = fake.text_update(CHAT, USER, "via webhook")
        assert await fake.post_webhook(update) == 200
        body, secret = await asyncio.wait_for(received, 5)
        assert body == update
        assert secret == "s3cr3t"

        assert await bot.delete_webhook()
        assert fake.webhook_url is None
        assert (await bot.get_webhook_info()).url == ""
    finally:
        await runner.cleanup()


async def test_post_webhook_secret_override(fake: FakeTelegram, bot: Bot) -> None:
    seen: list[str | None] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        return web.Response(status=403 if seen[-1] != "right" else 200)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        await bot.set_webhook(
            f"http://127.0.0.1:{runner.addresses[0][1]}/hook", secret_token="right"
        )
        update = fake.text_update(CHAT, USER, "x")
        assert await fake.post_webhook(update) == 200
        assert await fake.post_webhook(update, secret="wrong") == 403
        assert await fake.post_webhook(update, secret=None) == 403
        assert seen == ["right", "wrong", None]
    finally:
        await runner.cleanup()


async def test_callback_query(fake: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(CHAT, "choose", reply_markup=keyboard("redo", "cancel"))
    [call] = fake.calls_of("sendMessage")
    fake.push_update(fake.callback_query_update(USER, fake.sent_message(call), "redo"))
    [update] = await bot.get_updates(timeout=1)
    query = update.callback_query
    assert query is not None
    assert query.data == "redo"
    assert query.message is not None and query.message.message_id == sent.message_id
    assert query.from_user.id == USER
    assert await bot.answer_callback_query(query.id, text="On it")
    [answer] = fake.calls_of("answerCallbackQuery")
    assert answer.params == {"callback_query_id": query.id, "text": "On it"}
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(query.id)
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(CHAT, "x", reply_markup=keyboard("y" * 65))


async def test_edit_message_text(fake: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(CHAT, "working…", reply_markup=keyboard("cancel"))
    edited = await bot.edit_message_text("<i>done</i>", CHAT, sent.message_id, parse_mode="HTML")
    assert not isinstance(edited, bool)
    assert (edited.message_id, edited.text) == (sent.message_id, "done")
    assert edited.entities == (MessageEntity("italic", 0, 4),)
    assert edited.edit_date is not None
    assert edited.reply_markup is None  # editing without reply_markup drops the keyboard
    stored = fake.message(CHAT, sent.message_id)
    assert stored is not None and stored["text"] == "done"

    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text("<i>done</i>", CHAT, sent.message_id, parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", CHAT, 12345)

    photo = await bot.send_photo(CHAT, make_image(30, 30), caption="old")
    with pytest.raises(BadRequest, match=r"(?i)there is no text in the message to edit"):
        await bot.edit_message_text("x", CHAT, photo.message_id)

    user_message = fake.message_of(fake.text_update(CHAT, USER, "mine"))
    with pytest.raises(BadRequest, match=r"(?i)message can't be edited"):
        await bot.edit_message_text("hacked", CHAT, user_message["message_id"])


async def test_delete_message(fake: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(CHAT, "temporary")
    assert await bot.delete_message(CHAT, sent.message_id) is True
    assert fake.is_deleted(CHAT, sent.message_id)
    assert fake.message(CHAT, sent.message_id) is None
    assert fake.bot_messages(CHAT) == []
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(CHAT, sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("late", CHAT, sent.message_id)

    group_message = fake.message_of(fake.text_update(GROUP, USER, "spam"))
    with pytest.raises(BadRequest, match=r"(?i)message can't be deleted"):
        await bot.delete_message(GROUP, group_message["message_id"])
    fake.set_chat_member(GROUP, bot.id, "administrator")
    assert await bot.delete_message(GROUP, group_message["message_id"])


async def test_parse_modes(fake: FakeTelegram, bot: Bot) -> None:
    html = await bot.send_message(
        CHAT,
        '<b>Bold</b> &amp; <a href="https://e.x/?a=1&amp;b=2">link</a> 😀 <code>x</code>',
        parse_mode="HTML",
    )
    assert html.text == "Bold & link 😀 x"
    assert iter_entities(html.text, [e.to_dict() for e in html.entities]) == [
        ("bold", "Bold"),
        ("text_link", "link"),
        ("code", "x"),
    ]
    assert html.entities[1].url == "https://e.x/?a=1&b=2"
    with pytest.raises(BadRequest, match=r'(?i)unsupported start tag "p" at byte offset 0'):
        await bot.send_message(CHAT, "<p>para</p>", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(CHAT, "<b>unclosed", parse_mode="HTML")

    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(CHAT, "x" * 4097)
    with pytest.raises(BadRequest, match=r"(?i)message caption is too long"):
        await bot.send_photo(CHAT, make_image(10, 10), caption="x" * 1025)


async def test_text_update_detects_entities(fake: FakeTelegram, bot: Bot) -> None:
    update = Update.de_json(
        fake.text_update(GROUP, USER, "/edit@edit_test_bot ask @someone_else see https://x.io."),
        bot,
    )
    message = update.message
    assert message is not None
    assert message.chat.type == "supergroup"
    assert message.parse_entities() == {
        MessageEntity("bot_command", 0, 19): "/edit@edit_test_bot",
        MessageEntity("mention", 24, 13): "@someone_else",
        MessageEntity("url", 42, 12): "https://x.io",
    }


async def test_members_and_commands(fake: FakeTelegram, bot: Bot) -> None:
    fake.set_chat_member(GROUP, 1, "creator")
    fake.set_chat_member(GROUP, 2, "administrator")
    fake.set_chat_member(GROUP, 3, "kicked")
    fake.set_chat_member(GROUP, 5, "restricted", until_date=2_000_000_000)
    fake.set_chat_member(GROUP, 6, "left")
    assert isinstance(await bot.get_chat_member(GROUP, 1), ChatMemberOwner)
    assert isinstance(await bot.get_chat_member(GROUP, 3), ChatMemberBanned)
    assert (await bot.get_chat_member(GROUP, 4)).status == "member"
    restricted = await bot.get_chat_member(GROUP, 5)
    assert isinstance(restricted, ChatMemberRestricted)
    assert restricted.until_date == dtm.datetime.fromtimestamp(2_000_000_000, dtm.UTC)
    assert isinstance(await bot.get_chat_member(GROUP, 6), ChatMemberLeft)
    assert isinstance(await bot.get_chat_member(GROUP, 2), ChatMemberAdministrator)

    assert await bot.set_my_commands([("edit", "Edit a photo"), ("help", "Help")])
    assert fake.commands() == [
        {"command": "edit", "description": "Edit a photo"},
        {"command": "help", "description": "Help"},
    ]
    assert fake.commands(language_code="ru") == []
    with pytest.raises(BadRequest, match=r"(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([("Edit", "Edit a photo")])


async def test_inline_query(fake: FakeTelegram, bot: Bot) -> None:
    fake.push_update(fake.inline_query_update(USER, "cats"))
    [update] = await bot.get_updates(timeout=1)
    assert update.inline_query is not None and update.inline_query.query == "cats"
    result = InlineQueryResultArticle("1", "Cats", InputTextMessageContent("meow"))
    assert await bot.answer_inline_query(update.inline_query.id, [result])
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_inline_query(update.inline_query.id, [result])


async def test_delay_causes_client_timeout(fake: FakeTelegram, bot: Bot) -> None:
    fake.delay("sendMessage", 5, times=1)
    with pytest.raises(TimedOut):
        await bot.send_message(CHAT, "slow", read_timeout=0.2)
    assert (await bot.send_message(CHAT, "fast")).text == "fast"


async def test_wait_for(fake: FakeTelegram, bot: Bot) -> None:
    async def send_later() -> None:
        await fake.wait_until_polling()
        await bot.send_message(CHAT, "hello")

    poller = asyncio.create_task(bot.get_updates(timeout=2))
    sender = asyncio.create_task(send_later())
    [call] = await fake.wait_for("sendMessage", lambda c: c.params["text"] == "hello")
    assert fake.sent_message(call)["text"] == "hello"
    await sender
    fake.push_update(fake.text_update(CHAT, USER, "release the poll"))
    assert len(await poller) == 1

    with pytest.raises(AssertionError, match=r"(?s)0 matching|sendPhoto call.*getMe"):
        await fake.wait_for("sendPhoto", timeout=0.05)
    with pytest.raises(ValueError, match="not a Bot API method"):
        fake.calls_of("sendFoto")


async def test_refuses_what_it_does_not_model(fake: FakeTelegram, bot: Bot) -> None:
    """Valid for Telegram, but not used by the bot: a loud 500, never a silent success."""
    with pytest.raises(NetworkError, match="does not model parse_mode MarkdownV2"):
        await bot.send_message(CHAT, "*Done*", parse_mode="MarkdownV2")
    with pytest.raises(NetworkError, match="does not model the HTML tag <tg-emoji>"):
        await bot.send_message(CHAT, '<tg-emoji emoji-id="1">x</tg-emoji>', parse_mode="HTML")
    with pytest.raises(NetworkError, match=r"does not model the parameters \['protect_content'\]"):
        await bot.send_message(CHAT, "x", protect_content=True)
    with pytest.raises(NetworkError, match="does not model files sent by HTTP URL"):
        await bot.send_photo(CHAT, "http://127.0.0.1:9/result.jpg")
    with pytest.raises(NetworkError, match="does not model chats addressed by @username"):
        await bot.send_message("@editors", "x")
    with pytest.raises(NetworkError, match="does not model the Bot API method sendChatAction"):
        await bot.send_chat_action(CHAT, "upload_photo")
    assert len(fake.server_errors) == 6
    assert fake.bot_messages(CHAT) == []
    fake.server_errors.clear()


async def test_ptb_application_polling_round_trip(fake: FakeTelegram) -> None:
    """A whole PTB Application: bootstrap, long polling, handlers, download and reply."""
    app = (
        Application.builder()
        .token(fake.token)
        .base_url(fake.base_url)
        .base_file_url(fake.base_file_url)
        .request(fast_request())
        .get_updates_request(fast_request())
        .build()
    )

    async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text("<b>Send a photo</b>", parse_mode="HTML")

    async def on_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None
        original = await (await message.photo[-1].get_file()).download_as_bytearray()
        rotated = io.BytesIO()
        Image.open(io.BytesIO(original)).transpose(Image.Transpose.ROTATE_90).save(rotated, "PNG")
        await message.reply_photo(rotated.getvalue(), caption="edited", do_quote=True)

    app.add_handler(CommandHandler("start", on_start))
    app.add_handler(MessageHandler(filters.PHOTO, on_photo))
    image = make_image(400, 300, "orange")
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=10)
        fake.push_update(fake.text_update(CHAT, USER, "/start"))
        [greeting] = await fake.wait_for("sendMessage")
        assert fake.sent_message(greeting)["text"] == "Send a photo"

        user_photo = fake.photo_update(CHAT, USER, image)
        fake.push_update(user_photo)
        [reply] = await fake.wait_for("sendPhoto")
        result = fake.sent_message(reply)
        assert result["caption"] == "edited"
        assert result["reply_to_message"]["message_id"] == fake.message_of(user_photo)["message_id"]
        assert (result["photo"][-1]["width"], result["photo"][-1]["height"]) == (300, 400)
        assert [info.data for info in fake.downloads] == [image]
        [sent] = fake.files_sent_to(CHAT)
        assert Image.open(io.BytesIO(sent)).size == (300, 400)
        await app.updater.stop()
        await app.stop()
    assert [call.method for call in fake.calls[:3]] == ["getMe", "deleteWebhook", "getUpdates"]
