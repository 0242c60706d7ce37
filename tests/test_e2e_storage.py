"""Input photos end to end: formats reaching the provider clean, refusals, S3, cleanup."""

from __future__ import annotations

import asyncio
import inspect
import io
import os
import struct
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pillow_heif
from PIL import Image

from domain.edit import EditState
from storage.blobs import LocalBlobStore, new_key
from tests.conftest import CHAT_ID, USER_ID, BotStarter, RunningBot, SettingsFactory
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.s3 import ACCESS_KEY, SECRET_KEY, MotoS3
from tests.fakes.telegram import FakeTelegram

CANARY = "CanaryPhone-GPS-owner"  # EXIF Make: must never reach the provider
RED, GREEN, BLUE = (220, 30, 30), (30, 200, 30), (30, 30, 220)


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], within: float = 10.0, what: str = "condition"
) -> None:
    """Check `predicate` (sync or async) until it holds; AssertionError after `within` s."""
    deadline = time.monotonic() + within
    while True:
        outcome = predicate()
        if await outcome if inspect.isawaitable(outcome) else outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def wait_text(tg: FakeTelegram, needle: str, within: float = 10.0) -> str:
    """The first message text (sent or edited) containing `needle`."""

    def found() -> list[str]:
        texts = [c.params.get("text", "") for c in tg.calls_of("sendMessage")]
        texts += [c.params.get("text", "") for c in tg.calls_of("editMessageText")]
        return [t for t in texts if needle in t]

    await wait_until(lambda: bool(found()), within, f"a message with {needle!r}")
    return found()[0]


def gps_exif(orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = CANARY  # Make
    if orientation is not None:
        exif[0x0112] = orientation
    exif[0x8825] = {1: "N", 2: (55.0, 45.0, 21.0), 3: "E", 4: (37.0, 37.0, 4.0)}
    return exif


def encode(img: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def heic(width: int, height: int, color: tuple[int, int, int]) -> bytes:
    pillow_heif.register_heif_opener()
    img = Image.new("RGB", (width, height), color)
    return encode(img, "HEIF", quality=90, exif=gps_exif().tobytes())


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (48, 32), color) for color in (RED, GREEN, BLUE)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80)


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A few hundred bytes announcing width × height pixels."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def assert_clean(data: bytes) -> Image.Image:
    """A format the model accepts, without any metadata; returns the decoded image."""
    assert CANARY.encode() not in data
    with Image.open(io.BytesIO(data)) as img:
        assert img.format in {"JPEG", "PNG", "WEBP"}
        assert not img.getexif(), dict(img.getexif())
        assert not {"exif", "xmp", "icc_profile", "XML:com.adobe.xmp"} & set(img.info)
        img.load()
        return img.copy()


def close_to(actual: Any, expected: tuple[int, int, int], tolerance: int = 30) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual[:3], expected, strict=True))


async def send(bot: RunningBot, tg: FakeTelegram, update: dict[str, Any]) -> None:
    assert await tg.post_webhook(update) == 200


# Formats --------------------------------------------------------------------------------------


