"""The living status message and the status poll schedule, through the real bot.

The "working on it" message shows the provider's progress and how long the edit should
still take (odkkk's own estimate; 4o's progress extrapolated), says when the provider is
busy, and is rewritten no more often than STATUS_EDIT_INTERVAL(_GROUP) allows and never to
the same words. Status polls go out when the task should be done: a task of a model whose
recent edits took about as long is found moments after it finished with a handful of
queries, and a failing status query never brings the next one closer than POLL_MIN_INTERVAL.
Times are scaled down through the settings (a "10 s" task runs 2 s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from itertools import pairwise
from typing import Any

import pytest

from domain.edit import EditState
from tests.conftest import USER_ID, BotStarter, RunningBot, SettingsFactory
from tests.fakes._common import FakeTask
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.odkkk import FakeOdkkk
from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram_server import ApiCall
from tests.test_e2e_providers import (
    GPT4O,
    ODKKK,
    FakeProvider,
    Family,
    deliver,
    family_settings,
    paths,
    ready,
    send_photo,
)

RECORD_4O = "/api/v1/gpt4o-image/record-info"
GROUP_ID = -1001234
# Scaled-down timing: a tenth (status messages) or a fifth (poll schedule) of real time.
STATUS = {"STATUS_EDIT_INTERVAL": 0.3, "POLL_INTERVAL": 0.1, "POLL_MAX_INTERVAL": 0.2}


async def created(fake: FakeProvider, count: int = 1) -> FakeTask:
    await fake.wait_for(lambda: len(fake.tasks) >= count, what="a created task")
    return list(fake.tasks.values())[count - 1]


async def status_message_id(bot: RunningBot, edit_id: int = 1) -> int:
    edit = await bot.wait_edit(lambda e: e.status_message_id is not None, edit_id)
    assert edit.status_message_id is not None
    return edit.status_message_id


def rewrites(tg: FakeTelegram, message_id: int) -> list[ApiCall]:
    """The bot's rewrites of one message, in order."""
    return [c for c in tg.calls_of("editMessageText") if c.params["message_id"] == message_id]


async def polling_bot_for(
    family: Family,
    fake: FakeProvider,
    tg: FakeTelegram,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
    **settings: Any,
) -> RunningBot:
    values = family_settings(make_settings, family, fake, webhook=False, **settings)
    bot = await start_bot(values)
    await ready(bot, tg)
    return bot


@pytest.mark.parametrize(
    ("family", "eta"),
    [
        # odkkk says how long it still needs (the fake: a fixed 40 s while held).
        (ODKKK, "About 40 s left."),
        # 4o only says how far it is: half way after under 5 s leaves under 5 s.
        (GPT4O, "About 5 s left."),
    ],
    ids=["odkkk", "kie-4o"],
)
async def test_progress_and_time_left_are_shown_then_replaced_by_the_result(
    tg: FakeTelegram,
    kie: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
    family: Family,
    eta: str,
) -> None:
    async with family.serve(kie) as fake:
        if isinstance(fake, FakeOdkkk):
            fake.estimate = 40
        bot = await polling_bot_for(family, fake, tg, make_settings, start_bot, **STATUS)
        fake.next_outcome(hold=True)
        await send_photo(bot, tg, "make it blue")
        task = await created(fake)
        status_id = await status_message_id(bot)
        [shown, *_] = await tg.wait_for(
            "editMessageText",
            lambda c: c.params["message_id"] == status_id and "50%" in c.params["text"],
        )
        assert shown.params["text"] == f"⏳ Editing your photo… 50%\n{eta}"
        fake.release(task.task_id)
        await tg.wait_for("sendPhoto")
        await tg.wait_for("deleteMessage", lambda c: c.params["message_id"] == status_id)


