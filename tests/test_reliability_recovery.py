"""The recovery sweeper: lost callbacks, undelivered results across a restart, edits cut off
while being prepared or submitted, and tasks that never finish."""

from __future__ import annotations

import secrets
import time
from typing import Any

import sqlalchemy as sa

from domain.edit import Edit, EditState, InputPhoto, NewEdit
from storage.db import Database
from storage.schema import edits
from tests.conftest import CHAT_ID, USER_ID, BotStarter, RunningBot, SettingsFactory, free_port
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.reliability import (
    ContentServer,
    callback_url,
    eventually,
    post,
    quiesce,
    replies_to,
    send_edit,
    sent_ok,
    success_body,
    to_chat,
)


def creates(kie: FakeKie) -> list[str]:
    return [path for _, path in kie.requests if path.endswith("/createTask")]


async def test_lost_callback_is_replaced_by_a_status_query(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(CALLBACK_GRACE=0.3))
    await tg.wait_for("setWebhook")
    kie.next_outcome(callbacks=0)  # the provider finishes but never calls back
    message = await send_edit(bot, tg)
    edit = await bot.wait_state(EditState.DELIVERED)
    await quiesce(bot)
    task = kie.tasks[edit.task_id or ""]
    assert not kie.callbacks
    assert [p for _, p in kie.requests if p.endswith("/recordInfo")]
    [sent] = sent_ok(tg, "sendPhoto", message)
    assert sent.files["photo"] == task.results[0]


