"""How statements reach the database: one interface, two ways to run it.

PostgreSQL runs on SQLAlchemy's asyncio engine (asyncpg, a pool of connections). SQLite runs
on one dedicated thread that owns the process's only connection (the standard library's
sqlite3 under SQLAlchemy's synchronous Core): SQLite has one writer at a time anyway, and
running a whole statement per thread hop costs a fraction of SQLAlchemy's asyncio adapter
over aiosqlite, which hops threads for every cursor call (see README, Performance).

Both hand out the same `DbConn`, whose `execute` returns a fully fetched `Rows`, so the
storage code is written once. `Backend.transaction(body)` runs a whole transaction body in
one go: on SQLite the body runs on the database thread in a single hop (its awaits on
`DbConn.execute` complete at once there), on PostgreSQL as an ordinary coroutine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row, RowMapping
from sqlalchemy.exc import NoResultFound
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")
AnyRow = Row[*tuple[Any, ...]]
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


class Rows:
    """A statement's outcome, fetched completely: its rows and how many rows it changed."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[AnyRow], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    @classmethod
    def of(cls, result: sa.CursorResult[Any]) -> Rows:
        rows = list(result.all()) if result.returns_rows else []
        return cls(rows, result.rowcount)

    def all(self) -> list[AnyRow]:
        return self._rows

    def first(self) -> AnyRow | None:
        return self._rows[0] if self._rows else None

    def one(self) -> AnyRow:
        if len(self._rows) != 1:
            raise NoResultFound(f"expected one row, got {len(self._rows)}")
        return self._rows[0]

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def mappings(self) -> Mappings:
        return Mappings([row._mapping for row in self._rows])


class Mappings:
    """`Rows` as dictionaries keyed by column name."""

    __slots__ = ("_rows",)

    def __init__(self, rows: list[RowMapping]) -> None:
        self._rows = rows

    def all(self) -> list[RowMapping]:
        return self._rows

    def first(self) -> RowMapping | None:
        return self._rows[0] if self._rows else None

    def one(self) -> RowMapping:
        if len(self._rows) != 1:
            raise NoResultFound(f"expected one row, got {len(self._rows)}")
        return self._rows[0]


class DbConn(Protocol):
    """A connection inside a transaction (or a read)."""

    async def execute(self, statement: sa.Executable, parameters: Params = None) -> Rows: ...


Body = Callable[[DbConn], Coroutine[Any, Any, T]]


class Backend(Protocol):
    dialect: str

    def begin(self) -> contextlib.AbstractAsyncContextManager[DbConn]: ...

    def connect(self) -> contextlib.AbstractAsyncContextManager[DbConn]: ...

    async def transaction(self, body: Body[T]) -> T: ...

    async def run_sync(self, fn: Callable[[Connection], T]) -> T: ...

    @property
    def sync_engine(self) -> Engine: ...

    async def close(self) -> None: ...


# PostgreSQL (and any other asyncio driver) ----------------------------------------------------


class _AsyncConn:
    __slots__ = ("_conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def execute(self, statement: sa.Executable, parameters: Params = None) -> Rows:
        return Rows.of(await self._conn.execute(statement, parameters))


class AsyncBackend:
    """SQLAlchemy's asyncio engine: each transaction takes a pooled connection."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[DbConn]:
        async with self.engine.begin() as conn:
            yield _AsyncConn(conn)

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[DbConn]:
        async with self.engine.connect() as conn:
            yield _AsyncConn(conn)

    async def transaction(self, body: Body[T]) -> T:
        async with self.begin() as conn:
            return await body(conn)

    async def run_sync(self, fn: Callable[[Connection], T]) -> T:
        async with self.engine.begin() as conn:
            return await conn.run_sync(fn)

    @property
    def sync_engine(self) -> Engine:
        return self.engine.sync_engine

    async def close(self) -> None:
        await self.engine.dispose()


# SQLite: one connection, owned by one thread ---------------------------------------------------


class _ThreadConn:
    """A `DbConn` whose statements run on the database thread, one hop each."""

    __slots__ = ("_backend",)

    def __init__(self, backend: ThreadBackend) -> None:
        self._backend = backend

    async def execute(self, statement: sa.Executable, parameters: Params = None) -> Rows:
        return await self._backend._call(self._backend._execute, statement, parameters)


class _InlineConn:
    """A `DbConn` used on the database thread itself: `execute` never suspends."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def execute(self, statement: sa.Executable, parameters: Params = None) -> Rows:
        return Rows.of(self._conn.execute(statement, parameters))


class BodySuspended(RuntimeError):
    """A transaction body awaited something other than its connection's `execute`."""


def _run_inline(body: Body[T], conn: Connection) -> T:
    """Run `body` to completion on this thread; its only awaits are `_InlineConn.execute`."""
    coro = body(_InlineConn(conn))
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise BodySuspended("a transaction body may only await DbConn.execute")


class ThreadBackend:
    """One synchronous connection, used only by one dedicated thread.

    Transactions take turns (an asyncio lock), so the statements of one never interleave
    with another's; the thread runs its queue in order, so a rollback or commit queued by
    a cancelled caller still happens before the next transaction's first statement.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sqlite")
        self._conn: Connection | None = None
        self._turn = asyncio.Lock()

    @property
    def sync_engine(self) -> Engine:
        return self.engine

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    def _execute(self, statement: sa.Executable, parameters: Params) -> Rows:
        return Rows.of(self._connection().execute(statement, parameters))

    def _finish(self, commit: bool) -> None:
        conn = self._conn
        if conn is None:
            return
        if commit:
            conn.commit()
        else:
            conn.rollback()

    def _whole(self, body: Body[T]) -> T:
        conn = self._connection()
        try:
            value = _run_inline(body, conn)
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        return value

    def _sync(self, fn: Callable[[Connection], T]) -> T:
        conn = self._connection()
        try:
            value = fn(conn)
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        return value

    def _call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue `fn` on the database thread now (not when first awaited)."""
        return asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[DbConn]:
        async with self._turn:
            try:
                yield _ThreadConn(self)
            except BaseException:
                # Queued before the turn passes on, so it runs before anyone else's statements.
                await asyncio.shield(self._call(self._finish, False))
                raise
            await asyncio.shield(self._call(self._finish, True))

    def connect(self) -> contextlib.AbstractAsyncContextManager[DbConn]:
        # One connection: a read takes its turn like a write (and ends its transaction).
        return self.begin()

    async def transaction(self, body: Body[T]) -> T:
        async with self._turn:
            return await asyncio.shield(self._call(self._whole, body))

    async def run_sync(self, fn: Callable[[Connection], T]) -> T:
        async with self._turn:
            return await asyncio.shield(self._call(self._sync, fn))

    async def close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self.engine.dispose()

        async with self._turn:
            await self._call(close)
        self._thread.shutdown(wait=True)
