"""How statements reach the database: one interface, two ways to run it.

PostgreSQL runs on asyncpg's pool with SQLAlchemy compiling (storage.pgconn). SQLite runs
on one dedicated thread that owns the process's only connection (the standard library's
sqlite3 under SQLAlchemy's synchronous Core): SQLite has one writer at a time anyway, and
running a whole statement per thread hop costs a fraction of SQLAlchemy's asyncio adapter
over aiosqlite, which hops threads for every cursor call (see README, Performance).

Both run the same jobs: a transaction body (`Backend.transaction`), which gets a `DbConn`
whose `execute` returns a fully fetched `Rows`, or one statement as its own transaction
(`Backend.execute`), so the storage code is written once. On SQLite a body runs on the
database thread in a single hop (its awaits on `DbConn.execute` complete at once there), on
PostgreSQL as an ordinary coroutine. Either way a body runs exactly once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import sqlite3
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row, RowMapping
from sqlalchemy.exc import NoResultFound

T = TypeVar("T")
R = TypeVar("R")
AnyRow = Row[*tuple[Any, ...]]
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
# A statement with its parameters (another repository's write in one's transaction).
Statement = tuple[sa.Executable, Params]


class _Fetched(Generic[R]):
    __slots__ = ("_rows",)

    def __init__(self, rows: list[R]) -> None:
        self._rows = rows

    def all(self) -> list[R]:
        return self._rows

    def first(self) -> R | None:
        return self._rows[0] if self._rows else None

    def one(self) -> R:
        if len(self._rows) != 1:
            raise NoResultFound(f"expected one row, got {len(self._rows)}")
        return self._rows[0]


class Rows(_Fetched[AnyRow]):
    """A statement's outcome, fetched completely: its rows and how many rows it changed."""

    __slots__ = ("rowcount",)

    def __init__(self, rows: list[AnyRow], rowcount: int) -> None:
        super().__init__(rows)
        self.rowcount = rowcount

    @classmethod
    def of(cls, result: sa.CursorResult[Any]) -> Rows:
        rows = list(result.all()) if result.returns_rows else []
        return cls(rows, result.rowcount)

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def mappings(self) -> Mappings:
        return Mappings([row._mapping for row in self._rows])


class Mappings(_Fetched[RowMapping]):
    """`Rows` as dictionaries keyed by column name."""

    __slots__ = ()


class DbConn(Protocol):
    """A connection inside a transaction."""

    async def execute(self, statement: sa.Executable, parameters: Params = None) -> Rows: ...


Body = Callable[[DbConn], Coroutine[Any, Any, T]]
"""A transaction body: runs exactly once; it commits when it returns, its statements are
undone when it raises (and the error is its caller's). On SQLite it may await nothing but
its connection's `execute` (see `ThreadBackend`)."""


ErrorWatcher = Callable[[BaseException], None]
"""Told of every error the database answers a statement with (SQLAlchemy's exception)."""


def watch_engine_errors(engine: Engine, watcher: ErrorWatcher) -> None:
    def failed(context: sa.engine.ExceptionContext) -> None:
        watcher(context.sqlalchemy_exception or context.original_exception)

    sa.event.listen(engine, "handle_error", failed)


class Backend(Protocol):
    """What the repositories are built on (see storage.db)."""

    dialect: str

    def watch_errors(self, watcher: ErrorWatcher) -> None: ...

    async def transaction(self, body: Body[T]) -> T: ...

    async def execute(self, statement: sa.Executable, parameters: Params = None) -> Rows:
        """One statement as its own transaction."""
        ...

    async def run_sync(self, fn: Callable[[Connection], T]) -> T: ...

    @property
    def sync_engine(self) -> Engine: ...

    async def close(self) -> None: ...


# SQLite: one connection, owned by one thread ---------------------------------------------------


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


# A job's outcome: its future, its value, its error.
Done = tuple[asyncio.Future[Any], Any, BaseException | None]


