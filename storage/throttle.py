"""Throttled repeated actions (`Database.throttle`), e.g. "As file" presses under a result.

Each action taken is a row (`action_marks`); a new one is allowed while every window rule
holds, counted from the table, so replicas agree. On PostgreSQL advisory locks (the subject,
then the user: one order, no deadlock) make the count and the insert one step; SQLite
serializes writers anyway. Marks older than the longest window are deleted as they are
passed over.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from storage.dbconn import Backend, DbConn
from storage.schema import action_marks

LOCK_SUBJECT = 0x746873  # "ths"
LOCK_USER = 0x746875  # "thu"


@dataclass(frozen=True)
class Rule:
    """At most `count` actions per `period` seconds, per user or per subject."""

    scope: Literal["user", "subject"]
    count: int
    period: float


class ActionThrottle:
    def __init__(self, db: Backend) -> None:
        self._db = db

    async def take(
        self,
        action: str,
        user_id: int,
        subject: int,
        rules: Sequence[Rule],
        *,
        now: float | None = None,
    ) -> float | None:
        """Record the action if every rule allows it (None); else when to try again."""
        now = time.time() if now is None else now
        c = action_marks.c
        longest = max((rule.period for rule in rules), default=0.0)

        async def body(conn: DbConn) -> float | None:
            if self._db.dialect == "postgresql":
                for key in ((LOCK_SUBJECT, subject), (LOCK_USER, user_id)):
                    await conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:a, :b)"),
                        {"a": key[0], "b": key[1] % 2**31},
                    )
            await conn.execute(
                action_marks.delete().where(
                    c.action == action,
                    sa.or_(c.user_id == user_id, c.subject == subject),
                    c.at <= now - longest,
                )
            )
            for rule in rules:
                scope = c.user_id == user_id if rule.scope == "user" else c.subject == subject
                # The count-th newest mark in the window: once it leaves it, a slot frees.
                stmt = (
                    sa.select(c.at)
                    .where(c.action == action, scope, c.at > now - rule.period)
                    .order_by(c.at.desc())
                    .offset(rule.count - 1)
                    .limit(1)
                )
                oldest = (await conn.execute(stmt)).scalar()
                if oldest is not None:
                    return float(oldest) + rule.period
            await conn.execute(
                action_marks.insert().values(
                    action=action, user_id=user_id, subject=subject, at=now
                )
            )
            return None

        return await self._db.transaction(body)
