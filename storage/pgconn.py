"""PostgreSQL straight through asyncpg: the statements are SQLAlchemy's, the trips are not.

SQLAlchemy's asyncio engine costs more CPU per statement than the statement itself (a
greenlet hop, an execution context, events, a cursor adapter, a ping on every checkout, and
BEGIN/COMMIT round trips around each single statement). Here a statement is compiled by
SQLAlchemy's asyncpg dialect once per shape (its cache key, as SQLAlchemy caches it), its
parameters are processed by that dialect's bind processors, and it runs as a prepared
statement kept per connection (one round trip per execution; preparing costs one more, once
per connection and shape). Rows come back as SQLAlchemy `Row`s with the dialect's result
processors applied, and errors as SQLAlchemy's exceptions (`IntegrityError`, ...), so the
repositories cannot tell this backend from the engine: they are written once (storage.dbconn).

A single statement runs as its own implicit transaction (one round trip, no BEGIN/COMMIT).
Migrations (`run_sync`) still go through SQLAlchemy's engine, which opens its own connection.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.engine.result import SimpleResultMetaData
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler

from storage.dbconn import AnyRow, Body, ErrorWatcher, Params, Rows, T
from storage.pgpool import PgConnection, Pool, connect

COMPILED_CACHE_SIZE = 500  # statement shapes kept compiled per process
PREPARED_CACHE_SIZE = 200  # prepared statements kept per connection
R = TypeVar("R")
_NAMES = itertools.count(1)  # prepared statements' names, unique in every session
POOL_MAX = 40  # connections per replica (the engine had 20 + 20 overflow)
IDLE_CLOSE = 300.0  # seconds: an idle connection older than this is closed, not reused
PING_AFTER = 2.0  # seconds: an idle connection older than this is pinged before use

# asyncpg's errors, most specific first, as SQLAlchemy's asyncpg dialect translates them.
_TRANSLATED: tuple[tuple[type[BaseException], type[sa.exc.DBAPIError]], ...] = (
    (asyncpg.IntegrityConstraintViolationError, sa.exc.IntegrityError),
    (asyncpg.SyntaxOrAccessError, sa.exc.ProgrammingError),
    (asyncpg.DataError, sa.exc.DataError),
    (asyncpg.TransactionRollbackError, sa.exc.OperationalError),  # serialization, deadlock
    (asyncpg.PostgresConnectionError, sa.exc.OperationalError),
    (asyncpg.OperatorInterventionError, sa.exc.OperationalError),  # shut down, restarting
    (asyncpg.InsufficientResourcesError, sa.exc.OperationalError),  # too many connections
    (asyncpg.InterfaceError, sa.exc.InterfaceError),
    (asyncpg.PostgresError, sa.exc.DBAPIError),
    (OSError, sa.exc.OperationalError),  # refused, reset: the server is gone
    (TimeoutError, sa.exc.OperationalError),
)


def translate(error: BaseException, sql: str | None) -> BaseException:
    """The SQLAlchemy exception for an asyncpg or socket error (others are returned as is).
    Parameters are left out: they may hold users' texts."""
    for raw, wrapper in _TRANSLATED:
        if isinstance(error, raw):
            return wrapper(sql or "", None, error)
    return error


class _Shape:
    """A compiled statement as it runs: its SQL (IN lists expanded) and its compilation."""

    __slots__ = ("compiled", "sql")

    def __init__(self, compiled: SQLCompiler, sql: str) -> None:
        self.compiled = compiled
        self.sql = sql


class _Prepared:
    """A statement prepared on one connection, with how its rows are built."""

    __slots__ = ("metadata", "processors", "statement")

    def __init__(
        self, statement: asyncpg.prepared_stmt.PreparedStatement, shape: _Shape, dialect: Any
    ) -> None:
        self.statement = statement
        attributes = statement.get_attributes()
        columns = shape.compiled._result_columns
        if columns and len(columns) == len(attributes):
            keys = [column[0] for column in columns]
            found = [
                column[3]._cached_result_processor(dialect, attribute.type.oid)
                for column, attribute in zip(columns, attributes, strict=True)
            ]
        else:  # text() and the like: named as PostgreSQL names them, taken as they come
            keys = [attribute.name for attribute in attributes]
            found = []
        self.metadata = SimpleResultMetaData(keys)
        self.processors = found if any(found) else None


class _PgConn:
    """A `DbConn` on one pooled connection."""

    __slots__ = ("_backend", "_conn")

    def __init__(self, backend: PgBackend, conn: PgConnection) -> None:
        self._backend = backend
        self._conn = conn

    async def execute(self, statement: sa.Executable, parameters: Params = None) -> Rows:
        return await self._backend.run(self._conn, statement, parameters)


