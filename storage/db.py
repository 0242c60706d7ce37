"""The database: one engine, versioned migrations, transactions, and the repositories.

Each table family has its repository, built on the connection owner (storage.dbconn) and
reached as an attribute: `db.edits` (the edit state machine), `db.albums`, `db.prompts`
(pending prompts), `db.chats` (blocked chats), `db.chat_settings`, `db.moderation`,
`db.limits` (per-user limits and the spend cap), `db.updates` (Telegram updates, the durable
intake), `db.balances` (paid edits), `db.edit_status` (status-message turns), `db.turns`
(provider accounts' rate limits and fair queues); operators' runtime control:
`db.user_controls`, `db.throttle` and `db.alerts`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from storage.albums import Albums
from storage.alerts import OperatorAlerts
from storage.balances import Balances
from storage.chat_settings import ChatSettings
from storage.chats import BlockedChats
from storage.dbconn import Backend, Body, ErrorWatcher, Rows, T, ThreadBackend
from storage.edit_status import EditStatus
from storage.edits import Edits
from storage.limits import LimitQueries
from storage.moderation import ModerationQueries
from storage.pgconn import PgBackend
from storage.prompts import PendingPrompts
from storage.result_messages import ResultMessages
from storage.throttle import ActionThrottle
from storage.turns import Turns
from storage.updates import Updates
from storage.user_controls import UserControls

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

SqliteSynchronous = Literal["NORMAL", "FULL"]
"""How hard SQLite (in WAL mode) makes a commit durable. NORMAL: a commit survives a crash of
the process, but the last ones may be lost on power loss or an OS crash (the WAL is synced
only at checkpoints). FULL: the WAL is synced at every commit (one fsync per group commit)."""


def _sqlite_pragmas(synchronous: SqliteSynchronous) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return on_connect


class Database:
    """Async access to the service's tables; SQLite by default, PostgreSQL by URL."""

    def __init__(
        self, url: str, *, echo: bool = False, sqlite_synchronous: SqliteSynchronous = "NORMAL"
    ) -> None:
        self.url = url
        self.backend: Backend
        parsed = sa.engine.make_url(url)
        if parsed.get_backend_name() == "sqlite":
            path = parsed.database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # The standard library's driver on the database thread (see storage.dbconn); a
            # `sqlite+aiosqlite://` URL names the same file.
            sync_url = parsed.set(drivername="sqlite")
            engine = sa.create_engine(sync_url, echo=echo, poolclass=sa.pool.NullPool)
            if sqlite_synchronous not in ("NORMAL", "FULL"):
                raise ValueError(f"sqlite_synchronous must be NORMAL or FULL: {sqlite_synchronous}")
            event.listen(engine, "connect", _sqlite_pragmas(sqlite_synchronous))
            self.backend = ThreadBackend(engine)
        elif parsed.get_backend_name() == "postgresql":
            # The engine only migrates (one connection, then closed); statements run on
            # asyncpg's own pool (storage.pgconn). Its 40 connections per replica stay well
            # under PostgreSQL's default max_connections=100 for two replicas (raise it for
            # more).
            migrator = create_async_engine(
                parsed.set(drivername="postgresql+asyncpg"), echo=echo, poolclass=sa.pool.NullPool
            )
            self.backend = PgBackend(migrator)
        else:
            raise ValueError(f"DATABASE_URL: SQLite or PostgreSQL, not {parsed.drivername}")
        self.edits = Edits(self.backend)
        self.albums = Albums(self.backend)
        self.prompts = PendingPrompts(self.backend)
        self.chats = BlockedChats(self.backend)
        self.chat_settings = ChatSettings(self.backend)
        self.moderation = ModerationQueries(self.backend)
        self.user_controls = UserControls(self.backend)
        self.throttle = ActionThrottle(self.backend)
        self.alerts = OperatorAlerts(self.backend)
        self.limits = LimitQueries(self.backend)
        self.updates = Updates(self.backend)
        self.result_messages = ResultMessages(self.backend)
        self.balances = Balances(self.backend)
        self.edit_status = EditStatus(self.backend)
        self.turns = Turns(self.backend)

    @property
    def dialect(self) -> str:
        return self.backend.dialect

    @property
    def sync_engine(self) -> sa.Engine:
        """The synchronous engine underneath (for event listeners, e.g. statement counts)."""
        return self.backend.sync_engine

    def watch_errors(self, watcher: ErrorWatcher) -> None:
        """Tell `watcher` of every error the database answers with (for metrics)."""
        self.backend.watch_errors(watcher)

    async def transaction(self, body: Body[T]) -> T:
        """Run `body` as one transaction, exactly once (on SQLite: in one hop to the database
        thread, where it may await nothing but its connection; see storage.dbconn.Body)."""
        return await self.backend.transaction(body)

    async def execute(
        self, statement: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> Rows:
        """One statement as its own transaction (on SQLite: one hop)."""
        return await self.backend.execute(statement, params)

    async def run_sync(self, fn: Callable[[Connection], T]) -> T:
        """Run synchronous SQLAlchemy code (e.g. Alembic) in one transaction."""
        return await self.backend.run_sync(fn)

    async def close(self) -> None:
        await self.backend.close()

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (in place, without data loss)."""

        def upgrade(sync_conn: Connection) -> None:
            if self.dialect == "postgresql":
                # Replicas starting together: one migrates, the others wait, then find it done.
                sync_conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": 7_264_011})
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, "head")

        await self.run_sync(upgrade)

    async def ping(self) -> bool:
        await self.execute(sa.text("SELECT 1"))
        return True
