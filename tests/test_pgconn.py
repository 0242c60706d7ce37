"""PostgreSQL through asyncpg (storage.pgconn, storage.pgpool), on a real server.

SQLAlchemy compiles, asyncpg runs: what the repositories see must be what SQLAlchemy's
engine gave them (rows, row counts, IN lists, many rows at once, JSON, its exceptions), each
shape is prepared once per connection, and the pool survives what a server does to its
connections (a restart during a quiet spell, a cancelled statement).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from storage.db import Database
from storage.dbconn import DbConn
from storage.pgconn import PgBackend
from storage.schema import blocked_chats, chat_settings
from tests.pg import PostgresServer

CHAT = blocked_chats.c.chat_id


def psql_value(server: PostgresServer, sql: str) -> str:
    """One value from the server, without the event loop running meanwhile."""
    answer = subprocess.run(
        [
            *(str(server.bins / "psql"), "-h", "127.0.0.1", "-p", str(server.port)),
            *("-U", server.user, "-d", "postgres", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return answer.stdout.strip()


@pytest.fixture
async def pg(postgres: PostgresServer) -> AsyncIterator[Database]:
    url = postgres.new_database().replace("postgresql://", "postgresql+asyncpg://", 1)
    database = Database(url)
    await database.migrate()
    yield database
    await database.close()


def backend(db: Database) -> PgBackend:
    assert isinstance(db.backend, PgBackend)
    return db.backend


def database_name(db: Database) -> str:
    return sa.engine.make_url(db.url).database or ""


def terminate_sessions(server: PostgresServer, name: str) -> None:
    """What a server restart does to a replica's idle connections; returns once they are gone."""
    others = f"FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    psql_value(server, f"SELECT count(pg_terminate_backend(pid)) {others}")
    deadline = time.monotonic() + 10
    while psql_value(server, f"SELECT count(*) {others}") != "0":
        assert time.monotonic() < deadline, "the server did not end the sessions"
        time.sleep(0.02)


def chats(values: list[int]) -> list[dict[str, object]]:
    return [{"chat_id": value, "reason": f"r{value}", "created_at": 1.0} for value in values]


async def test_rows_counts_in_lists_and_many_rows_are_as_sqlalchemy_gives_them(
    pg: Database,
) -> None:
    await pg.execute(blocked_chats.insert(), chats([1, 2, 3, 4, 5]))  # many rows at once
    for wanted in ([1], [2, 3], [1, 4, 5]):  # one shape, IN lists of other lengths
        rows = await pg.execute(sa.select(CHAT).where(CHAT.in_(wanted)).order_by(CHAT))
        assert [row.chat_id for row in rows.all()] == wanted
    changed = await pg.execute(
        blocked_chats.update().where(CHAT > 2).values(reason="late")  # no RETURNING
    )
    assert changed.rowcount == 3
    gone = await pg.execute(blocked_chats.delete().where(CHAT == 99))
    assert gone.rowcount == 0
    named = await pg.execute(
        sa.text("SELECT count(*) AS n, max(chat_id) AS top FROM blocked_chats")
    )
    assert named.mappings().one() == {"n": 5, "top": 5}
    # JSON goes in and comes back as Python values; a float stays a float
    settings = {"model": "kie:x", "params": {"n": 2, "tags": ["a", "ö"]}}
    await pg.execute(
        chat_settings.insert().values(chat_id=-7, settings=settings, version=1, updated_at=2.5)
    )
    stored = (await pg.execute(sa.select(chat_settings).where(chat_settings.c.chat_id == -7))).one()
    assert stored.settings == settings
    assert stored.updated_at == 2.5 and isinstance(stored.updated_at, float)


