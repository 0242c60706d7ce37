"""Per-user limits and the bot-wide spend cap, counted from the `edits` table
(`Database.limits`).

Like a group's quotas (storage/moderation.py), every figure comes from the database, so all
replicas agree, and the insert that records an edit re-checks them with its own row counted
(`limits_guard`, see `Edits.create`): under PostgreSQL advisory locks per user and, with a
cap, one for the whole bot. A new edit counts at once: in flight, among the day's edits and,
through its cost estimate, against the budgets (storage/spend.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from storage.dbconn import Backend, DbConn
from storage.edits import InsertGuard
from storage.moderation import DAY, counted
from storage.schema import edits, spend_alerts
from storage.spend import UNFINISHED, day_bounds, month_bounds, spent

USER_LOCKS = 0x757372  # "usr": advisory locks of one user's guarded inserts
CAP_LOCK = (0x636170, 0)  # "cap": the bot-wide cap, one lock for every guarded insert

LimitKind = Literal[
    "in_flight",
    "daily_edits",
    "daily_credits",
    "over_budget",
    "cap_daily",
    "cap_monthly",
    "balance",
]


@dataclass(frozen=True)
class UserQuota:
    """One user's limits across every chat (0: off)."""

    user_id: int
    max_in_flight: int = 0
    daily_edits: int = 0
    daily_credits: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.max_in_flight or self.daily_edits or self.daily_credits)


@dataclass(frozen=True)
class SpendCap:
    """The bot-wide budgets in credits (0: none) per UTC day and calendar month."""

    daily: float = 0.0
    monthly: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.daily or self.monthly)


@dataclass(frozen=True)
class LimitHit:
    """A limit that refuses the request, and when it will allow one again (None: when an
    edit in flight ends, or never for this request)."""

    kind: LimitKind
    limit: float
    retry_at: float | None


def _unfinished() -> sa.ColumnElement[bool]:
    return edits.c.state.in_([state.value for state in UNFINISHED])


def _total(*where: sa.ColumnElement[bool]) -> sa.ScalarSelect[float]:
    return sa.select(sa.func.coalesce(sa.func.sum(spent()), 0.0)).where(*where).scalar_subquery()


def _count(*where: sa.ColumnElement[bool]) -> sa.ScalarSelect[int]:
    return sa.select(sa.func.count()).where(*where).scalar_subquery()


def limits_guard(
    user: UserQuota | None, cap: SpendCap | None, also: InsertGuard | None = None
) -> InsertGuard | None:
    """One condition for the insert: the user's limits, the cap and `also` (a group's
    quotas), each with the new row (and its cost estimate) counted."""
    parts = [] if also is None else [also]
    if user is not None and user.active:
        parts.append(_user_guard(user))
    if cap is not None and cap.active:
        parts.append(_cap_guard(cap))
    return combine_guards(*parts)


def combine_guards(*guards: InsertGuard | None) -> InsertGuard | None:
    """One guard holding where all of `guards` hold, with all their locks and writes."""
    parts = [guard for guard in guards if guard is not None]
    if len(parts) <= 1:
        return parts[0] if parts else None

    def holds(new_id: int, now: float) -> sa.ColumnElement[bool]:
        return sa.and_(*(part.holds(new_id, now) for part in parts))

    async def then(conn: DbConn, new_id: int, now: float) -> bool:
        for part in parts:
            if part.then is not None and not await part.then(conn, new_id, now):
                return False
        return True

    locks = tuple(lock for part in parts for lock in part.locks)
    return InsertGuard(holds=holds, locks=locks, then=then)


def _user_guard(user: UserQuota) -> InsertGuard:
    def holds(_new_id: int, now: float) -> sa.ColumnElement[bool]:
        mine = edits.c.user_id == user.user_id
        recent = edits.c.created_at > now - DAY
        conditions: list[sa.ColumnElement[bool]] = []
        if user.max_in_flight:
            conditions.append(_count(mine, _unfinished()) <= user.max_in_flight)
        if user.daily_edits:
            conditions.append(_count(mine, counted(), recent) <= user.daily_edits)
        if user.daily_credits:
            conditions.append(_total(mine, recent) <= user.daily_credits)
        return sa.and_(sa.true(), *conditions)

    return InsertGuard(holds=holds, locks=((USER_LOCKS, user.user_id % 2**31),))


