"""The cheap paths of the edit lifecycle (issue 8) keep their promises.

* one edit writes the database in at most six transactions (create, submitting, submitted,
  outcome, delivery claim, delivered), with the status message id and the unblocking of the
  chat riding along with other writes, plus two for its Telegram update (recorded, done);
* the "working on it" message is sent while the photo is fetched, and is always recorded
  before the provider is asked, so delivery, failure and cancellation all find it;
* a provider callback is one conditional UPDATE; refusals still get their own status;
* deliveries run from a bounded work queue that drains on shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest
from sqlalchemy import event

from bot.tasks import TaskTracker, WorkQueue
from domain.edit import EditState
from storage.db import Database
from storage.dbconn import ThreadBackend
from tests.conftest import CHAT_ID, USER_ID, RunningBot
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram

WRITES = ("INSERT", "UPDATE", "DELETE")


@contextmanager
def count_transactions(db: Database) -> Iterator[dict[str, int]]:
    """Transactions begun on `db`'s engine, and how many of them wrote something."""
    counts = {"transactions": 0, "writing": 0}
    writing: set[int] = set()

    def begin(conn: Any) -> None:
        counts["transactions"] += 1

    def before(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(WRITES) and id(conn) not in writing:
            writing.add(id(conn))
            counts["writing"] += 1

    def end(conn: Any) -> None:
        writing.discard(id(conn))

    engine = db.sync_engine
    event.listen(engine, "begin", begin)
    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "commit", end)
    event.listen(engine, "rollback", end)
    try:
        yield counts
    finally:
        event.remove(engine, "begin", begin)
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "commit", end)
        event.remove(engine, "rollback", end)