async def test_succeeded_but_undelivered_result_is_sent_after_a_restart(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    settings = make_settings(port=free_port())
    outage = {"on": True}
    tg.fail("sendPhoto", 500, "Internal Server Error", times=10**6, when=lambda _: outage["on"])
    first = await start_bot(settings)
    await tg.wait_for("setWebhook")
    message = await send_edit(first, tg)
    await first.wait_state(EditState.SUCCEEDED)
    await tg.wait_for("sendPhoto")  # Telegram refused at least one attempt
    await first.stop()  # graceful: the retrying delivery gives its lease back
    stopped = await _row(first, 1)
    assert stopped["state"] == "succeeded" and stopped["lease_until"] is None

    outage["on"] = False
    second = await start_bot(settings)  # same DATA_DIR and database
    await second.wait_state(EditState.DELIVERED)
    await quiesce(second)
    task = next(iter(kie.tasks.values()))
    [sent] = sent_ok(tg, "sendPhoto", message)
    assert sent.files["photo"] == task.results[0]
    assert len(kie.tasks) == 1 and len(creates(kie)) == 1


async def _row(bot: RunningBot, edit_id: int) -> dict[str, Any]:
    """A raw row (leases included) read after the bot stopped, through a new connection."""
    db = Database(bot.settings.resolved_database_url)
    try:
        result = await db.execute(sa.select(edits).where(edits.c.id == edit_id))
        row = result.mappings().one()
    finally:
        await db.close()
    return dict(row)


async def crashed_edit(
    bot: RunningBot, tg: FakeTelegram, state: EditState, *, lease_left: float = -1.0, **fields: Any
) -> tuple[Edit, dict[str, Any]]:
    """An edit as a crashed process left it: in `state`, its lease running out in
    `lease_left` seconds (negative: already expired), last touched a minute ago."""
    db = bot.services.db
    update = tg.photo_update(CHAT_ID, tg.user(USER_ID), make_jpeg(300, 200), caption="add a hat")
    message = tg.message_of(update)
    photo = message["photo"][-1]
    new = await db.edits.create(
        NewEdit(
            dedupe_key=f"msg:{CHAT_ID}:{message['message_id']}",
            chat_id=CHAT_ID,
            chat_type="private",
            user_id=USER_ID,
            message_id=message["message_id"],
            lang="en",
            provider="kie",
            model="qwen/image-edit",
            prompt="add a hat",
            callback_token=secrets.token_urlsafe(24),
            inputs=[
                InputPhoto(
                    file_id=photo["file_id"],
                    file_size=photo["file_size"],
                    width=photo["width"],
                    height=photo["height"],
                )
            ],
            state=state,
        )
    )
    assert new is not None
    now = time.time()
    values: dict[str, Any] = {"updated_at": now - 60, **fields}
    edit = await db.edits.update_fields(
        new.id,
        only_in=[state],
        lease_owner="a-process-that-died",
        lease_until=now + lease_left,
        **values,
    )
    assert edit is not None
    return edit, message


async def test_edit_cut_off_while_submitting_is_never_resubmitted(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    edit, message = await crashed_edit(webhook_bot, tg, EditState.SUBMITTING)
    # Another worker's live lease is respected: that submission may still be under way.
    live, live_message = await crashed_edit(
        webhook_bot, tg, EditState.SUBMITTING, lease_left=webhook_bot.settings.submit_lease
    )
    failed = await webhook_bot.wait_state(EditState.FAILED, edit.id)
    assert failed.error_code == "submit_interrupted"
    text = webhook_bot.services.tr("en", "error.submit_interrupted")
    await tg.wait_for("sendMessage", lambda c: c.params["text"] == text)
    await eventually(
        lambda: _notified(webhook_bot, edit.id), what="the notice to be recorded as sent"
    )
    await quiesce(webhook_bot)
    assert [c.params["text"] for c in to_chat(tg, CHAT_ID, "sendMessage")] == [text]
    assert sent_ok(tg, "sendMessage", message)  # as a reply to the request
    assert not creates(kie) and not kie.tasks  # nothing was (re)submitted
    assert (await webhook_bot.edit(live.id)).state is EditState.SUBMITTING
    assert not sent_ok(tg, "sendMessage", live_message)


async def _notified(bot: RunningBot, edit_id: int) -> bool:
    return (await bot.edit(edit_id)).notified_at is not None


async def test_callback_for_an_interrupted_submission_still_delivers(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    """The crash came after the provider took the request: its authenticated callback
    arrives later, and the user gets the result after all (once), not a silent loss."""
    await tg.wait_for("setWebhook")
    edit, message = await crashed_edit(webhook_bot, tg, EditState.SUBMITTING)
    await webhook_bot.wait_state(EditState.FAILED, edit.id)
    text = webhook_bot.services.tr("en", "error.submit_interrupted")
    await tg.wait_for("sendMessage", lambda c: c.params["text"] == text)
    result = make_jpeg(300, 200, (10, 200, 10))
    async with ContentServer({"/r.jpg": (result, "image/jpeg")}) as cdn:
        body = success_body("7" * 32, f"{cdn.url}/r.jpg")
        for _ in range(3):  # with the provider's retries
            status, _ = await post(callback_url(webhook_bot, edit), json_body=body)
            assert status == 200
        done = await webhook_bot.wait_state(EditState.DELIVERED, edit.id)
        await quiesce(webhook_bot)
    assert done.task_id == "7" * 32 and done.error_code is None
    [sent] = sent_ok(tg, "sendPhoto", message)
    assert sent.files["photo"] == result
    assert not creates(kie)  # and still nothing was resubmitted


async def test_edit_cut_off_while_preparing_photos_is_submitted_once(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    """`queued` means the provider was never asked: the sweeper simply starts again."""
    await tg.wait_for("setWebhook")
    edit, message = await crashed_edit(
        webhook_bot, tg, EditState.QUEUED, updated_at=time.time() - 3600
    )
    done = await webhook_bot.wait_state(EditState.DELIVERED, edit.id)
    await quiesce(webhook_bot)
    assert len(creates(kie)) == 1 and len(kie.tasks) == 1
    assert done.task_id in kie.tasks
    assert len(sent_ok(tg, "sendPhoto", message)) == 1


async def test_task_that_never_finishes_expires_and_the_user_is_told(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(CALLBACK_GRACE=0.2, TASK_TIMEOUT=1.0))
    await tg.wait_for("setWebhook")
    kie.next_outcome(hold=True, callbacks=0)
    message = await send_edit(bot, tg)
    edit = await bot.wait_state(EditState.EXPIRED)
    assert edit.error_code == "timeout"
    text = bot.services.tr("en", "error.timeout")
    status = await tg.wait_for("editMessageText", lambda c: c.params["text"] == text)
    assert status[0].params["message_id"] == edit.status_message_id
    await eventually(lambda: _notified(bot, edit.id), what="the notice to be recorded")
    await quiesce(bot)
    assert [p for _, p in kie.requests if p.endswith("/recordInfo")]  # it was asked first
    assert not sent_ok(tg, "sendPhoto", message)
    assert len([c for c in tg.calls_of("editMessageText") if c.params["text"] == text]) == 1


async def test_edit_arriving_during_shutdown_is_submitted_by_the_next_run(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    """While shutting down the bot still records what arrives, but submits nothing: the
    provider would fetch the input photo from a service that is going away."""
    settings = make_settings(port=free_port())
    first = await start_bot(settings)
    await tg.wait_for("setWebhook")
    first.services.edits.stop_submitting()  # what the shutdown does first
    message = await send_edit(first, tg)
    await tg.wait_for("sendMessage")  # "got it"
    await quiesce(first)
    assert (await first.edit(1)).state is EditState.QUEUED and not kie.tasks
    await first.stop()

    second = await start_bot(settings)
    await second.wait_state(EditState.DELIVERED)  # at once, not after the queued grace
    await quiesce(second)
    assert len(kie.tasks) == 1 and len(creates(kie)) == 1
    assert len(sent_ok(tg, "sendPhoto", message)) == 1


async def test_a_failure_notice_shown_but_not_recorded_is_not_sent_again(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings())
    await tg.wait_for("setWebhook")
    kie.next_outcome(("500", "Internal server error"))
    message = await send_edit(bot, tg)
    edit = await bot.wait_edit(lambda e: e.notified_at is not None)
    await quiesce(bot)
    # What a crash between Telegram showing the notice (the status message rewritten) and
    # the database recording it leaves behind; the sweeper tells the user again.
    await bot.services.db.execute(
        edits.update()
        .where(edits.c.id == edit.id)
        .values(notified_at=None, updated_at=time.time() - 10)
    )
    await bot.wait_edit(lambda e: e.notified_at is not None, within=10)
    await quiesce(bot)
    # The rewrite to the same text is refused as "not modified": the user was told.
    assert len([c for c in tg.calls_of("editMessageText") if not c.ok]) == 1
    working = bot.services.tr("en", "edit.queued")
    failed = bot.services.tr("en", "error.task_failed", reason="Internal server error")
    said = sorted(
        (c for c in to_chat(tg, CHAT_ID, "sendMessage", "editMessageText") if c.ok),
        key=lambda c: c.at,
    )
    assert [(c.method, c.params["text"]) for c in said] == [
        ("sendMessage", working),
        ("editMessageText", failed),
    ]
    assert said[0].params["reply_parameters"]["message_id"] == message["message_id"]


async def test_the_working_message_is_recorded_before_waiting_for_the_rate_limiter(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    # A wait for the provider's rate limiter may last minutes. A crash meanwhile must not
    # leave "Editing your photo…" unknown to the database: nothing would ever remove it or
    # rewrite it into a failure notice.
    bot = await start_bot(make_settings(KIE_RATE_LIMIT="1/60"))
    await tg.wait_for("setWebhook")
    await send_edit(bot, tg, "one")
    await bot.wait_state(EditState.DELIVERED, 1)
    second = await send_edit(bot, tg, "two")  # its turn is a minute away
    [status] = await tg.wait_for("sendMessage", replies_to(second))
    waiting = await bot.wait_edit(lambda e: e.status_message_id is not None, 2)
    assert waiting.state is EditState.QUEUED
    assert waiting.status_message_id == tg.sent_message(status)["message_id"]
    assert len(kie.tasks) == 1
