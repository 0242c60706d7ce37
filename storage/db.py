"""The database: one engine, versioned migrations, and the edit state machine's storage.

Every state change of an edit is one conditional UPDATE (`transition`): it names the states
the edit may be in and succeeds for exactly one caller, so a repeated callback, a restart or
a second replica can never apply the same step twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from domain.edit import (
    NOTIFY_STATES,
    TERMINAL_STATES,
    AlbumItem,
    Edit,
    EditState,
    InputPhoto,
    NewEdit,
    Settled,
)
from domain.steps import Step
from storage.dbconn import AsyncBackend, Backend, Body, DbConn, Rows, T, ThreadBackend
from storage.schema import album_items, albums, blocked_chats, edits, pending_prompts

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
S = TypeVar("S", bound=sa.Executable)


_SETTLED = (edits.c.id, edits.c.state, edits.c.provider, edits.c.task_id, edits.c.error_code)


class LimitReached(Exception):
    """A guarded insert found its condition (a quota) no longer holding: nothing recorded."""


@dataclass(frozen=True)
class InsertGuard:
    """A condition an insert must satisfy with its own row counted (see `create_edit`).

    `holds(new_id, now)` builds the condition; `lock` names the PostgreSQL advisory lock
    (two int4 keys) that serializes guarded inserts of one scope. SQLite needs no lock: the
    insert takes the database's single write lock, held until the check commits.
    """

    holds: Callable[[int, float], sa.ColumnElement[bool]]
    lock: tuple[int, int]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# Prepared statements ----------------------------------------------------------------------------
# The hot statements are built once per shape (which columns they set, which conditions they
# have) with bind parameters, and then only executed with values: building an SQLAlchemy
# statement costs more CPU than running it on SQLite. Condition values are bound as `w_*`,
# new column values as `v_<column>`.

_PREPARED: dict[Hashable, Any] = {}


def _prepared(key: Hashable, build: Callable[[], S]) -> S:
    stmt: S | None = _PREPARED.get(key)
    if stmt is None:
        stmt = _PREPARED[key] = build()
    return stmt


def _setters(table: sa.Table, names: Iterable[str]) -> dict[str, sa.BindParameter[Any]]:
    return {name: sa.bindparam(f"v_{name}", type_=table.c[name].type) for name in names}


def _bound(values: Mapping[str, Any], **conditions: Any) -> dict[str, Any]:
    return {**{f"v_{name}": value for name, value in values.items()}, **conditions}


def _in(column: sa.Column[Any], name: str, count: int) -> sa.ColumnElement[bool]:
    """`column IN (:name0, :name1, ...)`: one parameter per value, the count in the shape (an
    "expanding" parameter would render the SQL again on every execution)."""
    return column.in_([sa.bindparam(f"{name}{i}") for i in range(count)])


def _listed(name: str, values: Sequence[Any]) -> dict[str, Any]:
    return {f"{name}{i}": value for i, value in enumerate(values)}


def _claim_statement(names: tuple[str, ...], with_blocked: bool, states: int) -> sa.Update:
    """Lease an edit in one of `w_states` unless someone else holds a live lease."""
    stmt = (
        edits.update()
        .where(
            edits.c.id == sa.bindparam("w_id"),
            _in(edits.c.state, "w_states", states),
            sa.or_(edits.c.lease_until.is_(None), edits.c.lease_until < sa.bindparam("w_now")),
        )
        .values(_setters(edits, names))
    )
    if with_blocked:
        blocked = (
            sa.exists().where(blocked_chats.c.chat_id == edits.c.chat_id).label("chat_blocked")
        )
        return stmt.returning(edits, blocked)
    return stmt.returning(edits)


def _claim(
    edit_id: int,
    states: Iterable[EditState],
    owner: str,
    lease_seconds: float,
    *,
    with_blocked: bool,
) -> tuple[sa.Update, dict[str, Any]]:
    wanted = [state.value for state in states]
    stmt = _prepared(
        ("claim", with_blocked, len(wanted)),
        lambda: _claim_statement(_CLAIM_SETS, with_blocked, len(wanted)),
    )
    now = time.time()
    values = {"lease_owner": owner, "lease_until": now + lease_seconds, "updated_at": now}
    return stmt, _bound(values, w_id=edit_id, w_now=now, **_listed("w_states", wanted))


_CLAIM_SETS = ("lease_owner", "lease_until", "updated_at")
_GET_EDIT = sa.select(edits).where(edits.c.id == sa.bindparam("w_id"))
_SET_STATUS = (
    edits.update()
    .where(edits.c.id == sa.bindparam("w_id"))
    .values(_setters(edits, ["status_message_id"]))
)
_UNBLOCK = blocked_chats.delete().where(blocked_chats.c.chat_id == sa.bindparam("w_chat"))


class Database:
    """Async access to the service's tables; SQLite by default, PostgreSQL by URL."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
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
            event.listen(engine, "connect", _sqlite_pragmas)
            self.backend = ThreadBackend(engine)
        else:
            # SQLAlchemy's default (5 + 10 overflow) queues a busy replica's transactions;
            # 20 + 20 per replica stays well under PostgreSQL's default max_connections=100
            # for a few replicas (raise max_connections for more).
            pool: dict[str, Any] = {}
            if parsed.get_backend_name() == "postgresql":
                pool = {"pool_size": 20, "max_overflow": 20, "pool_pre_ping": True}
            self.backend = AsyncBackend(create_async_engine(url, echo=echo, **pool))

    @property
    def dialect(self) -> str:
        return self.backend.dialect

    @property
    def sync_engine(self) -> sa.Engine:
        """The synchronous engine underneath (for event listeners, e.g. statement counts)."""
        return self.backend.sync_engine

    def begin(self) -> AbstractAsyncContextManager[DbConn]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        return self.backend.begin()

    def connect(self) -> AbstractAsyncContextManager[DbConn]:
        """A connection for reads."""
        return self.backend.connect()

    async def transaction(self, body: Body[T]) -> T:
        """Run `body` as one transaction (on SQLite: in one hop to the database thread)."""
        return await self.backend.transaction(body)

    async def execute(
        self, statement: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> Rows:
        """One statement as its own transaction (on SQLite: one hop)."""

        async def body(conn: DbConn) -> Rows:
            return await conn.execute(statement, params)

        return await self.transaction(body)

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

    # Edits -----------------------------------------------------------------------------------

    async def create_edit(
        self, new: NewEdit, *, unblock_chat: bool = False, guard: InsertGuard | None = None
    ) -> Edit | None:
        """Insert an edit; None when its dedupe key exists (a repeated Telegram update).

        `unblock_chat`: the chat is talking to the bot again, so it is no longer blocked
        (in the same transaction). `guard`: a condition (e.g. a quota counted from `edits`)
        checked in the same transaction with the new row counted; LimitReached, and nothing
        recorded, when it does not hold.
        """
        now = time.time()
        values = {
            "dedupe_key": new.dedupe_key,
            "chat_id": new.chat_id,
            "chat_type": new.chat_type,
            "user_id": new.user_id,
            "message_id": new.message_id,
            "lang": new.lang,
            "provider": new.provider,
            "model": new.model,
            "prompt": new.prompt,
            "params": new.params,
            "inputs": [item.to_json() for item in new.inputs],
            "state": new.state.value,
            "callback_token": new.callback_token,
            "lease_owner": new.lease_owner,
            "lease_until": new.lease_until,
            "user_name": new.user_name,
            "created_at": now,
            "updated_at": now,
        }
        insert = _prepared(
            ("create_edit", tuple(values)),
            lambda: edits.insert().values(_setters(edits, values)).returning(edits),
        )
        postgres = self.dialect == "postgresql"

        async def body(conn: DbConn) -> RowMapping:
            if guard is not None and postgres:
                # READ COMMITTED would let two guarded inserts miss each other's rows.
                await conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:a, :b)"),
                    {"a": guard.lock[0], "b": guard.lock[1]},
                )
            if unblock_chat:
                await conn.execute(_UNBLOCK, {"w_chat": new.chat_id})
            row = (await conn.execute(insert, _bound(values))).mappings().one()
            if guard is not None:
                check = sa.select(guard.holds(row["id"], now))
                if not (await conn.execute(check)).scalar():
                    raise LimitReached(new.dedupe_key)  # rolls the insert back
            return row

        try:
            row = await self.transaction(body)
        except IntegrityError:
            return None
        return Edit.from_row(row)

    async def get_edit(self, edit_id: int) -> Edit | None:
        rows = await self.execute(_GET_EDIT, {"w_id": edit_id})
        row = rows.mappings().first()
        return Edit.from_row(row) if row else None

    async def transition(self, edit_id: int, step: Step, **fields: Any) -> Edit | None:
        """Apply `step` to an edit, setting `fields`, in one conditional UPDATE.

        An edit that ends (`step.ends`) gives its lease back in the same change. Returns the
        updated edit, or None when the edit was not in `step.sources` (someone else already
        took this step, or another one): the caller must then do nothing.
        """
        values: dict[str, Any] = {"updated_at": time.time(), **fields, "state": step.target.value}
        if step.ends:
            values.setdefault("lease_owner", None)
            values.setdefault("lease_until", None)
        return await self._update(edit_id, values, step.sources, step.error_codes)

    async def update_fields(
        self, edit_id: int, *, only_in: Iterable[EditState] | None = None, **fields: Any
    ) -> Edit | None:
        """Set fields of an edit without changing its state (`only_in`: if it is in one of
        those states). None when there is no such edit (or it is in another state)."""
        if "state" in fields:
            raise ValueError("state changes go through transition() and a Step")
        values: dict[str, Any] = {"updated_at": time.time(), **fields}
        return await self._update(edit_id, values, only_in, None)

    async def _update(
        self,
        edit_id: int,
        values: dict[str, Any],
        states: Iterable[EditState] | None,
        error_codes: Iterable[str] | None,
    ) -> Edit | None:
        names = tuple(values)
        wanted = None if states is None else sorted(state.value for state in states)
        codes = None if error_codes is None else list(error_codes)

        def build() -> sa.Update:
            conditions = [edits.c.id == sa.bindparam("w_id")]
            if wanted is not None:
                conditions.append(_in(edits.c.state, "w_states", len(wanted)))
            if codes is not None:
                conditions.append(_in(edits.c.error_code, "w_codes", len(codes)))
            return edits.update().where(*conditions).values(_setters(edits, names))

        shape = (
            "update",
            names,
            None if wanted is None else len(wanted),
            None if codes is None else len(codes),
        )
        stmt = _prepared(shape, lambda: build().returning(edits))
        params = _bound(values, w_id=edit_id)
        if wanted is not None:
            params.update(_listed("w_states", wanted))
        if codes is not None:
            params.update(_listed("w_codes", codes))
        row = (await self.execute(stmt, params)).mappings().first()
        return Edit.from_row(row) if row else None

    async def claim(
        self, edit_id: int, states: Iterable[EditState], owner: str, lease_seconds: float
    ) -> Edit | None:
        """Take a lease on an edit in one of `states` unless someone else holds a live one."""
        stmt, params = _claim(edit_id, states, owner, lease_seconds, with_blocked=False)
        rows = await self.execute(stmt, params)
        row = rows.mappings().first()
        return Edit.from_row(row) if row else None

    async def claim_for_chat(
        self, edit_id: int, states: Iterable[EditState], owner: str, lease_seconds: float
    ) -> tuple[Edit, bool] | None:
        """`claim`, also telling whether the edit's chat blocked the bot (one statement)."""
        stmt, params = _claim(edit_id, states, owner, lease_seconds, with_blocked=True)
        rows = await self.execute(stmt, params)
        row = rows.mappings().first()
        return (Edit.from_row(row), bool(row["chat_blocked"])) if row else None

    async def settle_callback(
        self,
        edit_id: int,
        step: Step,
        *,
        provider: str,
        callback_token: str,
        task_id: str | None,
        **fields: Any,
    ) -> Settled | None:
        """`transition` (SUCCEED or FAIL_TASK) for a provider callback, checking its credentials in
        the same statement.

        Matches only the edit of `provider` whose callback token is `callback_token` and, if
        the callback names a `task_id`, whose task id is that one or still unknown (then it
        is recorded). None when anything does not match: the caller looks the edit up to say
        what (unknown edit, bad token, another task, already settled).
        """
        values: dict[str, Any] = {"updated_at": time.time(), **fields, "state": step.target.value}
        names = tuple(values)
        with_task = task_id is not None
        states = sorted(state.value for state in step.sources)

        def build() -> sa.Update:
            conditions = [
                edits.c.id == sa.bindparam("w_id"),
                _in(edits.c.state, "w_states", len(states)),
                edits.c.provider == sa.bindparam("w_provider"),
                edits.c.callback_token == sa.bindparam("w_token"),
            ]
            setters: dict[str, Any] = _setters(edits, names)
            if with_task:
                task = edits.c.task_id
                conditions.append(sa.or_(task.is_(None), task == sa.bindparam("w_task")))
                setters["task_id"] = sa.func.coalesce(task, sa.bindparam("w_new_task"))
            return edits.update().where(*conditions).values(setters).returning(*_SETTLED)

        stmt = _prepared(("settle_callback", names, with_task, len(states)), build)
        params = _bound(
            values,
            w_id=edit_id,
            w_provider=provider,
            w_token=callback_token,
            **_listed("w_states", states),
        )
        if task_id is not None:
            params["w_task"] = params["w_new_task"] = task_id
        row = (await self.execute(stmt, params)).first()
        return Settled(row[0], EditState(row[1]), row[2], row[3], row[4]) if row else None

    async def release(self, edit_id: int, owner: str, **fields: Any) -> None:
        """Give up a lease (and set `fields`) if we still hold it."""
        values = {"lease_owner": None, "lease_until": None, "updated_at": time.time(), **fields}
        names = tuple(values)
        stmt = _prepared(
            ("release", names),
            lambda: (
                edits.update()
                .where(
                    edits.c.id == sa.bindparam("w_id"),
                    edits.c.lease_owner == sa.bindparam("w_owner"),
                )
                .values(_setters(edits, names))
            ),
        )
        await self.execute(stmt, _bound(values, w_id=edit_id, w_owner=owner))

    async def due_edits(
        self,
        states: Sequence[EditState],
        *,
        now: float,
        limit: int = 100,
        updated_before: float | None = None,
    ) -> list[Edit]:
        """Edits in `states` that are due: next check passed (or unset) and not leased."""
        conditions = [
            edits.c.state.in_([state.value for state in states]),
            sa.or_(edits.c.next_check_at.is_(None), edits.c.next_check_at <= now),
            sa.or_(edits.c.lease_until.is_(None), edits.c.lease_until < now),
        ]
        if updated_before is not None:
            conditions.append(edits.c.updated_at < updated_before)
        stmt = sa.select(edits).where(*conditions).order_by(edits.c.id).limit(limit)
        rows = (await self.execute(stmt)).mappings().all()
        return [Edit.from_row(row) for row in rows]

    async def unnotified(self, *, limit: int = 100, older_than: float) -> list[Edit]:
        """Failure-like edits whose user has not been told yet."""
        now = time.time()
        stmt = (
            sa.select(edits)
            .where(
                edits.c.state.in_([state.value for state in NOTIFY_STATES]),
                edits.c.notified_at.is_(None),
                edits.c.updated_at < older_than,
                sa.or_(edits.c.lease_until.is_(None), edits.c.lease_until < now),
            )
            .order_by(edits.c.id)
            .limit(limit)
        )
        rows = (await self.execute(stmt)).mappings().all()
        return [Edit.from_row(row) for row in rows]

    async def mark_notified(self, edit_id: int) -> bool:
        """Record that the user was told about a failure; False if someone already did."""
        stmt = (
            edits.update()
            .where(edits.c.id == edit_id, edits.c.notified_at.is_(None))
            .values(notified_at=time.time(), lease_owner=None, lease_until=None)
        )
        result = await self.execute(stmt)
        return bool(result.rowcount)

    async def finished_with_blobs(self, *, before: float, limit: int = 200) -> list[Edit]:
        """Ended edits (finished before `before`) whose input photos are still stored."""
        ended = [state.value for state in TERMINAL_STATES]
        stmt = (
            sa.select(edits)
            .where(
                edits.c.state.in_(ended),
                edits.c.blob_keys.is_not(None),
                edits.c.updated_at < before,
            )
            .order_by(edits.c.id)
            .limit(limit)
        )
        rows = (await self.execute(stmt)).mappings().all()
        return [edit for edit in map(Edit.from_row, rows) if edit.blob_keys]

    async def count_by_state_and_provider(self) -> dict[tuple[str, str], int]:
        stmt = sa.select(edits.c.state, edits.c.provider, sa.func.count()).group_by(
            edits.c.state, edits.c.provider
        )
        rows = (await self.execute(stmt)).all()
        return {(str(state), str(provider)): int(count) for state, provider, count in rows}

    async def count_unnotified(self) -> int:
        """Failure-like edits whose user has not been told yet."""
        stmt = sa.select(sa.func.count()).where(
            edits.c.state.in_([state.value for state in NOTIFY_STATES]),
            edits.c.notified_at.is_(None),
        )
        return int((await self.execute(stmt)).scalar_one())

    async def count_by_state(self) -> dict[str, int]:
        stmt = sa.select(edits.c.state, sa.func.count()).group_by(edits.c.state)
        rows = (await self.execute(stmt)).all()
        return {str(state): int(count) for state, count in rows}

    async def recent_edits(self, user_id: int, *, limit: int = 10) -> list[Edit]:
        stmt = (
            sa.select(edits)
            .where(edits.c.user_id == user_id)
            .order_by(edits.c.id.desc())
            .limit(limit)
        )
        rows = (await self.execute(stmt)).mappings().all()
        return [Edit.from_row(row) for row in rows]

    async def set_status_message(self, edit_id: int, message_id: int) -> None:
        await self.execute(_SET_STATUS, {"w_id": edit_id, "v_status_message_id": message_id})

    # Pending prompts (a photo came without caption: the next text is its prompt) -------------

    async def put_pending_prompt(
        self, chat_id: int, user_id: int, message_id: int, inputs: list[InputPhoto]
    ) -> None:
        async with self.begin() as conn:
            await conn.execute(
                pending_prompts.delete().where(
                    pending_prompts.c.chat_id == chat_id, pending_prompts.c.user_id == user_id
                )
            )
            await conn.execute(
                pending_prompts.insert().values(
                    chat_id=chat_id,
                    user_id=user_id,
                    message_id=message_id,
                    inputs=[item.to_json() for item in inputs],
                    created_at=time.time(),
                )
            )

    async def take_pending_prompt(
        self, chat_id: int, user_id: int, *, max_age: float
    ) -> tuple[int, list[InputPhoto]] | None:
        """Remove and return the photo waiting for this user's prompt, if fresh enough."""
        stmt = (
            pending_prompts.delete()
            .where(pending_prompts.c.chat_id == chat_id, pending_prompts.c.user_id == user_id)
            .returning(pending_prompts)
        )
        row = (await self.execute(stmt)).mappings().first()
        if row is None or row["created_at"] < time.time() - max_age:
            return None
        return int(row["message_id"]), [InputPhoto.from_json(item) for item in row["inputs"]]

    # Blocked chats ---------------------------------------------------------------------------

    async def block_chat(self, chat_id: int, reason: str) -> None:
        async with self.begin() as conn:
            exists = await conn.execute(
                sa.select(blocked_chats.c.chat_id).where(blocked_chats.c.chat_id == chat_id)
            )
            if exists.first() is None:
                await conn.execute(
                    blocked_chats.insert().values(
                        chat_id=chat_id, reason=reason, created_at=time.time()
                    )
                )

    async def unblock_chat(self, chat_id: int) -> None:
        await self.execute(blocked_chats.delete().where(blocked_chats.c.chat_id == chat_id))

    async def is_chat_blocked(self, chat_id: int) -> bool:
        async with self.connect() as conn:
            result = await conn.execute(
                sa.select(blocked_chats.c.chat_id).where(blocked_chats.c.chat_id == chat_id)
            )
            return result.first() is not None

    # Albums ----------------------------------------------------------------------------------

    async def add_album_item(self, item: AlbumItem) -> bool:
        """Buffer one album message; False if the group was already turned into an edit."""
        now = time.time()
        try:
            async with self.begin() as conn:
                await conn.execute(
                    albums.insert().values(
                        chat_id=item.chat_id,
                        media_group_id=item.media_group_id,
                        state="open",
                        last_item_at=now,
                        created_at=now,
                    )
                )
        except IntegrityError:
            async with self.begin() as conn:
                result = await conn.execute(
                    albums.update()
                    .where(
                        albums.c.chat_id == item.chat_id,
                        albums.c.media_group_id == item.media_group_id,
                        albums.c.state == "open",
                    )
                    .values(last_item_at=now)
                )
            if not result.rowcount:
                return False
        try:
            async with self.begin() as conn:
                await conn.execute(
                    album_items.insert().values(
                        chat_id=item.chat_id,
                        message_id=item.message_id,
                        media_group_id=item.media_group_id,
                        user_id=item.user_id,
                        chat_type=item.chat_type,
                        lang=item.lang,
                        caption=item.caption,
                        photo=item.photo.to_json() if item.photo else None,
                        created_at=now,
                    )
                )
        except IntegrityError:
            return True  # a repeated update of the same message
        return True

    async def album_last_item_at(self, chat_id: int, media_group_id: str) -> float | None:
        """When the newest message of an open album arrived (None: closed or unknown)."""
        stmt = sa.select(albums.c.last_item_at).where(
            albums.c.chat_id == chat_id,
            albums.c.media_group_id == media_group_id,
            albums.c.state == "open",
        )
        value = (await self.execute(stmt)).scalar()
        return float(value) if value is not None else None

    async def claim_album(
        self, chat_id: int, media_group_id: str, *, quiet_since: float
    ) -> list[AlbumItem] | None:
        """Close an album that got no new message since `quiet_since`; exactly one caller wins."""
        async with self.begin() as conn:
            result = await conn.execute(
                albums.update()
                .where(
                    albums.c.chat_id == chat_id,
                    albums.c.media_group_id == media_group_id,
                    albums.c.state == "open",
                    albums.c.last_item_at <= quiet_since,
                )
                .values(state="closed")
            )
            if not result.rowcount:
                return None
            rows = (
                (
                    await conn.execute(
                        sa.select(album_items)
                        .where(
                            album_items.c.chat_id == chat_id,
                            album_items.c.media_group_id == media_group_id,
                        )
                        .order_by(album_items.c.message_id)
                    )
                )
                .mappings()
                .all()
            )
            await conn.execute(
                album_items.delete().where(
                    album_items.c.chat_id == chat_id,
                    album_items.c.media_group_id == media_group_id,
                )
            )
        return [
            AlbumItem(
                chat_id=row["chat_id"],
                message_id=row["message_id"],
                media_group_id=row["media_group_id"],
                user_id=row["user_id"],
                chat_type=row["chat_type"],
                lang=row["lang"],
                caption=row["caption"],
                photo=InputPhoto.from_json(row["photo"]) if row["photo"] else None,
                created_at=row["created_at"],
            )
            for row in rows
        ]

    async def open_albums(self, *, quiet_since: float) -> list[tuple[int, str]]:
        """Albums still open whose last message is older than `quiet_since` (for recovery)."""
        stmt = sa.select(albums.c.chat_id, albums.c.media_group_id).where(
            albums.c.state == "open", albums.c.last_item_at <= quiet_since
        )
        return [(int(chat), str(group)) for chat, group in (await self.execute(stmt)).all()]

    async def forget_closed_albums(self, *, before: float) -> None:
        async with self.begin() as conn:
            await conn.execute(
                albums.delete().where(albums.c.state == "closed", albums.c.created_at < before)
            )
