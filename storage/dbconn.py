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
import contextvars
import functools
import queue
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row, RowMapping
from sqlalchemy.exc import NoResultFound
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")
R = TypeVar("R")
AnyRow = Row[*tuple[Any, ...]]
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


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


_END = object()  # a session's last message: commit (True) or roll back (False)


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


# A job's outcome (its future, value, error), and a body run but not yet committed.
Done = tuple[asyncio.Future[Any], Any, BaseException | None]
Ran = tuple[Callable[[DbConn], Coroutine[Any, Any, Any]], asyncio.Future[Any], Any]


def _settle_all(done: list[Done]) -> None:
    for future, value, error in done:
        _settle(future, value, error)


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve a result nobody waits for (a rollback's), so asyncio does not warn about it."""
    if not future.cancelled():
        future.exception()


class _Session:
    """A transaction spanning several awaits: its statements go to the database thread, which
    serves nothing else until the session ends (so no other statement can land inside it)."""

    __slots__ = ("_loop", "inbox")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.inbox: queue.SimpleQueue[tuple[Any, Any, asyncio.Future[Rows] | None]] = (
            queue.SimpleQueue()
        )

    async def execute(self, statement: sa.Executable, parameters: Params = None) -> Rows:
        future: asyncio.Future[Rows] = self._loop.create_future()
        self.inbox.put((statement, parameters, future))
        return await future

    def end(self, commit: bool) -> None:
        self.inbox.put((_END, commit, None))


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


# The task whose `begin()` block is open in this context (tasks it starts inherit the value
# but are other tasks: they just wait their turn).
_SESSION_OWNER: contextvars.ContextVar[asyncio.Task[Any] | None] = contextvars.ContextVar(
    "session_owner", default=None
)


class NestedTransaction(RuntimeError):
    """Database use inside an open `begin()` block of the same task (it would deadlock)."""


GROUP_MAX = 256  # transaction bodies per COMMIT at most (bounds how long a caller waits)


class ThreadBackend:
    """One synchronous connection, used only by one dedicated thread.

    The thread runs its jobs in order, one at a time: a whole transaction body
    (`transaction`), or a session (`begin`/`connect`) during which it serves only that
    session's statements. Jobs wait in one queue; the thread takes all that are waiting and
    hands their results to the event loop in one go, so a burst costs one thread wake-up, not
    one per transaction.

    Group commit: consecutive transaction bodies of a batch (up to GROUP_MAX) run in one
    SQLite transaction with one COMMIT, and their callers hear of them only after it. When a
    body fails, the group is rolled back, run and committed again without it, and the body
    then runs alone (if the COMMIT fails, each body runs alone): every caller gets exactly
    what running the bodies one after another would give.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sqlite")
        self._conn: Connection | None = None
        # (kind, what to run, its future); kind: "body" (a transaction body), "session"
        # (serves a `begin` block), "call" (a function of no arguments, own transaction)
        self._jobs: list[tuple[str, Any, asyncio.Future[Any]]] = []
        self._jobs_lock = threading.Lock()
        self._draining = False  # a drain is queued or running on the thread
        self._closed = False

    @property
    def sync_engine(self) -> Engine:
        return self.engine

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    def _serve(self, session: _Session, loop: asyncio.AbstractEventLoop) -> None:
        conn = self._connection()
        while True:
            statement, parameters, future = session.inbox.get()
            if statement is _END:
                if parameters:
                    conn.commit()
                else:
                    conn.rollback()
                return
            assert future is not None
            try:
                rows = Rows.of(conn.execute(statement, parameters))
            except Exception as exc:  # noqa: BLE001 - the statement's error is its caller's
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, rows, None)

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

    def _queue(self, kind: str, payload: Any) -> asyncio.Future[Any]:
        """Queue a job for the database thread; its result arrives in the future."""
        if self._closed:
            raise RuntimeError("the database is closed")
        owner = _SESSION_OWNER.get()
        if owner is not None and owner is asyncio.current_task():
            raise NestedTransaction("the database is already in use by this task's transaction")
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
        while True:
            with self._jobs_lock:
                batch, self._jobs = self._jobs, []
                if not batch:
                    self._draining = False
                    return
            done: list[Done] = []
            group: list[Ran] = []  # bodies run in the open transaction, not yet committed
            for kind, payload, future in batch:
                if kind == "body":
                    if len(group) >= GROUP_MAX:
                        self._commit_group(group, done)
                        loop.call_soon_threadsafe(_settle_all, done)
                        group, done = [], []
                    try:
                        group.append((payload, future, _run_inline(payload, self._connection())))
                    except BaseException:  # noqa: BLE001 - run alone below
                        # Undo the group; commit it again without this body, then run this
                        # one alone after it, as running them one after another would.
                        self._connection().rollback()
                        self._rerun_group(group, done)
                        self._one_by_one([(payload, future, None)], done)
                        group = []
                    continue
                self._commit_group(group, done)
                group = []
                if kind == "session" and done:
                    # A session waits on the loop between its statements: deliver first.
                    loop.call_soon_threadsafe(_settle_all, done)
                    done = []
                try:
                    done.append((future, payload(), None))
                except BaseException as exc:  # noqa: BLE001 - the job's error is its caller's
                    done.append((future, None, exc))
            self._commit_group(group, done)
            loop.call_soon_threadsafe(_settle_all, done)

    def _commit_group(self, group: list[Ran], done: list[Done]) -> None:
        if not group:
            return
        conn = self._connection()
        try:
            conn.commit()
        except BaseException:  # noqa: BLE001 - sorted out one by one
            conn.rollback()
            self._one_by_one(group, done)
            return
        done.extend((future, value, None) for _body, future, value in group)

    def _rerun_group(self, group: list[Ran], done: list[Done]) -> None:
        if not group:
            return
        conn = self._connection()
        try:
            again = [(body, future, _run_inline(body, conn)) for body, future, _ in group]
        except BaseException:  # noqa: BLE001 - sorted out one by one
            conn.rollback()
            self._one_by_one(group, done)
            return
        self._commit_group(again, done)

    def _one_by_one(self, group: list[Ran], done: list[Done]) -> None:
        for body, future, _value in group:
            try:
                done.append((future, self._whole(body), None))
            except BaseException as exc:  # noqa: BLE001 - the body's error is its caller's
                done.append((future, None, exc))

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[DbConn]:
        loop = asyncio.get_running_loop()
        session = _Session(loop)
        served = self._queue("session", functools.partial(self._serve, session, loop))
        token = _SESSION_OWNER.set(asyncio.current_task())
        try:
            yield session
        except BaseException:
            # Not waited for: the thread rolls back after the statements already sent.
            session.end(commit=False)
            served.add_done_callback(_consume)
            raise
        finally:
            _SESSION_OWNER.reset(token)
        session.end(commit=True)
        # The commit's errors are this block's; a caller cancelled now still leaves the
        # thread to finish the commit on its own.
        await asyncio.shield(served)

    def connect(self) -> contextlib.AbstractAsyncContextManager[DbConn]:
        # One connection: a read is a session like a write (and ends its transaction).
        return self.begin()

    async def transaction(self, body: Body[T]) -> T:
        value: T = await self._queue("body", body)
        return value

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
