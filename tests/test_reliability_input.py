"""Bad input through the real bot: broken files, odd prompts, unknown commands and buttons.

Each gets a clear, localized message, nothing is sent to the provider for it, and the bot
keeps working (a good edit afterwards is delivered).
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import pytest
from PIL import Image

from domain.edit import EditState
from tests.conftest import CHAT_ID, USER_ID, RunningBot
from tests.fakes.images import make_jpeg, pixel
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.reliability import eventually, quiesce, send_edit, sent_ok


def bomb_png(width: int = 60_000, height: int = 60_000) -> bytes:
    """A tiny PNG whose header announces billions of pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def animated_gif() -> bytes:
    """Two frames: red, then blue."""
    frames = [Image.new("RGB", (64, 48), color) for color in ((220, 20, 20), (20, 20, 220))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return buf.getvalue()


def text_of(bot: RunningBot, key: str, lang: str = "en", **params: Any) -> str:
    return bot.services.tr(lang, key, **params)


async def post(tg: FakeTelegram, update: dict[str, Any]) -> dict[str, Any]:
    assert await tg.post_webhook(update) == 200
    return tg.message_of(update)


async def told(tg: FakeTelegram, text: str, count: int = 1) -> None:
    """Wait until the bot said `text` (a new message, or its status message edited)."""

    def said() -> bool:
        calls = [
            call
            for call in tg.calls
            if call.ok
            and call.method in ("sendMessage", "editMessageText")
            and call.params.get("text") == text
        ]
        return len(calls) >= count

    await eventually(said, what=f"the bot to say {text!r}")


async def good_edit_still_works(bot: RunningBot, tg: FakeTelegram) -> None:
    message = await send_edit(bot, tg, "and now a normal one")
    await tg.wait_for("sendPhoto")
    assert len(sent_ok(tg, "sendPhoto", message)) == 1


@pytest.mark.parametrize(
    ("data", "mime", "name", "key"),
    [
        (b"", "image/png", "empty.png", "error.image.empty"),
        (make_jpeg(400, 300)[:300], "image/jpeg", "cut.jpg", "error.image.truncated"),
        (bomb_png(), "image/png", "bomb.png", "error.image.too_many_pixels"),
        (b"just some text, not a picture", "image/png", "fake.png", "error.image.not_an_image"),
        (b"%PDF-1.4 nope", "application/pdf", "doc.pdf", "error.unsupported_file"),
        (b"\x00" * 10, "application/octet-stream", "blob.bin", "error.unsupported_file"),
    ],
    ids=["zero-bytes", "truncated", "decompression-bomb", "not-an-image", "pdf", "binary"],
)
async def test_bad_files_get_a_clear_message(
    tg: FakeTelegram,
    kie: FakeKie,
    webhook_bot: RunningBot,
    data: bytes,
    mime: str,
    name: str,
    key: str,
) -> None:
    await tg.wait_for("setWebhook")
    update = tg.document_update(
        CHAT_ID, tg.user(USER_ID), data, mime_type=mime, file_name=name, caption="edit this"
    )
    await post(tg, update)
    await told(tg, text_of(webhook_bot, key))
    assert not kie.tasks  # nothing reached the provider
    assert all(edit.state is EditState.FAILED for edit in await webhook_bot.edits())
    await good_edit_still_works(webhook_bot, tg)


async def test_animated_gif_uses_its_first_frame(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    update = tg.document_update(
        CHAT_ID,
        tg.user(USER_ID),
        animated_gif(),
        mime_type="image/gif",
        file_name="anim.gif",
        caption="make it pop",
    )
    message = await post(tg, update)
    await webhook_bot.wait_state(EditState.DELIVERED)
    assert len(sent_ok(tg, "sendPhoto", message)) == 1
    [task] = kie.tasks.values()
    red, _, blue = pixel(task.inputs[0], (10, 10))[:3]
    assert red > 150 and blue < 100  # the red first frame, not the blue second one


async def test_odd_prompts_get_clear_messages(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    user = tg.user(USER_ID)
    photo = await post(tg, tg.photo_update(CHAT_ID, user, make_jpeg(64, 64)))
    # No caption: the bot asks for the prompt.
    ask = text_of(webhook_bot, "edit.ask_prompt")
    await told(tg, ask)
    # Only control and invisible characters: the same as no prompt.
    noise = "\x00\x01\x07\u200b\u2060\x7f"
    await post(tg, tg.photo_update(CHAT_ID, user, make_jpeg(64, 64), caption=noise))
    await told(tg, ask, count=2)
    empty = text_of(webhook_bot, "error.input.prompt_empty")
    await post(tg, tg.text_update(CHAT_ID, user, noise, reply_to=photo))
    await told(tg, empty)
    await post(tg, tg.text_update(CHAT_ID, user, "/edit", reply_to=photo))
    await told(tg, empty, count=2)
    too_long = text_of(webhook_bot, "error.input.prompt_too_long", length=2001, limit=2000)
    await post(tg, tg.text_update(CHAT_ID, user, "y" * 2001, reply_to=photo))
    await told(tg, too_long)
    assert not kie.tasks and await webhook_bot.edits() == []
    await good_edit_still_works(webhook_bot, tg)


async def test_unknown_command_and_button_get_clear_answers(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    user = tg.user(USER_ID, language_code="ru")
    await post(tg, tg.text_update(CHAT_ID, user, "/frobnicate now"))
    await told(tg, text_of(webhook_bot, "error.unknown_command", "ru"))
    status = await send_edit(webhook_bot, tg, lang="ru")
    sent = (await tg.wait_for("sendPhoto"))[0]
    for junk in ("\x00", "x" * 64, "edit:999999", "settings:model:nope", "🙂"):
        query = tg.callback_query_update(user, tg.sent_message(sent), junk)
        assert await tg.post_webhook(query) == 200
    answers = await tg.wait_for("answerCallbackQuery", count=5)
    assert all(call.ok for call in answers)
    assert all(call.params.get("text") for call in answers)  # each says something
    await quiesce(webhook_bot)
    assert len(sent_ok(tg, "sendPhoto", status)) == 1
    assert len(kie.tasks) == 1
