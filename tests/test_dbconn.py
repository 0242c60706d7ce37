"""How statements reach the database (storage.dbconn), on a real SQLite file and PostgreSQL.

A transaction spanning several awaits sees no other transaction's statement inside it,
rolls back when its block raises or is cancelled, and a body run in one hop may only await
its connection. The database thread runs queued transactions back to back.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa

from storage.db import Database
from storage.dbconn import BodySuspended, DbConn, NestedTransaction, ThreadBackend
from storage.schema import blocked_chats
from tests.test_db import db  # noqa: F401  (the fixture: SQLite and PostgreSQL)

INSERT = blocked_chats.insert()
COUNT = sa.select(sa.func.count()).select_from(blocked_chats)


async def count(database: Database) -> int:
    async with database.connect() as conn:
        return int((await conn.execute(COUNT)).scalar_one())


async def test_a_session_is_not_interleaved_with_other_transactions(db: Database) -> None:  # noqa: F811
    seen: list[int] = []

    async def writer(chat_id: int) -> None:
        async def body(conn: DbConn) -> None:
            await conn.execute(INSERT, {"chat_id": chat_id, "reason": "w", "created_at": 1.0})

        await db.transaction(body)

    async with db.begin() as conn:
        await conn.execute(INSERT, {"chat_id": 1, "reason": "s", "created_at": 1.0})
        others = [asyncio.create_task(writer(100 + i)) for i in range(5)]
        await asyncio.sleep(0.05)  # the writers are queued meanwhile
        seen.append(int((await conn.execute(COUNT)).scalar_one()))
    await asyncio.gather(*others)
    if db.dialect == "sqlite":
        assert seen == [1]  # nothing ran inside the session
    else:
        assert seen[0] >= 1  # PostgreSQL: other connections, READ COMMITTED
    assert await count(db) == 6


async def test_a_failing_or_cancelled_session_rolls_back(db: Database) -> None:  # noqa: F811
    with pytest.raises(RuntimeError):
        async with db.begin() as conn:
            await conn.execute(INSERT, {"chat_id": 1, "reason": "x", "created_at": 1.0})
            raise RuntimeError("boom")

    entered = asyncio.Event()

    async def slow() -> None:
        async with db.begin() as conn:
            await conn.execute(INSERT, {"chat_id": 2, "reason": "x", "created_at": 1.0})
            entered.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(slow())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await count(db) == 0

    # A statement error inside a session is raised where it was awaited; the rest rolls back.
    with pytest.raises(sa.exc.IntegrityError):
        async with db.begin() as conn:
            await conn.execute(INSERT, {"chat_id": 3, "reason": "x", "created_at": 1.0})
            await conn.execute(INSERT, {"chat_id": 3, "reason": "again", "created_at": 1.0})
    assert await count(db) == 0


async def test_a_one_hop_body_may_only_await_its_connection(db: Database) -> None:  # noqa: F811
    async def body(conn: DbConn) -> None:
        await conn.execute(INSERT, {"chat_id": 1, "reason": "x", "created_at": 1.0})
        await asyncio.sleep(0)

    if db.dialect == "sqlite":
        with pytest.raises(BodySuspended):
            await db.transaction(body)
        assert await count(db) == 0  # rolled back
    else:
        await db.transaction(body)  # an ordinary coroutine on PostgreSQL
        assert await count(db) == 1


async def test_nested_use_inside_a_session_is_refused_not_deadlocked(tmp_path: Any) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'n.sqlite3'}")
    await database.migrate()
    try:
        assert isinstance(database.backend, ThreadBackend)
        with pytest.raises(NestedTransaction):
            async with asyncio.timeout(5), database.begin():  # the same task
                await database.is_chat_blocked(1)
        assert await database.is_chat_blocked(1) is False  # the thread is free again
    finally:
        await database.close()


async def test_queued_transactions_all_commit_in_order(db: Database) -> None:  # noqa: F811
    async def insert(chat_id: int) -> int:
        async def body(conn: DbConn) -> int:
            await conn.execute(INSERT, {"chat_id": chat_id, "reason": "q", "created_at": 1.0})
            return int((await conn.execute(COUNT)).scalar_one())

        return await db.transaction(body)

    counts = await asyncio.gather(*(insert(i) for i in range(200)))
    assert sorted(counts) == list(range(1, 201)) or db.dialect == "postgresql"
    assert await count(db) == 200


async def test_results_before_a_session_are_not_held_back_by_it(tmp_path: Any) -> None:
    """A batch that contains a session hands back the results of the jobs before it first:
    those callers go on while the session waits for its owner."""
    database = Database(f"sqlite:///{tmp_path / 'b.sqlite3'}")
    await database.migrate()
    try:
        release = asyncio.Event()

        async def quick() -> bool:
            return await database.is_chat_blocked(1)

        async def session() -> None:
            async with database.begin() as conn:
                await conn.execute(INSERT, {"chat_id": 5, "reason": "s", "created_at": 1.0})
                await release.wait()

        first = asyncio.create_task(quick())
        holder = asyncio.create_task(session())  # queued right behind `first`
        assert await asyncio.wait_for(first, 5) is False
        release.set()
        await asyncio.wait_for(holder, 5)
        assert await count(database) == 1
    finally:
        await database.close()
    await database.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        await database.is_chat_blocked(1)


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
        created = await asyncio.gather(*(database.create_edit(new_edit(key)) for key in keys))
        assert sum(edit is not None for edit in created) == 150
        assert [edit is not None for edit in created] == [i < 150 for i in range(200)]
        assert {edit.dedupe_key for edit in created if edit} == set(keys)
        async with database.connect() as conn:
            stored = (await conn.execute(sa.text("SELECT count(*) FROM edits"))).scalar()
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
                await conn.execute(INSERT, {"chat_id": chat_id, "reason": "b", "created_at": 1.0})

            await database.transaction(body)

        await asyncio.gather(*(insert(i) for i in range(3 * GROUP_MAX)))
        assert await count(database) == 3 * GROUP_MAX
        assert 3 <= commits <= 3 * GROUP_MAX // 4  # grouped, but never more than GROUP_MAX
    finally:
        await database.close()