async def test_one_edit_writes_in_eight_transactions(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    update = tg.photo_update(CHAT_ID, tg.user(USER_ID), make_jpeg(640, 480), caption="sunset")
    with count_transactions(webhook_bot.services.db) as counts:
        assert await tg.post_webhook(update) == 200
        edit = await webhook_bot.wait_state(EditState.DELIVERED)
        await tg.wait_for("deleteMessage")
    # The update recorded (before the 200) and marked done (durable intake); create (+
    # unblock), submitting (+ status message id), submitted, succeeded (the callback),
    # delivery claim (+ blocked check), delivered (+ file ids).
    assert counts["writing"] <= 8, counts
    assert edit.status_message_id is not None
    assert tg.is_deleted(CHAT_ID, edit.status_message_id)


async def test_status_message_goes_out_while_the_photo_is_fetched(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    tg.delay("sendMessage", 0.5, times=1)
    tg.delay("getFile", 0.5, times=1)
    update = tg.photo_update(CHAT_ID, tg.user(USER_ID), make_jpeg(320, 240), caption="blue")
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await tg.post_webhook(update) == 200
    edit = await webhook_bot.wait_state(EditState.DELIVERED)
    assert kie.tasks
    assert loop.time() - started < 5.0
    [status] = [c for c in tg.calls_of("sendMessage") if c.ok]
    [get_file] = tg.calls_of("getFile")
    assert abs(status.at - get_file.at) < 0.4  # answered within the same half second
    assert edit.status_message_id == status.result["message_id"]
    await tg.wait_for("deleteMessage")  # the status goes once the result is recorded
    assert tg.is_deleted(CHAT_ID, edit.status_message_id)


async def test_failed_edit_turns_the_late_status_message_into_the_error(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    """The photo fails before the status message is out: the failure still finds it."""
    await tg.wait_for("setWebhook")
    tg.delay("sendMessage", 0.5, times=1)
    tg.fail("getFile", 400, "Bad Request: file is too big")
    update = tg.photo_update(CHAT_ID, tg.user(USER_ID), make_jpeg(320, 240), caption="x")
    assert await tg.post_webhook(update) == 200
    edit = await webhook_bot.wait_edit(lambda e: e.notified_at is not None)
    assert edit.state is EditState.FAILED
    assert edit.status_message_id is not None
    [edited] = await tg.wait_for("editMessageText")
    assert edited.params["message_id"] == edit.status_message_id
    assert not kie.tasks


async def test_callback_refusals_keep_their_status(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    await tg.wait_for("setWebhook")
    kie.next_outcome(hold=True)
    update = tg.photo_update(CHAT_ID, tg.user(USER_ID), make_jpeg(320, 240), caption="x")
    assert await tg.post_webhook(update) == 200
    edit = await webhook_bot.wait_state(EditState.SUBMITTED)
    assert edit.task_id is not None
    data = {
        **kie.record_data(kie.tasks[edit.task_id]),
        "state": "success",
        "resultJson": '{"resultUrls": ["http://127.0.0.1:9/r.jpg"]}',
    }
    body = {"code": 200, "msg": "success", "data": data}
    url = f"{webhook_bot.url}/callbacks/kie/{edit.id}"
    async with aiohttp.ClientSession() as session:

        async def post(path: str, payload: Any) -> int:
            async with session.post(path, json=payload) as resp:
                return resp.status

        assert await post(f"{url}?token=wrong", body) == 404  # as an unknown edit (issue 16)
        assert await post(f"{webhook_bot.url}/callbacks/kie/999?token=x", body) == 404
        other = {**body, "data": {**data, "taskId": "another-task"}}
        assert await post(f"{url}?token={edit.callback_token}", other) == 409
        assert await post(f"{url}?token={edit.callback_token}", {"code": 200}) == 400
        assert (await webhook_bot.edit(edit.id)).state is EditState.SUBMITTED
        # The genuine callback: one conditional UPDATE records it; the repeat changes nothing.
        kie.release(edit.task_id)
        delivered = await webhook_bot.wait_state(EditState.DELIVERED, edit.id)
        genuine = kie.callback_body(kie.tasks[edit.task_id])
        assert await post(f"{url}?token={edit.callback_token}", genuine) == 200
        assert (await webhook_bot.edit(edit.id)).updated_at == delivered.updated_at
        assert len(tg.calls_of("sendPhoto")) == 1


async def test_work_queue_bounds_workers_and_capacity() -> None:
    tracker = TaskTracker()
    queue = WorkQueue(tracker, name="t", workers=2, capacity=3)
    running = 0
    peak = 0
    done: list[int] = []
    gate = asyncio.Event()

    async def job(n: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1
        done.append(n)

    accepted = [queue.submit(lambda n=n: job(n)) for n in range(5)]
    assert accepted == [True, True, True, False, False]  # three queued, then full
    await asyncio.sleep(0.01)
    assert len(tracker) == 2 and len(queue) == 1  # two workers took one job each
    assert queue.submit(lambda: job(3))
    gate.set()
    await tracker.drain(1.0)
    assert sorted(done) == [0, 1, 2, 3]
    assert peak == 2
    assert not queue.submit(lambda: job(9))  # closed by the drain


async def test_work_queue_survives_a_failing_job(caplog: pytest.LogCaptureFixture) -> None:
    tracker = TaskTracker()
    queue = WorkQueue(tracker, name="t", workers=1, capacity=10)
    done: list[str] = []

    async def boom() -> None:
        raise RuntimeError("boom")

    async def fine() -> None:
        done.append("fine")

    queue.submit(boom)
    queue.submit(fine)
    await tracker.drain(1.0)
    assert done == ["fine"]
    assert "background job failed" in caplog.text


async def test_sqlite_writers_queue_for_one_connection(tmp_path: Any) -> None:
    """Writers of one process wait their turn for one connection instead of racing for
    SQLite's write lock (whose busy handler sleeps, adding seconds at the tail)."""
    from tests.test_db import new_edit

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}")
    await db.migrate()
    try:
        assert isinstance(db.backend, ThreadBackend)  # one connection, one thread
        edits = [await db.edits.create(new_edit(f"k{i}")) for i in range(50)]
        loop = asyncio.get_running_loop()
        started = loop.time()
        claims = await asyncio.gather(
            *(
                db.edits.claim(edit.id, [EditState.QUEUED], f"w{n}", 60)
                for edit in edits
                if edit is not None
                for n in range(4)
            )
        )
        assert sum(claim is not None for claim in claims) == 50  # one winner per edit
        assert loop.time() - started < 5.0
    finally:
        await db.close()
