"""What operators decide about one user at runtime (`Database.user_controls`): a bot-wide
ban, a place on the runtime allowlist, and the user's own limits; and the audit log of every
such change.

Nothing here is cached: each request reads the row, so a ban made through one replica holds
on every replica at once. A change and its audit entry are one transaction.

Other code reads a user's own limits with `limits_for(user_id)`: None when an operator set
none, else a `UserOverrides` whose fields are None where the deployment's setting applies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any, Literal

import sqlalchemy as sa

from storage.dbconn import Backend, DbConn
from storage.schema import edits, operator_log, user_controls

DETAIL_MAX = 500
LIST_MAX = 50

Action = Literal["ban", "unban", "allow", "disallow", "limits"]


@dataclass(frozen=True)
class UserOverrides:
    """One user's own limits, set by an operator; None: the deployment's setting applies.

    `max_in_flight`: edits not yet finished; `daily_edits`: edits in a rolling 24 h (0: no
    limit); `daily_credits`: provider credits in a rolling 24 h (0: no limit).
    """

    max_in_flight: int | None = None
    daily_edits: int | None = None
    daily_credits: float | None = None

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def describe(self) -> str:
        """`name=value` of what is set (for the audit log), or "-"."""
        parts = [
            f"{f.name}={value:g}"
            for f in fields(self)
            if (value := getattr(self, f.name)) is not None
        ]
        return ", ".join(parts) or "-"


@dataclass(frozen=True)
class UserControl:
    """Everything operators decided about one user."""

    user_id: int
    banned: bool = False
    allowed: bool = False
    limits: UserOverrides = UserOverrides()
    updated_by: int | None = None
    updated_at: float | None = None


@dataclass(frozen=True)
class LogEntry:
    """One change an operator made."""

    at: float
    operator_id: int
    action: str
    user_id: int | None
    detail: str


@dataclass(frozen=True)
class UserSpend:
    """Edits one user sent to a provider, and the credits recorded for them."""

    user_id: int
    name: str | None
    edits: int
    credits: float


def _control(row: Any) -> UserControl:
    return UserControl(
        user_id=int(row["user_id"]),
        banned=bool(row["banned"]),
        allowed=bool(row["allowed"]),
        limits=UserOverrides(
            max_in_flight=row["max_in_flight"],
            daily_edits=row["daily_edits"],
            daily_credits=row["daily_credits"],
        ),
        updated_by=row["updated_by"],
        updated_at=row["updated_at"],
    )


def _sent_since(since: float) -> tuple[sa.ColumnElement[bool], ...]:
    """Edits sent to a provider (a task was created) since `since`."""
    return (edits.c.task_id.is_not(None), edits.c.created_at > since)


class UserControls:
    def __init__(self, db: Backend) -> None:
        self._db = db

    async def get(self, user_id: int) -> UserControl | None:
        stmt = sa.select(user_controls).where(user_controls.c.user_id == user_id)
        row = (await self._db.execute(stmt)).mappings().first()
        return None if row is None else _control(row)

    async def limits_for(self, user_id: int) -> UserOverrides | None:
        """The user's own limits, or None when an operator set none."""
        control = await self.get(user_id)
        if control is None or control.limits.empty:
            return None
        return control.limits

    async def set_banned(self, user_id: int, banned: bool, *, by: int, detail: str = "") -> bool:
        """Ban (or unban) the user bot-wide; False if it already was so (nothing logged)."""
        action: Action = "ban" if banned else "unban"
        return await self._change(user_id, by, action, detail, banned=banned)

    async def set_allowed(self, user_id: int, allowed: bool, *, by: int) -> bool:
        """Put the user on (or take them off) the runtime allowlist; False if unchanged."""
        action: Action = "allow" if allowed else "disallow"
        return await self._change(user_id, by, action, "", allowed=allowed)

    async def set_limits(self, user_id: int, limits: UserOverrides, *, by: int) -> bool:
        """Replace the user's own limits (`UserOverrides()` clears them); False if unchanged."""
        values = {f.name: getattr(limits, f.name) for f in fields(limits)}
        return await self._change(user_id, by, "limits", limits.describe(), **values)

    async def _change(
        self, user_id: int, by: int, action: Action, detail: str, **values: Any
    ) -> bool:
        now = time.time()
        where = user_controls.c.user_id == user_id

        async def body(conn: DbConn) -> bool:
            row = (await conn.execute(sa.select(user_controls).where(where))).mappings().first()
            stamp = {"updated_by": by, "updated_at": now}
            if row is None:
                if all(value is None or value is False for value in values.values()):
                    return False  # unbanning, disallowing or clearing a user never touched
                await conn.execute(
                    user_controls.insert().values(user_id=user_id, **values, **stamp)
                )
            elif all(row[name] == value for name, value in values.items()):
                return False
            else:
                await conn.execute(user_controls.update().where(where).values(**values, **stamp))
            await conn.execute(
                operator_log.insert().values(
                    at=now,
                    operator_id=by,
                    action=action,
                    user_id=user_id,
                    detail=detail[:DETAIL_MAX],
                )
            )
            return True

        return await self._db.transaction(body)

    async def listed(self, *, limit: int = LIST_MAX) -> list[UserControl]:
        """Users with a ban, a place on the allowlist or limits of their own, newest first."""
        c = user_controls.c
        stmt = (
            sa.select(user_controls)
            .where(
                sa.or_(
                    c.banned,
                    c.allowed,
                    c.max_in_flight.is_not(None),
                    c.daily_edits.is_not(None),
                    c.daily_credits.is_not(None),
                )
            )
            .order_by(c.updated_at.desc())
            .limit(limit)
        )
        return [_control(row) for row in (await self._db.execute(stmt)).mappings().all()]

    async def log(self, *, limit: int = 20) -> list[LogEntry]:
        """The newest operator changes first."""
        stmt = sa.select(operator_log).order_by(operator_log.c.id.desc()).limit(limit)
        rows = (await self._db.execute(stmt)).mappings().all()
        return [
            LogEntry(
                at=float(row["at"]),
                operator_id=int(row["operator_id"]),
                action=str(row["action"]),
                user_id=row["user_id"],
                detail=str(row["detail"]),
            )
            for row in rows
        ]

    async def spend(self, *, since: float) -> tuple[int, float]:
        """Edits sent to a provider bot-wide since `since`, and their recorded credits."""
        stmt = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(edits.c.credits), 0.0))
        row = (await self._db.execute(stmt.where(*_sent_since(since)))).one()
        return int(row[0] or 0), float(row[1] or 0.0)

    async def heaviest(self, *, since: float, limit: int = 5) -> list[UserSpend]:
        """The users who spent the most credits (then sent the most edits) since `since`."""
        credits = sa.func.coalesce(sa.func.sum(edits.c.credits), 0.0)
        stmt = (
            sa.select(
                edits.c.user_id, sa.func.max(edits.c.user_name), sa.func.count(), credits.label("c")
            )
            .where(*_sent_since(since))
            .group_by(edits.c.user_id)
            .order_by(sa.desc("c"), sa.func.count().desc(), edits.c.user_id)
            .limit(limit)
        )
        rows = (await self._db.execute(stmt)).all()
        return [
            UserSpend(int(user_id), name, int(count), float(total))
            for user_id, name, count, total in rows
        ]
