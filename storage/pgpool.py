"""The PostgreSQL connections of one replica: asyncpg connections, checked out one at a time.

Not asyncpg's `Pool`: it invalidates a connection's prepared statements on every release,
and keeping them across checkouts is the point (storage.pgconn prepares each statement shape
once per connection). Idle connections are reused newest first; one idle for longer than
`idle_close` seconds, closed by the server, or given back in an unknown state (a cancelled
query, a transaction still open) is closed instead of reused. One idle for longer than
`ping_after` seconds is pinged before use, so a server restart during a quiet spell costs no
failed statement (SQLAlchemy pinged on every checkout; a busy replica's connections are
never idle that long, so it pays nothing).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

CLOSE_TIMEOUT = 5.0  # seconds a closing connection may take to say goodbye


class PgConnection(asyncpg.Connection):  # type: ignore[misc]
    """An asyncpg connection that keeps what storage.pgconn prepared on it, by SQL."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prepared: collections.OrderedDict[str, Any] = collections.OrderedDict()


async def connect(*args: Any, **kwargs: Any) -> PgConnection:
    # asyncpg's own statement cache would prepare every shape twice (storage.pgconn keeps
    # them).
    conn: PgConnection = await asyncpg.connect(
        *args, connection_class=PgConnection, statement_cache_size=0, **kwargs
    )
    try:
        # JSON columns go out as the dialect's bind processor made them (json.dumps text)
        # and come back as Python values, as SQLAlchemy's asyncpg dialect sets it up.
        for name in ("json", "jsonb"):
            await conn.set_type_codec(
                name, encoder=str, decoder=json.loads, schema="pg_catalog", format="text"
            )
    except BaseException:
        conn.terminate()
        raise
    return conn


class Pool:
    """At most `size` connections, opened when needed."""

    def __init__(
        self,
        opener: Callable[[], Awaitable[PgConnection]],
        *,
        size: int,
        idle_close: float,
        ping_after: float,
    ) -> None:
        self._open = opener
        self._slots = asyncio.Semaphore(size)
        self._idle: list[tuple[PgConnection, float]] = []  # (connection, idle since)
        self.idle_close = idle_close
        self.ping_after = ping_after
        self._closed = False

    async def acquire(self) -> PgConnection:
        if self._closed:
            raise RuntimeError("the database is closed")
        await self._slots.acquire()
        try:
            now = time.monotonic()
            while self._idle:
                conn, since = self._idle.pop()
                if conn.is_closed():
                    continue
                if now - since > self.idle_close:
                    conn.terminate()  # idle long enough for a firewall to have forgotten it
                    continue
                if now - since >= self.ping_after and not await self._answers(conn):
                    continue
                return conn
            return await self._open()
        except BaseException:
            self._slots.release()
            raise

    @staticmethod
    async def _answers(conn: PgConnection) -> bool:
        try:
            await conn.execute("SELECT 1")
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
            conn.terminate()
            return False
        return True

    def release(self, conn: PgConnection, *, reusable: bool) -> None:
        if reusable and not self._closed and not conn.is_closed() and not conn.is_in_transaction():
            self._idle.append((conn, time.monotonic()))
        else:
            conn.terminate()
        self._slots.release()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn, _since in idle:
            with contextlib.suppress(Exception):
                await conn.close(timeout=CLOSE_TIMEOUT)