def _cap_guard(cap: SpendCap) -> InsertGuard:
    def holds(_new_id: int, now: float) -> sa.ColumnElement[bool]:
        conditions: list[sa.ColumnElement[bool]] = []
        if cap.daily:
            conditions.append(_total(edits.c.created_at >= day_bounds(now)[0]) <= cap.daily)
        if cap.monthly:
            conditions.append(_total(edits.c.created_at >= month_bounds(now)[0]) <= cap.monthly)
        return sa.and_(sa.true(), *conditions)

    return InsertGuard(holds=holds, locks=(CAP_LOCK,))


class LimitQueries:
    """The counts behind the per-user limits and the cap (`Database.limits`)."""

    def __init__(self, db: Backend) -> None:
        self._db = db

    async def hit(
        self,
        user: UserQuota | None,
        cap: SpendCap | None,
        cost: float,
        now: float | None = None,
    ) -> LimitHit | None:
        """The first limit a new edit expected to cost `cost` would exceed, or None."""
        now = time.time() if now is None else now

        async def body(conn: DbConn) -> LimitHit | None:
            if user is not None and user.active:
                found = await _user_hit(conn, user, cost, now)
                if found is not None:
                    return found
            if cap is not None and cap.active:
                return await _cap_hit(conn, cap, cost, now)
            return None

        return await self._db.transaction(body)

    async def spent_since(self, since: float) -> float:
        """The bot's credits (reported, estimated or reserved) of edits made since `since`."""
        total = (await self._db.execute(sa.select(_total(edits.c.created_at >= since)))).scalar()
        return float(total or 0.0)

    async def claim_alert(self, key: str, now: float | None = None) -> bool:
        """Record that the alert `key` is being sent; False if it was sent before (by any
        replica)."""
        row = {"key": key[:64], "created_at": time.time() if now is None else now}
        try:
            await self._db.execute(spend_alerts.insert().values(row))
        except IntegrityError:
            return False
        return True


async def _user_hit(conn: DbConn, user: UserQuota, cost: float, now: float) -> LimitHit | None:
    mine = edits.c.user_id == user.user_id
    recent = (mine, edits.c.created_at > now - DAY)
    if user.max_in_flight:
        running = (await conn.execute(sa.select(_count(mine, _unfinished())))).scalar()
        if int(running or 0) >= user.max_in_flight:
            return LimitHit("in_flight", user.max_in_flight, None)
    if user.daily_edits:
        # The limit-th newest counted edit of the day: once it is a day old, one slot frees.
        stmt = (
            sa.select(edits.c.created_at)
            .where(*recent, counted())
            .order_by(edits.c.created_at.desc())
            .offset(user.daily_edits - 1)
            .limit(1)
        )
        oldest = (await conn.execute(stmt)).scalar()
        if oldest is not None:
            return LimitHit("daily_edits", user.daily_edits, float(oldest) + DAY)
    if user.daily_credits:
        if cost > user.daily_credits:
            return LimitHit("over_budget", user.daily_credits, None)
        stmt2 = sa.select(edits.c.created_at, spent()).where(*recent).order_by(edits.c.created_at)
        rows = [(float(at), float(amount)) for at, amount in (await conn.execute(stmt2)).all()]
        excess = sum(amount for _at, amount in rows) + cost - user.daily_credits
        if excess > 0:
            # Room comes back as the oldest of the day's edits leave the 24-hour window.
            for at, amount in rows:
                excess -= amount
                if excess <= 0:
                    return LimitHit("daily_credits", user.daily_credits, at + DAY)
            return LimitHit("daily_credits", user.daily_credits, now + DAY)
    return None


async def _cap_hit(conn: DbConn, cap: SpendCap, cost: float, now: float) -> LimitHit | None:
    periods: list[tuple[LimitKind, float, tuple[float, float, str]]] = [
        ("cap_daily", cap.daily, day_bounds(now)),
        ("cap_monthly", cap.monthly, month_bounds(now)),
    ]
    for kind, limit, (start, end, _name) in periods:
        if not limit:
            continue
        total = (await conn.execute(sa.select(_total(edits.c.created_at >= start)))).scalar()
        if float(total or 0.0) + cost > limit:
            return LimitHit(kind, limit, end)
    return None
