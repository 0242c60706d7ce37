"""How statements reach the database (storage.dbconn), on a real SQLite file and PostgreSQL.

A transaction body runs exactly once: it commits when it returns and is undone when it
raises, alone, even when SQLite ran it in one group commit with other bodies. On SQLite a
body runs in one hop and may only await its connection. The database thread runs queued
transactions back to back.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from storage.db import Database
from storage.dbconn import (
    BodySuspended,
    DbConn,
    NestedTransaction,
    ThreadBackend,
    TransactionLost,
)
from storage.schema import blocked_chats
from tests.test_db import db  # noqa: F401  (the fixture: SQLite and PostgreSQL)

INSERT = blocked_chats.insert()
COUNT = sa.select(sa.func.count()).select_from(blocked_chats)
CHATS = sa.select(blocked_chats.c.chat_id).order_by(blocked_chats.c.chat_id)


async def count(database: Database) -> int:
    return int((await database.execute(COUNT)).scalar_one())


async def chats(database: Database) -> list[int]:
    return [int(row[0]) for row in (await database.execute(CHATS)).all()]


def row(chat_id: int, reason: str = "x") -> dict[str, Any]:
    return {"chat_id": chat_id, "reason": reason, "created_at": 1.0}


async def test_a_body_is_not_interleaved_with_other_transactions(db: Database) -> None:  # noqa: F811
    seen: list[tuple[int, int]] = []

    async def writer(chat_id: int) -> None:
        await db.execute(INSERT, row(chat_id, "w"))

    async def body(conn: DbConn) -> None:
        await conn.execute(INSERT, row(1, "s"))
        before = int((await conn.execute(COUNT)).scalar_one())
        await conn.execute(INSERT, row(2, "s"))
        seen.append((before, int((await conn.execute(COUNT)).scalar_one())))

    await asyncio.gather(*(writer(100 + i) for i in range(5)), db.transaction(body))
    [(before, after)] = seen
    if db.dialect == "sqlite":
        assert after == before + 1  # nothing ran between the body's statements
    else:
        assert after >= before + 1  # PostgreSQL: other connections, READ COMMITTED
    assert await count(db) == 7


async def test_a_failing_body_rolls_back(db: Database) -> None:  # noqa: F811
    async def fails(conn: DbConn) -> None:
        await conn.execute(INSERT, row(1))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await db.transaction(fails)
    assert await count(db) == 0

    # A statement error inside a body is raised where it was awaited; the rest rolls back.
    async def repeats(conn: DbConn) -> None:
        await conn.execute(INSERT, row(3))
        await conn.execute(INSERT, row(3, "again"))

    with pytest.raises(sa.exc.IntegrityError):
        await db.transaction(repeats)
    assert await count(db) == 0

    if db.dialect == "postgresql":
        # There a body is an ordinary coroutine: cancelled half-way, it is rolled back.
        entered = asyncio.Event()

        async def slow(conn: DbConn) -> None:
            await conn.execute(INSERT, row(2))
            entered.set()
            await asyncio.sleep(30)

        task = asyncio.create_task(db.transaction(slow))
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await count(db) == 0


async def test_a_one_hop_body_may_only_await_its_connection(db: Database) -> None:  # noqa: F811
    async def body(conn: DbConn) -> None:
        await conn.execute(INSERT, row(1))
        await asyncio.sleep(0)

    if db.dialect == "sqlite":
        with pytest.raises(BodySuspended):
            await db.transaction(body)
        assert await count(db) == 0  # rolled back
    else:
        await db.transaction(body)  # an ordinary coroutine on PostgreSQL
        assert await count(db) == 1


async def test_database_use_inside_a_body_is_refused_not_deadlocked(tmp_path: Any) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'n.sqlite3'}")
    await database.migrate()
    try:
        assert isinstance(database.backend, ThreadBackend)

        async def body(conn: DbConn) -> None:
            await conn.execute(INSERT, row(1))
            await database.execute(COUNT)  # from inside the database thread

        with pytest.raises(NestedTransaction):
            await asyncio.wait_for(database.transaction(body), 5)
        assert await count(database) == 0  # rolled back, and the thread is free again
    finally:
        await database.close()


async def test_queued_transactions_all_commit_in_order(db: Database) -> None:  # noqa: F811
    async def insert(chat_id: int) -> int:
        async def body(conn: DbConn) -> int:
            await conn.execute(INSERT, row(chat_id, "q"))
            return int((await conn.execute(COUNT)).scalar_one())

        return await db.transaction(body)

    counts = await asyncio.gather(*(insert(i) for i in range(200)))
    assert sorted(counts) == list(range(1, 201)) or db.dialect == "postgresql"
    assert await count(db) == 200


class Gate:
    """Holds the SQLite database thread (in a `run_sync` job) until opened, so that the
    transactions queued meanwhile are run as one batch, in one group commit."""

    def __init__(self, database: Database) -> None:
        self._open = threading.Event()
        self.held = asyncio.ensure_future(database.run_sync(lambda _conn: self._open.wait(10)))

    async def open(self) -> None:
        for _ in range(3):
            await asyncio.sleep(0)  # every task started meanwhile has queued its job
        self._open.set()
        assert await self.held is True


async def test_each_body_runs_once_and_alone_fails(db: Database) -> None:  # noqa: F811
    """Bodies that fail (raising, a statement error, an error after statements that
    worked) are undone alone; their neighbours in the same group commit, and no body runs
    twice."""
    runs: Counter[int] = Counter()
    commits = 0

    def on_commit(_conn: Any) -> None:
        nonlocal commits
        commits += 1

    def body(i: int) -> Any:
        async def run(conn: DbConn) -> int:
            runs[i] += 1
            await conn.execute(INSERT, row(i))
            if i == 3:
                raise RuntimeError("boom")
            if i == 6:
                await conn.execute(INSERT, row(100, "a repeated key"))
            return i

        return run

    await db.execute(INSERT, row(100))
    gate = Gate(db) if db.dialect == "sqlite" else None
    sa.event.listen(db.sync_engine, "commit", on_commit)
    try:
        calls = [asyncio.ensure_future(db.transaction(body(i))) for i in range(10)]
        calls.insert(4, asyncio.ensure_future(db.execute(INSERT, row(100, "a repeated key"))))
        if gate is not None:
            await gate.open()
        results = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        sa.event.remove(db.sync_engine, "commit", on_commit)
    assert runs == Counter(range(10))
    failed = [type(result) for result in results if isinstance(result, BaseException)]
    assert failed == [RuntimeError, sa.exc.IntegrityError, sa.exc.IntegrityError]
    assert await chats(db) == [0, 1, 2, 4, 5, 7, 8, 9, 100]
    if gate is not None:
        assert commits == 1  # one group: the failures were its neighbours


async def test_a_transaction_the_database_lost_fails_every_body_of_its_group(
    tmp_path: Any,
) -> None:
    """When SQLite itself rolls the transaction back (simulated: a body ends it), the
    bodies that ran before in the same group hear of it; later ones are not affected."""
    database = Database(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    await database.migrate()
    runs: Counter[str] = Counter()

    def insert(name: str, chat_id: int) -> Any:
        async def run(conn: DbConn) -> None:
            runs[name] += 1
            await conn.execute(INSERT, row(chat_id))

        return run

    async def lose(conn: DbConn) -> None:
        runs["lose"] += 1
        await conn.execute(sa.text("ROLLBACK"))
        raise RuntimeError("the database rolled back")

    try:
        gate = Gate(database)
        calls = [
            asyncio.ensure_future(database.transaction(body))
            for body in (insert("before", 1), lose, insert("after", 2))
        ]
        await gate.open()
        before, lost, after = await asyncio.gather(*calls, return_exceptions=True)
        assert isinstance(before, TransactionLost)
        assert isinstance(lost, RuntimeError) and after is None
        assert runs == {"before": 1, "lose": 1, "after": 1}
        assert await chats(database) == [2]
    finally:
        await database.close()


async def test_a_call_runs_after_the_transactions_queued_before_it(tmp_path: Any) -> None:
    """A `run_sync` job sees what was queued before it committed, and nothing queued after."""
    database = Database(f"sqlite:///{tmp_path / 'b.sqlite3'}")
    await database.migrate()
    try:
        gate = Gate(database)

        def counted(conn: sa.Connection) -> int:
            return int(conn.execute(COUNT).scalar_one())

        first = asyncio.ensure_future(database.execute(INSERT, row(1)))
        call = asyncio.ensure_future(database.run_sync(counted))
        later = asyncio.ensure_future(database.execute(INSERT, row(2)))
        await gate.open()
        await asyncio.gather(first, later)
        assert await call == 1
        assert await count(database) == 2
    finally:
        await database.close()
    await database.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        await count(database)


async def test_group_commit_gives_each_caller_what_running_alone_would(tmp_path: Any) -> None:
    """Concurrent transactions share commits; one that fails (here: a repeated key) fails
    alone, and the others of its group are committed all the same."""
    from tests.test_db import new_edit

    database = Database(f"sqlite:///{tmp_path / 'g.sqlite3'}")
    await database.migrate()
    commits = 0

    def on_commit(_conn: Any) -> None:
        nonlocal commits
        commits += 1

    sa.event.listen(database.sync_engine, "commit", on_commit)
    try:
        keys = [f"k{i % 150}" for i in range(200)]  # 50 repeats of earlier keys
        created = await asyncio.gather(*(database.edits.create(new_edit(key)) for key in keys))
        assert sum(edit is not None for edit in created) == 150
        assert [edit is not None for edit in created] == [i < 150 for i in range(200)]
        assert {edit.dedupe_key for edit in created if edit} == set(keys)
        stored = (await database.execute(sa.text("SELECT count(*) FROM edits"))).scalar()
        assert stored == 150
        assert commits < 150  # grouped
    finally:
        await database.close()


async def test_a_large_burst_is_committed_in_bounded_groups(tmp_path: Any) -> None:
    from storage.dbconn import GROUP_MAX

    database = Database(f"sqlite:///{tmp_path / 'l.sqlite3'}")
    await database.migrate()
    commits = 0

    def on_commit(_conn: Any) -> None:
        nonlocal commits
        commits += 1

    sa.event.listen(database.sync_engine, "commit", on_commit)
    try:

        async def insert(chat_id: int) -> None:
            async def body(conn: DbConn) -> None:
                await conn.execute(INSERT, row(chat_id, "b"))

            await database.transaction(body)

        await asyncio.gather(*(insert(i) for i in range(3 * GROUP_MAX)))
        assert await count(database) == 3 * GROUP_MAX
        assert 3 <= commits <= 3 * GROUP_MAX // 4  # grouped, but never more than GROUP_MAX
    finally:
        await database.close()