async def test_documents_in_other_formats_reach_the_provider_clean(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    documents: dict[str, tuple[bytes, str, str]] = {
        "heic": (heic(64, 48, RED), "image/heic", "IMG_0001.HEIC"),
        "bmp": (encode(Image.new("RGB", (64, 48), RED), "BMP"), "image/bmp", "scan.bmp"),
        "tiff": (
            encode(Image.new("RGB", (64, 48), RED), "TIFF", exif=gps_exif().tobytes()),
            "image/tiff",
            "scan.tiff",
        ),
        "gif": (animated_gif(), "image/gif", "loop.gif"),
        "webp": (
            encode(Image.new("RGB", (60, 40), RED), "WEBP", exif=gps_exif(6).tobytes()),
            "image/webp",
            "shot.webp",
        ),
        "jpeg": (
            encode(Image.new("RGB", (60, 40), RED), "JPEG", exif=gps_exif(6).tobytes()),
            "image/jpeg",
            "IMG_0002.JPG",
        ),
    }
    for name in ("heic", "tiff", "webp", "jpeg"):  # the inputs really carry the metadata
        assert CANARY.encode() in documents[name][0], name
    for name, (data, mime, file_name) in documents.items():
        update = tg.document_update(
            CHAT_ID,
            tg.user(USER_ID),
            data,
            mime_type=mime,
            file_name=file_name,
            caption=f"edit the {name}",
        )
        await send(webhook_bot, tg, update)

    await tg.wait_for("sendPhoto", count=len(documents), timeout=20)
    tasks = {task.request["input"]["prompt"]: task for task in kie.tasks.values()}
    assert len(tasks) == len(documents)
    for name in documents:
        task = tasks[f"edit the {name}"]
        assert task.phase == "success", (name, task.fail_msg)
        (received,) = task.inputs
        img = assert_clean(received)
        expected_size = (40, 60) if name in ("webp", "jpeg") else (img.width, img.height)
        assert img.size == expected_size, name  # EXIF orientation 6 applied to the pixels
        # GIF: the first frame (red), not a later one.
        assert close_to(img.convert("RGB").getpixel((5, 5)), RED), name
    # Every edit ended delivered.
    for edit_id in range(1, len(documents) + 1):
        await webhook_bot.wait_state(EditState.DELIVERED, edit_id)


async def test_unreadable_files_get_a_clear_message_and_no_task(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    truncated = make_jpeg(640, 480)
    truncated = truncated[: len(truncated) // 3]
    cases = [
        (bomb_png(), "image/png", "bomb.png", "en", "too many pixels", "image:too_many_pixels"),
        (truncated, "image/jpeg", "cut.jpg", "en", "damaged or incomplete", "image:truncated"),
        (b"", "image/jpeg", "empty.jpg", "en", "The file is empty.", "image:empty"),
        (truncated, "image/jpeg", "cut.jpg", "ru", "повреждено", "image:truncated"),
    ]
    for n, (data, mime, file_name, lang, _text, _code) in enumerate(cases, start=1):
        update = tg.document_update(
            CHAT_ID + n,
            tg.user(USER_ID + n, language_code=lang),
            data,
            mime_type=mime,
            file_name=file_name,
            caption="make it nicer",
        )
        await send(webhook_bot, tg, update)
    for _data, _mime, _name, _lang, text, _code in cases:
        assert await wait_text(tg, text)
    for n in range(1, len(cases) + 1):
        await webhook_bot.wait_state(EditState.FAILED, n)
    codes = {edit.chat_id: edit.error_code for edit in await webhook_bot.edits()}
    assert codes == {CHAT_ID + n: case[-1] for n, case in enumerate(cases, start=1)}
    assert not kie.tasks and not kie.requests
    assert not list((webhook_bot.settings.data_dir / "files").iterdir())


# S3 -------------------------------------------------------------------------------------------


async def test_s3_edit_end_to_end_then_the_photo_is_deleted(
    tg: FakeTelegram,
    kie: FakeKie,
    s3_server: MotoS3,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
) -> None:
    bucket = await s3_server.create_bucket()
    bot = await start_bot(
        make_settings(
            STORAGE="s3",
            S3_BUCKET=bucket,
            S3_ENDPOINT_URL=s3_server.url,
            S3_ACCESS_KEY_ID=ACCESS_KEY,
            S3_SECRET_ACCESS_KEY=SECRET_KEY,
            S3_PREFIX="bot/inputs",
            FILE_URL_TTL=600,
            BLOB_GRACE=0,
            BLOB_CLEANUP_INTERVAL=0.05,
        )
    )
    await tg.wait_for("setWebhook")
    image = make_jpeg(64, 48)
    await send(bot, tg, tg.photo_update(CHAT_ID, tg.user(USER_ID), image, caption="s3 please"))

    await tg.wait_for("sendPhoto")
    task = next(iter(kie.tasks.values()))
    assert task.inputs == [image]  # downloaded from the bucket by the (fake) provider
    url = task.request["input"]["image_url"]
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == s3_server.url
    assert parts.path.startswith(f"/{bucket}/bot/inputs/")
    assert "X-Amz-Signature=" in parts.query and "X-Amz-Expires=600" in parts.query
    assert kie.fetched_urls == [url]
    edit = await bot.wait_state(EditState.DELIVERED)

    # Ended + BLOB_GRACE=0: the periodic cleanup removes the object and forgets the key.
    async def cleaned_up() -> bool:
        gone = not await s3_server.keys(bucket, "bot/inputs/")
        return gone and not (await bot.edit(edit.id)).blob_keys

    await wait_until(cleaned_up, what="the photo deleted from S3 and forgotten")
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 404


async def test_s3_misconfiguration_tells_the_user_and_alerts_the_operator_once(
    tg: FakeTelegram,
    kie: FakeKie,
    s3_server: MotoS3,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
) -> None:
    bot = await start_bot(
        make_settings(
            STORAGE="s3",
            S3_BUCKET="bucket-that-does-not-exist",
            S3_ENDPOINT_URL=s3_server.url,
            S3_ACCESS_KEY_ID=ACCESS_KEY,
            S3_SECRET_ACCESS_KEY=SECRET_KEY,
        )
    )
    await tg.wait_for("setWebhook")
    for n in (1, 2):
        update = tg.photo_update(CHAT_ID, tg.user(USER_ID), make_jpeg(32, 32), caption=f"#{n}")
        await send(bot, tg, update)
    for n in (1, 2):
        edit = await bot.wait_state(EditState.FAILED, n)
        assert edit.error_code == "storage_misconfigured"
    assert "storage is misconfigured" in await wait_text(tg, "storage is misconfigured")
    alerts = [c for c in tg.calls_of("sendMessage") if c.params["chat_id"] == 9001]
    assert len(alerts) == 1 and "NoSuchBucket" in alerts[0].params["text"]
    assert not kie.tasks


# Lifecycle (local) ----------------------------------------------------------------------------


def files_dir(bot: RunningBot) -> Path:
    return bot.settings.data_dir / "files"


async def test_input_photo_is_kept_for_the_grace_period_then_deleted(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    await send(
        webhook_bot, tg, tg.photo_update(CHAT_ID, tg.user(USER_ID), make_jpeg(), caption="x")
    )
    edit = await webhook_bot.wait_state(EditState.DELIVERED)
    assert edit.blob_keys and len(edit.blob_keys) == 1
    path = files_dir(webhook_bot) / edit.blob_keys[0]
    url = next(iter(kie.tasks.values())).request["input"]["image_url"]

    # Within BLOB_GRACE (600 s by default) the photo stays: a provider retry still works.
    assert webhook_bot.settings.blob_grace == 600
    assert await webhook_bot.services.edits.cleanup_blobs() == 0
    assert path.exists()
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            assert resp.status == 200
        # Once the grace period is over it goes, with its URL.
        assert await webhook_bot.services.edits.cleanup_blobs(grace=0) == 1
        assert not path.exists()
        async with http.get(url) as resp:
            assert resp.status == 404
    assert not (await webhook_bot.edit(edit.id)).blob_keys
    assert await webhook_bot.services.edits.cleanup_blobs(grace=0) == 0


async def test_periodic_cleanup_deletes_photos_of_finished_and_failed_edits(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(BLOB_GRACE=0, BLOB_CLEANUP_INTERVAL=0.05))
    await tg.wait_for("setWebhook")
    kie.next_outcome(fail=("500", "Internal server error"))
    kie.next_outcome(hold=True)
    user = tg.user(USER_ID)
    await send(bot, tg, tg.photo_update(CHAT_ID, user, make_jpeg(), caption="fails"))
    await bot.wait_state(EditState.FAILED, 1)
    await send(bot, tg, tg.photo_update(CHAT_ID, user, make_jpeg(), caption="succeeds"))
    await kie.wait_for(lambda: len(kie.tasks) == 2, what="the second task")
    held = (await bot.wait_state(EditState.SUBMITTED, 2)).blob_keys
    assert held
    # The failed edit's photo goes; the running edit's photo stays while the task runs.
    await wait_until(lambda: len(list(files_dir(bot).iterdir())) == 1, what="cleanup")
    assert [p.name for p in files_dir(bot).iterdir()] == held
    kie.release_all()
    await bot.wait_state(EditState.DELIVERED, 2)

    async def cleaned_up() -> bool:
        gone = not list(files_dir(bot).iterdir())
        return gone and not (await bot.edit(1)).blob_keys and not (await bot.edit(2)).blob_keys

    await wait_until(cleaned_up, what="both photos deleted and forgotten")


async def test_periodic_sweep_removes_orphans_older_than_max_age(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(BLOB_CLEANUP_INTERVAL=0.05))
    store = bot.services.blobs
    assert isinstance(store, LocalBlobStore)
    assert bot.settings.blob_max_age == 24 * 3600
    orphan = await store.put(make_jpeg(), extension="jpg")  # e.g. a crash before submit
    fresh = await store.put(make_jpeg(), extension="jpg")
    foreign = files_dir(bot) / "operator-notes.txt"
    foreign.write_text("not a blob")
    leftover = files_dir(bot) / f"{new_key('png')}.tmp"
    leftover.write_bytes(b"half-written")
    day_ago = time.time() - 25 * 3600
    for path in (files_dir(bot) / orphan.key, foreign, leftover):
        os.utime(path, (day_ago, day_ago))

    await wait_until(lambda: not (files_dir(bot) / orphan.key).exists(), what="orphan sweep")
    await wait_until(lambda: not leftover.exists(), what="leftover sweep")
    assert (files_dir(bot) / fresh.key).exists() and foreign.exists()
    async with aiohttp.ClientSession() as http, http.get(orphan.url) as resp:
        assert resp.status == 404