async def test_a_statement_shape_is_prepared_once_per_connection(pg: Database) -> None:
    seen: list[int] = []

    async def body(conn: DbConn) -> None:
        for chat_id in range(30):  # one shape, thirty values
            await conn.execute(sa.select(CHAT).where(chat_id == CHAT))
        count = sa.text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE :like")
        rows = await conn.execute(count, {"like": "%FROM blocked_chats%WHERE%"})
        seen.append(int(rows.scalar_one()))

    await pg.transaction(body)
    assert seen == [1]


async def test_a_refused_statement_is_sqlalchemys_error_and_the_connection_stays_usable(
    pg: Database,
) -> None:
    errors: list[BaseException] = []
    pg.watch_errors(errors.append)
    await pg.execute(blocked_chats.insert(), chats([1])[0])
    with pytest.raises(sa.exc.IntegrityError):
        await pg.execute(blocked_chats.insert(), chats([1])[0])

    async def body(conn: DbConn) -> None:
        await conn.execute(blocked_chats.insert(), chats([2])[0])
        await conn.execute(blocked_chats.insert(), chats([1])[0])

    with pytest.raises(sa.exc.IntegrityError):
        await pg.transaction(body)  # undone as a whole: chat 2 is not there
    assert [type(error) for error in errors] == [sa.exc.IntegrityError] * 2
    rows = await pg.execute(sa.select(CHAT).order_by(CHAT))
    assert [row.chat_id for row in rows.all()] == [1]


async def test_a_server_restart_during_a_quiet_spell_costs_no_failed_statement(
    pg: Database, postgres: PostgresServer
) -> None:
    pool = backend(pg).pool
    await pg.ping()
    # Without the idle ping, the dead connection is handed out and the statement fails...
    pool.ping_after = float("inf")
    terminate_sessions(postgres, database_name(pg))
    with pytest.raises((sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DBAPIError)):
        await pg.ping()
    # ... with it (a connection idle for longer than `ping_after`), the pool finds out first.
    await pg.ping()
    pool.ping_after = 0.0
    terminate_sessions(postgres, database_name(pg))
    assert await pg.ping()
    assert [row.chat_id for row in (await pg.execute(sa.select(CHAT))).all()] == []


async def test_a_cancelled_transaction_leaves_no_session_or_lock_behind(
    pg: Database, postgres: PostgresServer
) -> None:
    started = asyncio.Event()

    async def slow(conn: DbConn) -> None:
        await conn.execute(blocked_chats.insert(), chats([1])[0])  # holds chat 1's key
        started.set()
        await conn.execute(sa.text("SELECT pg_sleep(30)"))

    task = asyncio.create_task(pg.transaction(slow))
    await started.wait()
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The same key is free at once (the insert was undone, its lock released) ...
    async with asyncio.timeout(5):
        await pg.execute(blocked_chats.insert(), chats([1])[0])
    # ... and no session of this database is left inside a transaction.
    name = database_name(pg)
    deadline = time.monotonic() + 10
    while (
        psql_value(
            postgres,
            f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}' "
            "AND state LIKE 'idle in transaction%' OR (datname = '{name}' AND state = 'active' "
            "AND query LIKE '%pg_sleep%')".replace("{name}", name),
        )
        != "0"
    ):
        assert time.monotonic() < deadline, "a cancelled session stayed in its transaction"
        await asyncio.sleep(0.05)


async def test_a_session_the_server_ends_mid_statement_fails_once_then_the_pool_reconnects(
    pg: Database, postgres: PostgresServer
) -> None:
    errors: list[BaseException] = []
    pg.watch_errors(errors.append)

    async def slow(conn: DbConn) -> None:
        await conn.execute(sa.text("SELECT pg_sleep(30)"))

    task = asyncio.create_task(pg.transaction(slow))
    await asyncio.sleep(0.3)
    terminate_sessions(postgres, database_name(pg))  # what a restart does to a busy session
    with pytest.raises(sa.exc.OperationalError):  # as the engine said it: the server is gone
        await task
    assert [type(error) for error in errors] == [sa.exc.OperationalError]
    assert await pg.ping()  # the dead connection was not pooled again: a new one answers