def _settle_all(done: list[Done]) -> None:
    for future, value, error in done:
        _settle(future, value, error)


class _InlineConn:
    """A `DbConn` used on the database thread itself: `execute` never suspends.

    A body's first statement sets a savepoint when the transaction is already open (earlier
    bodies of the group wrote something), so that undoing this body leaves theirs alone.
    """

    __slots__ = ("_conn", "_raw", "saved", "started")

    def __init__(self, conn: Connection, raw: sqlite3.Connection) -> None:
        self._conn = conn
        self._raw = raw
        self.started = False  # a statement ran
        self.saved = False  # ... after a savepoint

    async def execute(self, statement: sa.Executable, parameters: Params = None) -> Rows:
        if not self.started:
            self.started = True
            if self._raw.in_transaction:
                # Straight to the driver: SQLAlchemy's nested transactions cost more than
                # the statement, and they need the whole transaction under its control.
                self._raw.execute("SAVEPOINT body")
                self.saved = True
        return Rows.of(self._conn.execute(statement, parameters))


class BodySuspended(RuntimeError):
    """A transaction body awaited something other than its connection's `execute`."""


class NestedTransaction(RuntimeError):
    """Database use inside a transaction body on the database thread (it would deadlock)."""


class TransactionLost(RuntimeError):
    """SQLite rolled the whole group's transaction back (I/O error, disk full...): this
    body's changes, made before another body's statement failed that way, are gone."""


def _run_inline(body: Body[T], conn: _InlineConn) -> T:
    """Run `body` to completion on this thread; its only awaits are `_InlineConn.execute`."""
    coro = body(conn)
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise BodySuspended("a transaction body may only await DbConn.execute")


GROUP_MAX = 256  # jobs per COMMIT at most (bounds how long a caller waits)


