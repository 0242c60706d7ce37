"""Read-only queries over the `edits` table, for the sweeper, the metrics and /history
(reached through `Database.edits`, whose class extends this one)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from domain.edit import NOTIFY_STATES, TERMINAL_STATES, Edit, EditState
from storage.dbconn import Backend
from storage.rows import edit_from_row
from storage.schema import edits


class EditQueries:
    _db: Backend

    async def _select(self, stmt: sa.Select[Any]) -> list[Edit]:
        return [edit_from_row(row) for row in (await self._db.execute(stmt)).mappings().all()]

    async def due(
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
        return await self._select(
            sa.select(edits).where(*conditions).order_by(edits.c.id).limit(limit)
        )

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
        return await self._select(stmt)

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
        return [edit for edit in await self._select(stmt) if edit.blob_keys]

    async def recent(self, user_id: int, *, limit: int = 10) -> list[Edit]:
        """A user's newest edits."""
        stmt = (
            sa.select(edits)
            .where(edits.c.user_id == user_id)
            .order_by(edits.c.id.desc())
            .limit(limit)
        )
        return await self._select(stmt)

    async def count_by_state_and_provider(self) -> dict[tuple[str, str], int]:
        stmt = sa.select(edits.c.state, edits.c.provider, sa.func.count()).group_by(
            edits.c.state, edits.c.provider
        )
        rows = (await self._db.execute(stmt)).all()
        return {(str(state), str(provider)): int(count) for state, provider, count in rows}

    async def count_unnotified(self) -> int:
        """Failure-like edits whose user has not been told yet."""
        stmt = sa.select(sa.func.count()).where(
            edits.c.state.in_([state.value for state in NOTIFY_STATES]),
            edits.c.notified_at.is_(None),
        )
        return int((await self._db.execute(stmt)).scalar_one())
