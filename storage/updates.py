"""Telegram updates (`Database.updates`): the durable intake's storage.

An update is recorded (one INSERT ... ON CONFLICT DO NOTHING) before Telegram hears that it
arrived, so a crash after the acknowledgement loses nothing, and its `update_id` is the key,
so an update Telegram sends again is recognised and recorded nothing. The process that
records an update holds a lease on it while it handles it (renewed while it lives); an
update whose lease ran out before it was done is claimed by whoever comes next (the
restarted process, another replica). Done rows keep only their id, to recognise repeats,
until they are pruned.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from storage.dbconn import Backend, DbConn
from storage.schema import updates
from storage.statements import bound, prepared, setters

_RECORD_SETS = ("update_id", "payload", "lease_owner", "lease_until", "received_at")
_C = updates.c


def _record_statement(dialect: str) -> sa.Executable:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(updates)
        .values(setters(updates, _RECORD_SETS))
        .on_conflict_do_nothing(index_elements=["update_id"])
        .returning(_C.update_id)
    )


_DONE = (
    updates.update()
    .where(_C.update_id == sa.bindparam("w_id"), _C.done_at.is_(None))
    .values(done_at=sa.bindparam("v_done_at"), payload=None, lease_owner=None, lease_until=0.0)
)
# Oldest first: a restart handles what it finds in the order Telegram sent it.
_STALE = (
    sa.select(_C.update_id)
    .where(_C.done_at.is_(None), _C.lease_until < sa.bindparam("w_now"))
    .order_by(_C.update_id)
    .limit(sa.bindparam("w_limit"))
    .scalar_subquery()
)
_CLAIM = (
    updates.update()
    .where(
        _C.update_id.in_(_STALE),
        # Checked again on the row itself: of two processes claiming at once, one wins.
        _C.done_at.is_(None),
        _C.lease_until < sa.bindparam("w_now"),
    )
    .values(lease_owner=sa.bindparam("v_owner"), lease_until=sa.bindparam("v_until"))
    .returning(_C.update_id, _C.payload)
)


class Updates:
    """Recording Telegram updates, leasing them while they are handled, marking them done."""

    def __init__(self, db: Backend) -> None:
        self._db = db

    def _values(self, update_id: int, payload: str, owner: str, lease: float) -> dict[str, Any]:
        now = time.time()
        return bound(
            {
                "update_id": update_id,
                "payload": payload,
                "lease_owner": owner,
                "lease_until": now + lease,
                "received_at": now,
            }
        )

    async def record(self, update_id: int, payload: str, owner: str, lease: float) -> bool:
        """Record an update, leased to `owner` for `lease` seconds; False: already recorded."""
        stmt = prepared(
            ("record_update", self._db.dialect), lambda: _record_statement(self._db.dialect)
        )
        rows = await self._db.execute(stmt, self._values(update_id, payload, owner, lease))
        return rows.first() is not None

    async def record_many(
        self, items: Sequence[tuple[int, str]], owner: str, lease: float
    ) -> list[int]:
        """Record a batch in one transaction; the ids that were new, in the order given."""
        stmt = prepared(
            ("record_update", self._db.dialect), lambda: _record_statement(self._db.dialect)
        )

        async def body(conn: DbConn) -> list[int]:
            new = []
            for update_id, payload in items:
                rows = await conn.execute(stmt, self._values(update_id, payload, owner, lease))
                if rows.first() is not None:
                    new.append(update_id)
            return new

        return await self._db.transaction(body)

    async def done(self, update_id: int) -> None:
        """The update was handled: keep its id (to recognise a repeat), drop its payload."""
        await self._db.execute(_DONE, {"w_id": update_id, "v_done_at": time.time()})

    async def renew(self, update_ids: Sequence[int], owner: str, lease: float) -> None:
        """Extend `owner`'s leases of these updates (they are still being handled)."""
        if not update_ids:
            return
        await self._db.execute(
            updates.update()
            .where(_C.update_id.in_(list(update_ids)), _C.lease_owner == owner)
            .where(_C.done_at.is_(None))
            .values(lease_until=time.time() + lease)
        )

    async def claim_stale(
        self, owner: str, lease: float, limit: int = 100
    ) -> list[tuple[int, str]]:
        """Lease recorded updates nobody is handling (their lease ran out), oldest first."""
        now = time.time()
        rows = await self._db.execute(
            _CLAIM, {"w_now": now, "w_limit": limit, "v_owner": owner, "v_until": now + lease}
        )
        return sorted((int(row[0]), str(row[1])) for row in rows.all())

    async def release(self, owner: str) -> None:
        """Give back `owner`'s unfinished updates, for the next process to handle at once."""
        await self._db.execute(
            updates.update()
            .where(_C.lease_owner == owner, _C.done_at.is_(None))
            .values(lease_owner=None, lease_until=0.0)
        )

    async def prune(self, done_before: float) -> int:
        """Forget updates done before `done_before` (Unix time); how many were removed."""
        rows = await self._db.execute(updates.delete().where(_C.done_at < done_before))
        return rows.rowcount

    async def count_pending(self) -> int:
        """Updates recorded and not yet handled."""
        rows = await self._db.execute(
            sa.select(sa.func.count()).select_from(updates).where(_C.done_at.is_(None))
        )
        return int(rows.scalar_one())
