"""Decode amplification through the real bot: an image bomb sent as a document is refused
before decoding, and large images normalized at once stay within NORMALIZE_MEMORY_BUDGET_MB."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import bot.images.gate as gate_module
from bot.images.limits import ImageLimits, NormalizedImage
from bot.images.normalize import normalize, normalize_cost
from domain.edit import EditState
from tests.conftest import CHAT_ID, USER_ID, BotStarter, RunningBot, SettingsFactory
from tests.fakes.images import blank_webp, zero_png
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.reliability import eventually, sent_ok


async def test_image_bomb_document_is_refused_and_nothing_is_submitted(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    bomb = blank_webp(7000, 7000)  # 2 KB; about 900 MB to normalize without the plan
    update = tg.document_update(
        CHAT_ID,
        tg.user(USER_ID),
        bomb,
        mime_type="image/webp",
        file_name="bomb.webp",
        caption="make it brighter",
    )
    assert await tg.post_webhook(update) == 200
    refusal = webhook_bot.services.tr("en", "error.image.too_many_pixels")

    def refused() -> bool:
        return any(
            call.ok
            and call.method in ("sendMessage", "editMessageText")
            and call.params.get("text") == refusal
            for call in tg.calls
        )

    await eventually(refused, what="the too-many-pixels refusal")
    edit = await webhook_bot.wait_state(EditState.FAILED)
    assert edit.error_code == "image:too_many_pixels"
    assert not kie.tasks
    assert webhook_bot.services.edits.ctx.normalizer.memory.peak == 0  # refused before any


async def test_large_images_at_once_wait_for_each_other(
    tg: FakeTelegram,
    kie: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running = await start_bot(make_settings(NORMALIZE_MEMORY_BUDGET_MB=64))
    memory = running.services.edits.ctx.normalizer.memory
    assert memory.budget == 64 << 20
    await tg.wait_for("setWebhook")
    big = zero_png(2500, 2500, bit_depth=8, level=1)
    spec = running.services.registry.model(running.settings.default_model)
    cost = normalize_cost(big, spec.image_limits)
    assert memory.budget < 2 * cost  # two at once would not fit
    lock = threading.Lock()
    inside: list[int] = []
    most = 0
    entered = 0

    def instrumented(data: bytes, limits: ImageLimits, *, trusted_jpeg: bool) -> NormalizedImage:
        nonlocal most, entered
        with lock:
            inside.append(len(data))
            most = max(most, len(inside))
            entered += 1
            first = entered == 1
        if first:  # hold the first one until another is waiting for its turn
            deadline = time.monotonic() + 10
            while memory.waiting == 0 and time.monotonic() < deadline:
                time.sleep(0.005)
        try:
            return normalize(data, limits, trusted_jpeg=trusted_jpeg)
        finally:
            with lock:
                inside.remove(len(data))

    monkeypatch.setattr(gate_module, "normalize", instrumented)
    users = [USER_ID + n for n in range(3)]
    updates = [
        tg.document_update(
            CHAT_ID + n,
            tg.user(user),
            big,
            mime_type="image/png",
            file_name="big.png",
            caption="sharpen it",
        )
        for n, user in enumerate(users)
    ]
    assert await asyncio.gather(*(tg.post_webhook(u) for u in updates)) == [200] * 3
    await eventually(lambda: len(kie.tasks) == 3, within=30, what="three submissions")
    for update in updates:
        await eventually(
            lambda update=update: bool(sent_ok(tg, "sendPhoto", tg.message_of(update))),
            within=30,
            what="the result",
        )
    assert entered == 3
    assert most == 1  # each waited for the one before
    assert memory.peak <= memory.budget
    assert memory.in_use == 0