class PgBackend:
    """A pool of asyncpg connections; SQLAlchemy compiles, asyncpg runs."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = "postgresql"
        self._dialect = engine.dialect
        self._compiled: collections.OrderedDict[Any, Any] = collections.OrderedDict()
        self._watchers: list[ErrorWatcher] = []
        args, kwargs = self._dialect.create_connect_args(engine.url)
        for sqlalchemy_only in ("prepared_statement_cache_size", "prepared_statement_name_func"):
            kwargs.pop(sqlalchemy_only, None)
        self.pool = Pool(
            functools.partial(connect, *args, **kwargs),
            size=POOL_MAX,
            idle_close=IDLE_CLOSE,
            ping_after=PING_AFTER,
        )

    # The pool --------------------------------------------------------------------------------

    async def _guard(self, step: Awaitable[R]) -> R:
        """Await a step outside any statement (open, check out, BEGIN, COMMIT), its failure
        translated like a statement's."""
        try:
            return await step
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            raise self._failed(exc, None) from exc

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[PgConnection]:
        conn = await self._guard(self.pool.acquire())
        reusable = False
        try:
            yield conn
            reusable = True
        except Exception:
            reusable = True  # the server answered (or the body raised): the connection is fine
            raise
        finally:  # a cancelled query leaves it in an unknown state: it is closed
            self.pool.release(conn, reusable=reusable)

    # Running statements --------------------------------------------------------------------

    def _shape(self, statement: sa.Executable, keys: list[str], many: bool) -> tuple[Any, ...]:
        """The compiled statement (cached by shape) and its extracted literal values."""
        compiled, extracted, collected, _hit = statement._compile_w_cache(
            dialect=self._dialect,
            compiled_cache=self._compiled,
            column_keys=keys,
            for_executemany=many,
        )
        while len(self._compiled) > COMPILED_CACHE_SIZE:
            self._compiled.popitem(last=False)
        return compiled, extracted, collected

    def _arguments(
        self, statement: sa.Executable, parameters: Params
    ) -> tuple[_Shape, list[list[Any]]]:
        """The SQL to run and one argument list per execution (SQLAlchemy's own steps:
        construct the parameters, expand IN lists, run the bind processors)."""
        distilled: list[Mapping[str, Any]]
        if parameters is None:
            distilled = []
        elif isinstance(parameters, Mapping):
            distilled = [parameters]
        else:
            distilled = list(parameters)
        keys = sorted(distilled[0]) if distilled else []
        compiled, extracted, collected = self._shape(statement, keys, len(distilled) > 1)
        groups: list[Mapping[str, Any] | None] = list(distilled) or [None]
        constructed = [
            compiled.construct_params(
                values,
                escape_names=False,
                _group_number=group,
                extracted_parameters=extracted,
                _collected_params=collected,
            )
            for group, values in enumerate(groups)
        ]
        processors = compiled._bind_processors
        sql = compiled.string
        positions = compiled.positiontup
        if compiled.literal_execute_params or compiled.post_compile_params:
            if len(constructed) > 1:
                raise sa.exc.InvalidRequestError("expanding parameters can't be used with many")
            expanded = compiled._process_parameters_for_postcompile(constructed[0])
            sql = expanded.statement
            positions = expanded.positiontup
            processors = {**processors, **expanded.processors}
            constructed = [expanded.parameters]
        rows = [
            [
                processors[key](values[key]) if key in processors else values[key]
                for key in positions or ()
            ]
            for values in constructed
        ]
        return _Shape(compiled, sql), rows

    async def _prepare(self, conn: PgConnection, shape: _Shape) -> _Prepared:
        prepared = conn.prepared.get(shape.sql)
        if prepared is None:
            # Named: an unnamed statement would be parsed again at every execution.
            statement = await conn.prepare(shape.sql, name=f"pe{next(_NAMES)}")
            prepared = conn.prepared[shape.sql] = _Prepared(statement, shape, self._dialect)
            while len(conn.prepared) > PREPARED_CACHE_SIZE:
                conn.prepared.popitem(last=False)
        else:
            conn.prepared.move_to_end(shape.sql)
        return prepared

    async def run(self, conn: PgConnection, statement: sa.Executable, parameters: Params) -> Rows:
        sql: str | None = None
        try:
            shape, arguments = self._arguments(statement, parameters)
            sql = shape.sql
            prepared = await self._prepare(conn, shape)
            if len(arguments) > 1:
                await prepared.statement.executemany(arguments)
                return Rows([], -1)
            records = await prepared.statement.fetch(*arguments[0])
        except (asyncpg.InvalidCachedStatementError, asyncpg.OutdatedSchemaCacheError) as exc:
            conn.prepared.clear()  # the schema changed under the prepared statements
            raise self._failed(exc, sql) from exc
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            raise self._failed(exc, sql) from exc
        metadata, processors = prepared.metadata, prepared.processors
        key_to_index = metadata._key_to_index
        rows: list[AnyRow] = [Row(metadata, processors, key_to_index, r) for r in records]
        # "UPDATE 3", "INSERT 0 1", "SELECT 2": the count is the last word
        count = (prepared.statement.get_statusmsg() or "").rsplit(" ", 1)[-1]
        return Rows(rows, int(count) if count.isdigit() else -1)

    def _failed(self, error: BaseException, sql: str | None) -> BaseException:
        translated = translate(error, sql)
        for watcher in self._watchers:
            watcher(translated)
        return translated

    # Backend ---------------------------------------------------------------------------------

    def watch_errors(self, watcher: ErrorWatcher) -> None:
        self._watchers.append(watcher)

    async def transaction(self, body: Body[T]) -> T:
        async with self._connection() as conn:
            transaction = conn.transaction()
            await self._guard(transaction.start())
            try:
                value = await body(_PgConn(self, conn))
            except BaseException:
                with contextlib.suppress(Exception):  # the body's error is the one to raise
                    await transaction.rollback()
                raise
            await self._guard(transaction.commit())
            return value

    async def execute(self, statement: sa.Executable, parameters: Params = None) -> Rows:
        async with self._connection() as conn:
            return await self.run(conn, statement, parameters)

    async def run_sync(self, fn: Callable[[Connection], T]) -> T:
        async with self.engine.begin() as conn:
            return await conn.run_sync(fn)

    @property
    def sync_engine(self) -> Engine:
        return self.engine.sync_engine

    async def close(self) -> None:
        await self.pool.close()
        await self.engine.dispose()
