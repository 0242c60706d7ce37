"""The `edits` table: the edit state machine's storage (`Database.edits`).

Every state change of an edit is one conditional UPDATE (`transition`): it names the states
the edit may be in and succeeds for exactly one caller, so a repeated callback, a restart or
a second replica can never apply the same step twice. The hot statements are prepared once
per shape (see storage.statements).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from domain.edit import Edit, EditState, NewEdit, Settled
from domain.steps import Step
from storage.dbconn import Backend, DbConn, Statement
from storage.edit_queries import EditQueries
from storage.rows import edit_from_row
from storage.schema import blocked_chats, edits
from storage.statements import bound, listed, one_of, prepared, setters


class LimitReached(Exception):
    """A guarded insert found its condition (a quota) no longer holding: nothing recorded."""


@dataclass(frozen=True)
class InsertGuard:
    """A condition an insert must satisfy with its own row counted (see `Edits.create`).

    `holds(new_id, now)` builds the condition; `locks` name PostgreSQL advisory locks (two
    int4 keys each, taken in sorted order: no deadlock) serializing guarded inserts of the
    scopes counted (a group, a user, the bot; on SQLite its single write lock does it);
    `then(conn, new_id, now)`: a write in the same transaction (a reservation), False undoes it.
    """

    holds: Callable[[int, float], sa.ColumnElement[bool]]
    locks: tuple[tuple[int, int], ...]
    then: Callable[[DbConn, int, float], Awaitable[bool]] | None = None


_CLAIM_SETS = ("lease_owner", "lease_until", "updated_at")
_RENEW_CHUNK = 500  # owners per renewing UPDATE (SQLite's bound-parameter limit is higher)
_SETTLED = (edits.c.id, edits.c.state, edits.c.provider, edits.c.task_id, edits.c.error_code)
_GET = sa.select(edits).where(edits.c.id == sa.bindparam("w_id"))
_UNBLOCK = blocked_chats.delete().where(blocked_chats.c.chat_id == sa.bindparam("w_chat"))


def _claim_statement(with_blocked: bool, states: int) -> sa.Update:
    """Lease an edit in one of `w_states` unless someone else holds a live lease."""
    stmt = (
        edits.update()
        .where(
            edits.c.id == sa.bindparam("w_id"),
            one_of(edits.c.state, "w_states", states),
            sa.or_(edits.c.lease_until.is_(None), edits.c.lease_until < sa.bindparam("w_now")),
        )
        .values(setters(edits, _CLAIM_SETS))
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
    stmt = prepared(
        ("claim", with_blocked, len(wanted)),
        lambda: _claim_statement(with_blocked, len(wanted)),
    )
    now = time.time()
    values = {"lease_owner": owner, "lease_until": now + lease_seconds, "updated_at": now}
    return stmt, bound(values, w_id=edit_id, w_now=now, **listed("w_states", wanted))


class Edits(EditQueries):
    """Creating edits, their state changes and leases, and (storage.edit_queries) the
    queries over them."""

    def __init__(self, db: Backend) -> None:
        self._db = db

    async def create(
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
            "cost_estimate": new.cost_estimate,
            "thread_id": new.thread_id,
            "created_at": now,
            "updated_at": now,
        }
        insert = prepared(
            ("create_edit", tuple(values)),
            lambda: edits.insert().values(setters(edits, values)).returning(edits),
        )
        postgres = self._db.dialect == "postgresql"

        async def body(conn: DbConn) -> RowMapping:
            if guard is not None and postgres:
                # READ COMMITTED would let two guarded inserts miss each other's rows.
                for a, b in sorted(set(guard.locks)):
                    await conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": a, "b": b}
                    )
            if unblock_chat:
                await conn.execute(_UNBLOCK, {"w_chat": new.chat_id})
            row = (await conn.execute(insert, bound(values))).mappings().one()
            if guard is not None:
                held = (await conn.execute(sa.select(guard.holds(row["id"], now)))).scalar()
                if not held or (guard.then and not await guard.then(conn, row["id"], now)):
                    raise LimitReached(new.dedupe_key)  # rolls the insert back
            return row

        try:
            row = await self._db.transaction(body)
        except IntegrityError:
            return None
        return edit_from_row(row)

    async def get(self, edit_id: int) -> Edit | None:
        row = (await self._db.execute(_GET, {"w_id": edit_id})).mappings().first()
        return edit_from_row(row) if row else None

    async def transition(
        self,
        edit_id: int,
        step: Step,
        *,
        owner: str | None = None,
        also: Statement | None = None,
        **fields: Any,
    ) -> Edit | None:
        """Apply `step` to an edit, setting `fields`, in one conditional UPDATE.

        An edit that ends (`step.ends`) gives its lease back in the same change. `owner`: the
        step is taken under that lease and applies only while it is still held (a worker
        whose lease ran out and was taken over commits nothing). Returns the updated edit, or
        None when the edit was not in `step.sources` (someone else already took this step,
        or another one) or the lease is not `owner`'s: the caller must then do nothing.
        `also`: another repository's write, first in the same transaction, applied either way.
        """
        values: dict[str, Any] = {"updated_at": time.time(), **fields, "state": step.target.value}
        if step.ends:
            values.setdefault("lease_owner", None)
            values.setdefault("lease_until", None)
        return await self._update(edit_id, values, step.sources, step.error_codes, owner, also)

    async def update_fields(
        self,
        edit_id: int,
        *,
        only_in: Iterable[EditState] | None = None,
        owner: str | None = None,
        **fields: Any,
    ) -> Edit | None:
        """Set fields of an edit without changing its state (`only_in`: if it is in one of
        those states; `owner`: only while that lease is held). None when there is no such
        edit (or it is in another state, or the lease is someone else's)."""
        if "state" in fields:
            raise ValueError("state changes go through transition() and a Step")
        values: dict[str, Any] = {"updated_at": time.time(), **fields}
        return await self._update(edit_id, values, only_in, None, owner)

    async def _update(
        self,
        edit_id: int,
        values: dict[str, Any],
        states: Iterable[EditState] | None,
        error_codes: Iterable[str] | None,
        owner: str | None,
        also: Statement | None = None,
    ) -> Edit | None:
        names = tuple(values)
        wanted = None if states is None else sorted(state.value for state in states)
        codes = None if error_codes is None else list(error_codes)
        fenced = owner is not None

        def build() -> sa.Update:
            conditions = [edits.c.id == sa.bindparam("w_id")]
            if wanted is not None:
                conditions.append(one_of(edits.c.state, "w_states", len(wanted)))
            if codes is not None:
                conditions.append(one_of(edits.c.error_code, "w_codes", len(codes)))
            if fenced:
                conditions.append(edits.c.lease_owner == sa.bindparam("w_owner"))
            return edits.update().where(*conditions).values(setters(edits, names))

        shape = (
            "update",
            names,
            None if wanted is None else len(wanted),
            None if codes is None else len(codes),
            fenced,
        )
        stmt = prepared(shape, lambda: build().returning(edits))
        params = bound(values, w_id=edit_id)
        if fenced:
            params["w_owner"] = owner
        if wanted is not None:
            params.update(listed("w_states", wanted))
        if codes is not None:
            params.update(listed("w_codes", codes))
        if also is None:
            row = (await self._db.execute(stmt, params)).mappings().first()
        else:

            async def body(conn: DbConn) -> RowMapping | None:
                await conn.execute(*also)
                return (await conn.execute(stmt, params)).mappings().first()

            row = await self._db.transaction(body)
        return edit_from_row(row) if row else None

    async def claim(
        self, edit_id: int, states: Iterable[EditState], owner: str, lease_seconds: float
    ) -> Edit | None:
        """Take a lease on an edit in one of `states` unless someone else holds a live one."""
        stmt, params = _claim(edit_id, states, owner, lease_seconds, with_blocked=False)
        row = (await self._db.execute(stmt, params)).mappings().first()
        return edit_from_row(row) if row else None

    async def claim_for_chat(
        self, edit_id: int, states: Iterable[EditState], owner: str, lease_seconds: float
    ) -> tuple[Edit, bool] | None:
        """`claim`, also telling whether the edit's chat blocked the bot (one statement)."""
        stmt, params = _claim(edit_id, states, owner, lease_seconds, with_blocked=True)
        row = (await self._db.execute(stmt, params)).mappings().first()
        return (edit_from_row(row), bool(row["chat_blocked"])) if row else None

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
                one_of(edits.c.state, "w_states", len(states)),
                edits.c.provider == sa.bindparam("w_provider"),
                edits.c.callback_token == sa.bindparam("w_token"),
            ]
            values_of: dict[str, Any] = setters(edits, names)
            if with_task:
                task = edits.c.task_id
                conditions.append(sa.or_(task.is_(None), task == sa.bindparam("w_task")))
                values_of["task_id"] = sa.func.coalesce(task, sa.bindparam("w_new_task"))
            return edits.update().where(*conditions).values(values_of).returning(*_SETTLED)

        stmt = prepared(("settle_callback", names, with_task, len(states)), build)
        params = bound(
            values,
            w_id=edit_id,
            w_provider=provider,
            w_token=callback_token,
            **listed("w_states", states),
        )
        if task_id is not None:
            params["w_task"] = params["w_new_task"] = task_id
        row = (await self._db.execute(stmt, params)).first()
        return Settled(row[0], EditState(row[1]), row[2], row[3], row[4]) if row else None

    async def release(self, edit_id: int, owner: str, **fields: Any) -> None:
        """Give up a lease (and set `fields`) if we still hold it."""
        values = {"lease_owner": None, "lease_until": None, "updated_at": time.time(), **fields}
        names = tuple(values)
        stmt = prepared(
            ("release", names),
            lambda: (
                edits.update()
                .where(
                    edits.c.id == sa.bindparam("w_id"),
                    edits.c.lease_owner == sa.bindparam("w_owner"),
                )
                .values(setters(edits, names))
            ),
        )
        await self._db.execute(stmt, bound(values, w_id=edit_id, w_owner=owner))

    async def renew(self, owners: Sequence[str], lease_seconds: float) -> set[str]:
        """Extend the leases held under `owners` to `lease_seconds` from now; returns the
        owners that still held one (a lease given back or taken over is not renewed)."""
        until = time.time() + lease_seconds
        renewed: set[str] = set()
        for start in range(0, len(owners), _RENEW_CHUNK):
            chunk = list(owners[start : start + _RENEW_CHUNK])
            stmt = (
                edits.update()
                .where(edits.c.lease_owner.in_(chunk))
                .values(lease_until=until)
                .returning(edits.c.lease_owner)
            )
            renewed.update(str(row[0]) for row in (await self._db.execute(stmt)).all())
        return renewed

    async def mark_notified(self, edit_id: int, owner: str) -> bool:
        """Record that the user was told about a failure, and give back the notice's lease
        (`owner`) if it still holds it; False if someone already recorded the notice.

        The lease may be another worker's by now: a late success (`LATE_SUCCESS`) moves an
        edit on while its notice is out, and its delivery claims the edit. Clearing that
        lease would let the sweeper send the result a second time.
        """
        held = edits.c.lease_owner == owner
        stmt = (
            edits.update()
            .where(edits.c.id == edit_id, edits.c.notified_at.is_(None))
            .values(
                notified_at=time.time(),
                lease_owner=sa.case((held, None), else_=edits.c.lease_owner),
                lease_until=sa.case((held, None), else_=edits.c.lease_until),
            )
        )
        return bool((await self._db.execute(stmt)).rowcount)
