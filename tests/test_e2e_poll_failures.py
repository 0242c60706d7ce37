"""A failed task found by status polling ends the edit at once, with the provider's reason.

Both KIE documents call the query answer identical to the callback, and the documented
failure callback carries top-level code 501: for every family the query of a failed task
is answered with such a code (and with 200), and the edit must fail on the first query
that sees the failure, not wait out TASK_TIMEOUT as a "still running" query error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bot.config import Settings
from bot.formats import MAX_REASON_CHARS
from domain.edit import EditState
from tests.conftest import CHAT_ID, USER_ID, BotStarter, RunningBot, SettingsFactory
from tests.fakes._common import FakeTask
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.odkkk import FakeOdkkk
from tests.fakes.telegram import FakeTelegram
from tests.test_e2e_providers import (
    APIKLEY,
    APIKLEY_KEY,
    GPT4O_MODEL,
    ODKKK,
    ODKKK_KEY,
    PLAYGROUND_MODEL,
    family_settings,
    paths,
    ready,
    send_photo,
)

# Short enough that a failure mistaken for "still running" shows as `expired` quickly.
TASK_TIMEOUT = 4.0
POLL_MAX_INTERVAL = 0.2


Fake = FakeKie | FakeOdkkk


@dataclass(frozen=True)
class Family:
    name: str
    query_path: str  # a fragment of the status query's path
    fail_code: str  # the record's own code for the failure
    reason: str
    # (make_settings, the family's fake, **overrides) -> settings for a bot in polling mode
    settings: Callable[..., Settings]


def _kie_settings(**model: Any) -> Callable[..., Settings]:
    return lambda make, fake, **extra: make(webhook=False, **model, **extra)


FAMILIES = {
    "kie-jobs": Family(
        "kie-jobs", "/api/v1/jobs/recordInfo", "500", "Internal server error", _kie_settings()
    ),
    "kie-playground": Family(
        "kie-playground",
        "/api/v1/playground/recordInfo",
        "500",
        "Internal server error",
        _kie_settings(DEFAULT_MODEL=PLAYGROUND_MODEL, KIE_PLAYGROUND=True),
    ),
    "apikley": Family(
        "apikley",
        "/api/v1/jobs/recordInfo",
        "422",
        "image download failed: not an accepted image",
        lambda make, fake, **extra: family_settings(make, APIKLEY, fake, webhook=False, **extra),
    ),
    "kie-4o": Family(
        "kie-4o",
        "/api/v1/gpt4o-image/record-info",
        "400",
        "Content policy violation",
        _kie_settings(DEFAULT_MODEL=GPT4O_MODEL),
    ),
    "odkkk": Family(
        "odkkk",
        "/v1/tasks/",
        "500",
        "model crashed",
        lambda make, fake, **extra: family_settings(make, ODKKK, fake, webhook=False, **extra),
    ),
}


@asynccontextmanager
async def family_fake(family: Family, kie: FakeKie, top_code: int) -> AsyncIterator[Fake]:
    """The family's fake, answering a failed task's query with `top_code` at the top
    (the body's `code` for the KIE families, the HTTP status for odkkk)."""
    if family.name == "odkkk":
        async with FakeOdkkk(ODKKK_KEY, failed_query_status=top_code) as odkkk:
            yield odkkk
    elif family.name == "apikley":
        async with FakeKie(APIKLEY_KEY, flavor="apikley", fail_record_code=top_code) as apikley:
            yield apikley
    else:
        kie.fail_record_code = top_code
        yield kie


async def expect_failure_at_once(
    bot: RunningBot, tg: FakeTelegram, fake: Fake, family: Family
) -> None:
    """Fail a task while the bot polls it: the first query that sees it ends the edit."""
    code = family.fail_code
    fake.next_outcome(fail=(code, family.reason), hold=True)
    await send_photo(bot, tg, "x-ray")
    task = await wait_created(fake)
    await bot.wait_state(EditState.SUBMITTED)
    await fake.wait_for(lambda: bool(paths(fake, family.query_path)), what="a status query")
    fake.release(task.task_id)
    await fake.wait_task(task.task_id)
    queries = len(paths(fake, family.query_path))
    edit = await bot.wait_edit(lambda e: e.state is not EditState.SUBMITTED, within=10)
    assert edit.state is EditState.FAILED, (edit.state, edit.error_code)
    assert edit.error_code == f"task_failed:{code}"
    assert edit.error_detail == family.reason
    # The query in flight when the task failed, or the next one, ended the edit.
    assert len(paths(fake, family.query_path)) <= queries + 1
    notice = await tg.wait_for("editMessageText", lambda c: family.reason in c.params["text"])
    assert notice[-1].params["text"] == f"😔 The model couldn't edit this photo: {family.reason}"
    assert not tg.calls_of("sendPhoto")


async def wait_created(fake: Fake) -> FakeTask:
    await fake.wait_for(lambda: bool(fake.tasks), what="a task")
    return next(iter(fake.tasks.values()))


# (family, the top-level code of the failed task's query answer): 501 as the KIE documents'
# failure callback, 200 as the jobs query example; for 4o the codes its failure callback
# uses (kie-facts.md); for odkkk the HTTP status.
CASES = [
    *(
        (family, code)
        for family in ("kie-jobs", "kie-playground", "apikley")
        for code in (501, 200)
    ),
    *(("kie-4o", code) for code in (400, 500, 200)),
    *(("odkkk", code) for code in (500, 200)),
]


@pytest.mark.parametrize(("family", "top_code"), CASES)
async def test_polling_ends_the_edit_at_once_when_the_task_failed(
    family: str,
    top_code: int,
    tg: FakeTelegram,
    kie: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
) -> None:
    spec = FAMILIES[family]
    async with family_fake(spec, kie, top_code) as fake:
        settings = spec.settings(
            make_settings, fake, TASK_TIMEOUT=TASK_TIMEOUT, POLL_MAX_INTERVAL=POLL_MAX_INTERVAL
        )
        bot = await start_bot(settings)
        await ready(bot, tg)
        await expect_failure_at_once(bot, tg, fake, spec)


async def test_lost_failure_callback_is_found_by_polling_at_once(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    """Webhook mode, the callback never arrives: the poll after CALLBACK_GRACE ends it."""
    kie.fail_record_code = 501
    bot = await start_bot(
        make_settings(
            CALLBACK_GRACE=0.3, TASK_TIMEOUT=TASK_TIMEOUT, POLL_MAX_INTERVAL=POLL_MAX_INTERVAL
        )
    )
    await ready(bot, tg)
    kie.next_outcome(fail=("500", "Internal server error"), callbacks=0)
    await send_photo(bot, tg, "x-ray")
    await kie.wait_task()
    edit = await bot.wait_edit(lambda e: e.state is not EditState.SUBMITTED, within=10)
    assert edit.state is EditState.FAILED and edit.error_code == "task_failed:500"
    assert paths(kie, "/api/v1/jobs/recordInfo") and not kie.callbacks
    await tg.wait_for(
        "editMessageText",
        lambda c: "couldn't edit this photo: Internal server error" in c.params["text"],
    )


async def test_query_errors_without_a_failed_record_still_mean_ask_again(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    """A 501 (or 404, 500) about the query itself, with no record, is not the task's end."""
    bot = await start_bot(make_settings(webhook=False, POLL_MAX_INTERVAL=POLL_MAX_INTERVAL))
    await ready(bot, tg)
    kie.fail_next("/recordInfo", 501, times=2)
    kie.fail_next("/recordInfo", 404)
    kie.fail_next("/recordInfo", 500)
    kie.next_outcome(delay=0.6)
    await send_photo(bot, tg, "x-ray")
    await tg.wait_for("sendPhoto")
    await bot.wait_state(EditState.DELIVERED)
    assert len(paths(kie, "/api/v1/jobs/recordInfo")) >= 5


@pytest.mark.parametrize("top_code", [501, 200])
async def test_fake_kie_answers_a_failed_tasks_query_like_its_failure_callback(
    top_code: int,
) -> None:
    async with FakeKie(fail_record_code=top_code) as kie:
        headers = {"Authorization": f"Bearer {kie.api_key}"}
        missing = f"{kie.url}/files/missing.jpg"  # the task fails: its input is not there
        async with aiohttp.ClientSession(headers=headers) as session:
            body = {"model": "qwen/image-edit", "input": {"prompt": "p", "image_url": missing}}
            async with session.post(f"{kie.url}/api/v1/playground/createTask", json=body) as resp:
                task_id = (await resp.json())["data"]["taskId"]
            task = await kie.wait_task(task_id)
            query = f"{kie.url}/api/v1/playground/recordInfo?taskId={task_id}"
            async with session.get(query) as resp:
                assert resp.status == 200
                answer = await resp.json()
    assert answer["code"] == top_code
    assert answer["message"] == ("success" if top_code == 200 else "Playground task failed.")
    data = answer["data"]
    assert data["state"] == "fail" and data["taskId"] == task_id
    assert (data["failCode"], data["failMsg"]) == (task.fail_code, task.fail_msg)


async def test_a_nested_json_failure_message_is_shown_as_plain_text(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    """Issue 16: a `failMsg` shaped like deeply nested JSON once made the notice raise on
    every attempt; the user gets it as bounded plain text."""
    await tg.wait_for("setWebhook")
    kie.next_outcome(fail=("500", '{"a":\n' + "[" * 5000))
    update = tg.photo_update(CHAT_ID, tg.user(USER_ID), make_jpeg(320, 240), caption="x")
    assert await tg.post_webhook(update) == 200
    [edited] = await tg.wait_for("editMessageText")
    prefix = "😔 The model couldn't edit this photo: "
    text = edited.params["text"]
    assert text.startswith(prefix + '{"a": [[[')
    assert "\n" not in text and len(text) <= len(prefix) + MAX_REASON_CHARS
    edit = await webhook_bot.wait_edit(lambda e: e.notified_at is not None)
    assert edit.error_code == "task_failed:500"