class ThreadBackend:
    """One synchronous connection, used only by one dedicated thread.

    The thread runs its jobs in order, one at a time: a transaction body (`transaction`), a
    single statement (`execute`) or a synchronous function (`run_sync`). Jobs wait in one
    queue; the thread takes all that are waiting and hands their results to the event loop
    in one go, so a burst costs one thread wake-up, not one per transaction.

    Group commit: consecutive bodies and statements of a batch (up to GROUP_MAX) run in one
    SQLite transaction with one COMMIT, and their callers hear of them only after it. Each
    runs exactly once. One that fails is undone alone (back to the savepoint its body set,
    see `_InlineConn`; a failed statement is undone by SQLite itself) and its error goes to
    its caller; the others of the group commit. Only when the database itself loses the
    transaction (the COMMIT fails, or an I/O error rolls everything back) do all callers of
    the group get an error: nothing of the group was committed.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sqlite")
        self._thread_id: int | None = None
        self._conn: Connection | None = None
        # (kind, what to run, its future); kind: "body" (a transaction body), "statement"
        # (statement and parameters), "call" (a function of no arguments, own transaction)
        self._jobs: list[tuple[str, Any, asyncio.Future[Any]]] = []
        self._jobs_lock = threading.Lock()
        self._draining = False  # a drain is queued or running on the thread
        self._closed = False

    @property
    def sync_engine(self) -> Engine:
        return self.engine

    def watch_errors(self, watcher: ErrorWatcher) -> None:
        watch_engine_errors(self.engine, watcher)

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    def _sync(self, fn: Callable[[Connection], T]) -> T:
        conn = self._connection()
        try:
            value = fn(conn)
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        return value

    def _queue(self, kind: str, payload: Any) -> asyncio.Future[Any]:
        """Queue a job for the database thread; its result arrives in the future."""
        if self._closed:
            raise RuntimeError("the database is closed")
        if threading.get_ident() == self._thread_id:
            raise NestedTransaction("a transaction body may not use the database itself")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._jobs_lock:
            self._jobs.append((kind, payload, future))
            start = not self._draining
            self._draining = True
        if start:
            self._thread.submit(self._drain, loop)
        return future

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the thread: run every waiting job, handing results back once per batch."""
        self._thread_id = threading.get_ident()
        while True:
            with self._jobs_lock:
                batch, self._jobs = self._jobs, []
                if not batch:
                    self._draining = False
                    return
            done: list[Done] = []
            group: list[Done] = []  # run in the open transaction, not yet committed
            for kind, payload, future in batch:
                if kind == "call":
                    self._commit(group, done)
                    try:
                        done.append((future, payload(), None))
                    except BaseException as exc:  # noqa: BLE001 - the job's error is its caller's
                        done.append((future, None, exc))
                    continue
                if len(group) >= GROUP_MAX:
                    self._commit(group, done)
                    loop.call_soon_threadsafe(_settle_all, done)
                    done = []
                self._run(kind, payload, future, group, done)
            self._commit(group, done)
            loop.call_soon_threadsafe(_settle_all, done)

    def _run(
        self,
        kind: str,
        payload: Any,
        future: asyncio.Future[Any],
        group: list[Done],
        done: list[Done],
    ) -> None:
        """Run a body or a statement in the group's transaction."""
        conn = self._connection()
        raw = cast(sqlite3.Connection, conn.connection.driver_connection)
        pending = raw.in_transaction  # earlier jobs of the group wrote something
        inline = None
        try:
            if kind == "body":
                inline = _InlineConn(conn, raw)
                value = _run_inline(payload, inline)
                if inline.saved:
                    raw.execute("RELEASE body")
            else:
                value = Rows.of(conn.execute(*payload))
        except BaseException as exc:  # noqa: BLE001 - the job's error is its caller's
            done.append((future, None, exc))
            saved = inline is not None and inline.saved
            self._undo(conn, raw, exc, pending=pending, saved=saved, group=group, done=done)
        else:
            group.append((future, value, None))

    @staticmethod
    def _undo(
        conn: Connection,
        raw: sqlite3.Connection,
        error: BaseException,
        *,
        pending: bool,
        saved: bool,
        group: list[Done],
        done: list[Done],
    ) -> None:
        """Undo a failed job's changes, and only its changes."""
        cause: BaseException = error
        try:
            if not pending or raw.in_transaction:
                if saved:
                    raw.execute("ROLLBACK TO body")
                    raw.execute("RELEASE body")
                elif not pending and raw.in_transaction:
                    conn.rollback()  # the job began the transaction: nothing else is in it
                return
            # else SQLite rolled back the whole transaction (an I/O error, a full disk...)
        except BaseException as exc:  # noqa: BLE001 - then the group's changes are lost too
            cause = exc
        ThreadBackend._lose(conn, group, done, cause)

    def _commit(self, group: list[Done], done: list[Done]) -> None:
        if not group:
            return
        conn = self._connection()
        try:
            conn.commit()
        except BaseException as exc:  # noqa: BLE001 - every caller of the group hears of it
            conn.rollback()
            done.extend((future, None, exc) for future, _value, _error in group)
        else:
            done.extend(group)
        group.clear()

    @staticmethod
    def _lose(conn: Connection, group: list[Done], done: list[Done], cause: BaseException) -> None:
        conn.rollback()
        for future, _value, _error in group:
            lost = TransactionLost(f"rolled back by the database: {cause!r}")
            lost.__cause__ = cause
            done.append((future, None, lost))
        group.clear()

    async def transaction(self, body: Body[T]) -> T:
        value: T = await self._queue("body", body)
        return value

    async def execute(self, statement: sa.Executable, parameters: Params = None) -> Rows:
        rows: Rows = await self._queue("statement", (statement, parameters))
        return rows

    async def run_sync(self, fn: Callable[[Connection], T]) -> T:
        value: T = await self._queue("call", functools.partial(self._sync, fn))
        return value

    async def close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self.engine.dispose()

        if self._closed:
            return
        await self._queue("call", close)
        self._closed = True
        self._thread.shutdown(wait=True)