async def test_unchanged_words_are_not_sent_again(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    async with ODKKK.serve(kie) as fake:
        assert isinstance(fake, FakeOdkkk)
        fake.estimate = 40
        bot = await polling_bot_for(ODKKK, fake, tg, make_settings, start_bot, **STATUS)
        fake.next_outcome(hold=True)
        await send_photo(bot, tg, "make it blue")
        task = await created(fake)
        status_id = await status_message_id(bot)
        await tg.wait_for("editMessageText", lambda c: c.params["message_id"] == status_id)
        queries = len(paths(fake, "/v1/tasks/"))
        # Several more polls, every one saying the same: the message is left alone.
        await fake.wait_for(
            lambda: len(paths(fake, "/v1/tasks/")) >= queries + 4, what="four more polls"
        )
        texts = [c.params["text"] for c in rewrites(tg, status_id)]
        # "Sent" comes first only when the submission took longer than the status interval
        # (a busy machine); the progress is said once, however many polls repeat it.
        progress = "⏳ Editing your photo… 50%\nAbout 40 s left."
        assert texts[-1:] == [progress] and texts.count(progress) == 1, texts
        assert set(texts[:-1]) <= {"📨 Sent to the editing service…"}, texts
        fake.release(task.task_id)
        await tg.wait_for("sendPhoto")


async def changing_estimate(fake: FakeOdkkk) -> AsyncIterator[None]:
    """odkkk's estimate changes every 50 ms (10 s, 15 s, ... 55 s): every poll has news."""
    step = 0
    while True:
        fake.estimate = 10 + 5 * (step % 10)
        step += 1
        await asyncio.sleep(0.05)
        yield


@pytest.mark.parametrize(
    ("chat_id", "caption", "interval"),
    [(USER_ID, "make it blue", 0.5), (GROUP_ID, "/edit make it blue", 1.0)],
    ids=["private", "group"],
)
async def test_rewrites_keep_to_the_interval_of_the_chat(
    tg: FakeTelegram,
    kie: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
    chat_id: int,
    caption: str,
    interval: float,
) -> None:
    async with ODKKK.serve(kie) as fake:
        assert isinstance(fake, FakeOdkkk)
        fake.estimate = 10
        bot = await polling_bot_for(
            ODKKK,
            fake,
            tg,
            make_settings,
            start_bot,
            POLL_INTERVAL=0.05,
            POLL_MAX_INTERVAL=0.1,
            STATUS_EDIT_INTERVAL=0.5,
            STATUS_EDIT_INTERVAL_GROUP=1.0,
        )
        fake.next_outcome(hold=True)
        update = tg.photo_update(chat_id, tg.user(USER_ID), make_jpeg(320, 240), caption=caption)
        await deliver(bot, tg, update)
        task = await created(fake)
        status_id = await status_message_id(bot)
        sent = tg.calls_of("sendMessage")[-1]
        changes = changing_estimate(fake)
        deadline = time.monotonic() + 3.2 * interval
        while time.monotonic() < deadline:
            await anext(changes)
        fake.release(task.task_id)
        await tg.wait_for("sendPhoto")
        times = [c.at for c in rewrites(tg, status_id)]
        # News all the time, yet the message moved once per interval: the first rewrite an
        # interval after the edit was recorded (the message goes out moments after that),
        # then one per interval.
        assert 2 <= len(times) <= 4, times
        assert times[0] - sent.received >= interval - 0.15, times[0] - sent.received
        gaps = [later - earlier for earlier, later in pairwise(times)]
        assert all(gap >= interval - 0.02 for gap in gaps), gaps
        texts = [c.params["text"] for c in rewrites(tg, status_id)]
        assert all(earlier != later for earlier, later in pairwise(texts)), texts


async def test_a_status_message_telegram_refuses_to_rewrite_is_left_alone(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    """The user deleted it (or Telegram refuses for another reason): each turn's rewrite is
    tried once and dropped, the polls go on and the result still comes."""
    async with ODKKK.serve(kie) as fake:
        assert isinstance(fake, FakeOdkkk)
        bot = await polling_bot_for(ODKKK, fake, tg, make_settings, start_bot, **STATUS)
        tg.fail("editMessageText", 400, "Bad Request: message to edit not found", times=100)
        fake.next_outcome(hold=True)
        await send_photo(bot, tg, "make it blue")
        task = await created(fake)
        status_id = await status_message_id(bot)
        changes = changing_estimate(fake)
        deadline = time.monotonic() + 10
        while len(rewrites(tg, status_id)) < 2:
            assert time.monotonic() < deadline, tg.calls_of("editMessageText")
            await anext(changes)
        refused = rewrites(tg, status_id)
        assert not any(c.ok for c in refused)
        assert refused[1].at - refused[0].at >= 0.3 - 0.02  # refusals keep to the turns too
        fake.release(task.task_id)
        await tg.wait_for("sendPhoto")
        await bot.wait_state(EditState.DELIVERED)


async def test_a_busy_provider_is_shown_until_the_task_is_sent(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    kie.fail_next(GPT4O.create_path, 429, "Rate limited")
    bot = await polling_bot_for(
        GPT4O,
        kie,
        tg,
        make_settings,
        start_bot,
        PROVIDER_BACKOFF_BASE=2.0,  # the first retry waits 1-2 s
        STATUS_EDIT_INTERVAL=0.3,
    )
    kie.next_outcome(hold=True)
    await send_photo(bot, tg, "make it blue")
    status_id = await status_message_id(bot)
    [busy] = await tg.wait_for(
        "editMessageText",
        lambda c: c.params["message_id"] == status_id and "busy" in c.params["text"],
    )
    assert busy.params["text"] == "⏳ The editing service is busy; retrying in about 5 s."
    task = await created(kie)
    # Sent after all: the message no longer says the provider is busy.
    [sent, *_] = await tg.wait_for(
        "editMessageText",
        lambda c: c.params["message_id"] == status_id and c.at > busy.at,
    )
    assert "busy" not in sent.params["text"]
    kie.release(task.task_id)
    await tg.wait_for("sendPhoto")


# The poll schedule -----------------------------------------------------------------------

# A "10 s" task at a fifth of real time, and the schedule's settings scaled alike.
TASK = 2.0
SCHEDULE = {
    "POLL_INTERVAL": 0.6,
    "POLL_MIN_INTERVAL": 0.1,
    "POLL_MAX_INTERVAL": 6.0,
    "SWEEP_INTERVAL": 0.4,
}


async def run_edit(bot: RunningBot, tg: FakeTelegram, fake: FakeProvider, n: int) -> FakeTask:
    fake.next_outcome(delay=TASK)
    await send_photo(bot, tg, f"edit {n}")
    task = await created(fake, n)
    await bot.wait_state(EditState.DELIVERED, edit_id=n, within=20)
    return task


async def test_a_task_as_long_as_the_models_recent_ones_is_found_at_once(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await polling_bot_for(GPT4O, kie, tg, make_settings, start_bot, **SCHEDULE)
    await run_edit(bot, tg, kie, 1)  # the model's history: one edit of the same length
    before = len(paths(kie, RECORD_4O))
    task = await run_edit(bot, tg, kie, 2)
    edit = await bot.edit(2)
    assert edit.finished_at is not None and task.complete_time is not None
    late = edit.finished_at - task.complete_time / 1000
    queries = len(paths(kie, RECORD_4O)) - before
    # Found within a fifth of a second (a second, unscaled) of the provider finishing,
    # with at most four status queries.
    assert queries <= 4, queries
    assert late <= 0.2 + 0.1, late  # + scheduling noise of a shared machine


async def test_without_history_progress_guides_the_polls(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    """4o's progress alone, extrapolated, finds the first edit of a model quickly too."""
    bot = await polling_bot_for(GPT4O, kie, tg, make_settings, start_bot, **SCHEDULE)
    task = await run_edit(bot, tg, kie, 1)
    edit = await bot.edit(1)
    assert edit.finished_at is not None and task.complete_time is not None
    queries = len(paths(kie, RECORD_4O))
    late = edit.finished_at - task.complete_time / 1000
    assert queries <= 4 and late <= 0.3, (queries, late)


async def test_a_failing_status_query_never_polls_faster_than_the_floor(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    floor = 0.1
    bot = await polling_bot_for(
        GPT4O,
        kie,
        tg,
        make_settings,
        start_bot,
        POLL_INTERVAL=floor,
        POLL_MIN_INTERVAL=floor,
        POLL_MAX_INTERVAL=1.0,
        SWEEP_INTERVAL=0.02,
        PROVIDER_MAX_RETRIES=0,  # one request per status poll (no transport retries between)
    )
    kie.next_outcome(delay=0.05)
    await send_photo(bot, tg, "edit 1")
    await bot.wait_state(EditState.DELIVERED, within=10)  # history: a 0.05 s model
    kie.fail_next(RECORD_4O, 500, "down", times=1000)
    kie.next_outcome(hold=True)
    first = len(kie.requests)
    await send_photo(bot, tg, "edit 2")
    task = await created(kie, 2)
    # Long overdue for its model and every query failing: still one per floor at most.
    await kie.wait_for(lambda: len(paths(kie, RECORD_4O)) >= 8, within=10, what="8 queries")
    stamps = [
        at
        for at, (_, path) in zip(kie.requested_at[first:], kie.requests[first:], strict=True)
        if path.endswith(RECORD_4O)
    ]
    gaps = [later - earlier for earlier, later in pairwise(stamps)]
    assert min(gaps) >= floor - 0.01, gaps
    kie.release(task.task_id)


async def test_a_drawings_progress_speaks_of_drawing(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await polling_bot_for(GPT4O, kie, tg, make_settings, start_bot, **STATUS)
    kie.next_outcome(hold=True)
    await deliver(bot, tg, tg.text_update(USER_ID, tg.user(USER_ID), "/imagine a red fox"))
    task = await created(kie)
    status_id = await status_message_id(bot)
    [shown, *_] = await tg.wait_for(
        "editMessageText",
        lambda c: c.params["message_id"] == status_id and "50%" in c.params["text"],
    )
    assert shown.params["text"].startswith("⏳ Drawing your image… 50%"), shown.params["text"]
    kie.release(task.task_id)
    await tg.wait_for("sendPhoto")
