"""Paid edits: each user's balance in edits and the ledger of every change (`Database.balances`).

A balance only changes together with a ledger entry, in one transaction, so it always equals
the sum of its ledger's amounts. Entries are keyed so a repeated step is a no-op: one per
edit and kind (`spend`, the reservation made with the edit's insert; `return`, given back
when the edit ends without a result) and one per Telegram charge and kind (`purchase`,
`refund`). Grants by operators have no key. The balance is changed by one conditional UPDATE
(`balance >= cost`) and a CHECK keeps it from going negative, so concurrent edits, on any
replica, can never overdraw it. The free allowance of a UTC day is the sum of `free` over
the day's reservations not returned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from domain.edit import EditState
from storage.dbconn import Backend, DbConn
from storage.edits import InsertGuard
from storage.schema import balance_ledger, balances, edits, operator_log
from storage.spend import day_bounds

Kind = Literal["purchase", "spend", "return", "refund", "grant"]
PAY_LOCKS = 0x706179  # "pay": advisory locks of one user's reservations (free allowance)
# An edit ending in one of these made no result for the user: its reservation comes back.
RETURNED_STATES = frozenset(
    {EditState.FAILED, EditState.EXPIRED, EditState.REJECTED, EditState.CANCELLED}
)
MOVEMENTS = 10

_L = balance_ledger.c


@dataclass(frozen=True)
class Movement:
    """One ledger entry: `amount` edits (signed), `free` edits of the day's allowance."""

    kind: Kind
    amount: int
    free: int
    created_at: float
    edit_id: int | None = None
    charge_id: str | None = None
    stars: int | None = None


@dataclass(frozen=True)
class Charge:
    """What an edit asks of its requester: `cost` edits, the first from `free_daily`."""

    user_id: int
    cost: int
    free_daily: int


@dataclass(frozen=True)
class Account:
    """A user's balance, today's free allowance used and their latest movements."""

    balance: int
    free_used: int
    movements: list[Movement]


@dataclass(frozen=True)
class Refund:
    """A purchase refunded: what came off the balance (at most what was left of it)."""

    user_id: int
    amount: int
    new: bool


def _movement(row: sa.RowMapping) -> Movement:
    return Movement(
        kind=row["kind"],
        amount=int(row["amount"]),
        free=int(row["free"]),
        created_at=float(row["created_at"]),
        edit_id=row["edit_id"],
        charge_id=row["charge_id"],
        stars=row["stars"],
    )


async def _balance(conn: DbConn, user_id: int) -> int:
    stmt = sa.select(balances.c.balance).where(balances.c.user_id == user_id)
    return int((await conn.execute(stmt)).scalar() or 0)


async def _free_used(conn: DbConn, user_id: int, now: float) -> int:
    back = balance_ledger.alias("back")
    returned = sa.exists().where(back.c.kind == "return", back.c.edit_id == _L.edit_id)
    stmt = sa.select(sa.func.coalesce(sa.func.sum(_L.free), 0)).where(
        _L.user_id == user_id,
        _L.kind == "spend",
        _L.created_at >= day_bounds(now)[0],
        ~returned,
    )
    return int((await conn.execute(stmt)).scalar() or 0)


async def _change(conn: DbConn, user_id: int, amount: int, now: float) -> bool:
    """Add `amount` to the balance unless it would go negative; False then (a new row only
    under the user's lock, see `Balances._locked`)."""
    if amount == 0:
        return True
    if amount > 0:
        found = await conn.execute(
            balances.update()
            .where(balances.c.user_id == user_id)
            .values(balance=balances.c.balance + amount, updated_at=now)
        )
        if found.rowcount == 0:
            await conn.execute(
                balances.insert().values(user_id=user_id, balance=amount, updated_at=now)
            )
        return True
    taken = await conn.execute(
        balances.update()
        .where(balances.c.user_id == user_id, balances.c.balance >= -amount)
        .values(balance=balances.c.balance + amount, updated_at=now)
    )
    return taken.rowcount == 1


async def _entry(
    conn: DbConn, user_id: int, kind: Kind, amount: int, now: float, **more: object
) -> None:
    values = {"user_id": user_id, "kind": kind, "amount": amount, "created_at": now, **more}
    await conn.execute(balance_ledger.insert().values(values))


def reservation(charge: Charge) -> InsertGuard:
    """The edit insert's guard that reserves `charge` in its transaction: the day's free
    allowance first, then the balance; the insert is undone when they do not cover it."""

    async def then(conn: DbConn, edit_id: int, now: float) -> bool:
        free_left = max(0, charge.free_daily - await _free_used(conn, charge.user_id, now))
        free = min(charge.cost, free_left)
        paid = charge.cost - free
        if paid and not await _change(conn, charge.user_id, -paid, now):
            return False
        await _entry(conn, charge.user_id, "spend", -paid, now, free=free, edit_id=edit_id)
        return True

    return InsertGuard(
        holds=lambda _new_id, _now: sa.true(),
        locks=((PAY_LOCKS, charge.user_id % 2**31),),
        then=then,
    )


class Balances:
    """Balances, reservations of edits, purchases, refunds and grants."""

    def __init__(self, db: Backend) -> None:
        self._db = db

    async def _locked(self, conn: DbConn, user_id: int) -> None:
        """Serialize this user's balance changes on PostgreSQL (SQLite has one writer)."""
        if self._db.dialect == "postgresql":
            lock = sa.text("SELECT pg_advisory_xact_lock(:a, :b)")
            await conn.execute(lock, {"a": PAY_LOCKS, "b": user_id % 2**31})

    async def account(self, user_id: int, now: float | None = None) -> Account:
        now = time.time() if now is None else now

        async def body(conn: DbConn) -> Account:
            stmt = (
                sa.select(balance_ledger)
                .where(_L.user_id == user_id)
                .order_by(_L.id.desc())
                .limit(MOVEMENTS)
            )
            rows = (await conn.execute(stmt)).mappings().all()
            return Account(
                balance=await _balance(conn, user_id),
                free_used=await _free_used(conn, user_id, now),
                movements=[_movement(row) for row in rows],
            )

        return await self._db.transaction(body)

    async def shortfall(self, charge: Charge, now: float | None = None) -> int:
        """Edits the user lacks for `charge` now (0: the free allowance and balance cover it)."""
        now = time.time() if now is None else now

        async def body(conn: DbConn) -> int:
            free_left = max(0, charge.free_daily - await _free_used(conn, charge.user_id, now))
            paid = max(0, charge.cost - free_left)
            return max(0, paid - await _balance(conn, charge.user_id))

        return await self._db.transaction(body)

    async def release(self, edit_id: int) -> Movement | None:
        """Give an edit's reservation back, once, if the edit ended without a result.

        Returns the `return` entry (also when an earlier call made it), or None when the
        edit reserved nothing or has not ended so."""
        now = time.time()
        ended = [state.value for state in RETURNED_STATES]

        async def body(conn: DbConn) -> Movement | None:
            stmt = (
                sa.select(balance_ledger)
                .where(_L.edit_id == edit_id, _L.kind.in_(["spend", "return"]))
                .where(sa.exists().where(edits.c.id == edit_id, edits.c.state.in_(ended)))
            )
            rows = {row["kind"]: row for row in (await conn.execute(stmt)).mappings().all()}
            if "return" in rows:
                return _movement(rows["return"])
            spend = rows.get("spend")
            if spend is None:
                return None
            user_id, amount, free = spend["user_id"], -int(spend["amount"]), int(spend["free"])
            await _change(conn, user_id, amount, now)
            await _entry(conn, user_id, "return", amount, now, free=free, edit_id=edit_id)
            return Movement("return", amount, free, now, edit_id=edit_id)

        return await self._db.transaction(body)

    async def unreturned(self, *, since: float, limit: int = 100) -> list[int]:
        """Edits reserved since `since` that ended without a result and still hold their
        reservation (the sweeper returns them: a crash between the end and the return, e.g.
        of a /cancel, leaves nothing behind)."""
        back = balance_ledger.alias("back")
        stmt = (
            sa.select(_L.edit_id)
            .join(edits, edits.c.id == _L.edit_id)
            .where(
                _L.kind == "spend",
                _L.created_at >= since,
                edits.c.state.in_([state.value for state in RETURNED_STATES]),
                ~sa.exists().where(back.c.kind == "return", back.c.edit_id == _L.edit_id),
            )
            .limit(limit)
        )
        return [int(edit_id) for (edit_id,) in (await self._db.execute(stmt)).all()]

    async def credit_purchase(self, user_id: int, charge_id: str, amount: int, stars: int) -> bool:
        """Credit a paid pack, once per Telegram charge; False if it was credited before."""
        now = time.time()

        async def body(conn: DbConn) -> bool:
            await self._locked(conn, user_id)
            await _entry(conn, user_id, "purchase", amount, now, charge_id=charge_id, stars=stars)
            await _change(conn, user_id, amount, now)
            return True

        try:
            return await self._db.transaction(body)
        except IntegrityError:
            return False

    async def charge_state(self, charge_id: str) -> tuple[int, bool] | None:
        """The buyer of a Telegram charge and whether it was refunded; None if unknown."""
        stmt = sa.select(_L.kind, _L.user_id).where(
            _L.charge_id == charge_id, _L.kind.in_(["purchase", "refund"])
        )
        kinds = {kind: int(user_id) for kind, user_id in (await self._db.execute(stmt)).all()}
        if "purchase" not in kinds:
            return None
        return kinds["purchase"], "refund" in kinds

    async def refund(self, charge_id: str, *, by: int) -> Refund | None:
        """Take a refunded purchase off the balance (what is left of it; the balance never
        goes negative), once, with an audit entry; None for an unknown charge."""
        now = time.time()

        async def body(conn: DbConn) -> Refund | None:
            stmt = sa.select(balance_ledger).where(
                _L.charge_id == charge_id, _L.kind.in_(["purchase", "refund"])
            )
            rows = {row["kind"]: row for row in (await conn.execute(stmt)).mappings().all()}
            bought = rows.get("purchase")
            if bought is None:
                return None
            user_id = int(bought["user_id"])
            await self._locked(conn, user_id)
            if "refund" in rows:
                return Refund(user_id, -int(rows["refund"]["amount"]), new=False)
            amount = min(int(bought["amount"]), await _balance(conn, user_id))
            await _change(conn, user_id, -amount, now)
            await _entry(conn, user_id, "refund", -amount, now, charge_id=charge_id, actor_id=by)
            await _audit(conn, by, "refund", user_id, f"{charge_id} -{amount}", now)
            return Refund(user_id, amount, new=True)

        return await self._db.transaction(body)

    async def grant(self, user_id: int, amount: int, *, by: int, detail: str = "") -> int:
        """Add `amount` edits (negative: take, down to 0) with an audit entry; the new
        balance."""
        now = time.time()

        async def body(conn: DbConn) -> int:
            await self._locked(conn, user_id)
            change = max(amount, -await _balance(conn, user_id))
            await _change(conn, user_id, change, now)
            await _entry(conn, user_id, "grant", change, now, actor_id=by)
            await _audit(conn, by, "grant", user_id, f"{change:+d} {detail}".strip(), now)
            return await _balance(conn, user_id)

        return await self._db.transaction(body)

    async def ledger_sum(self, user_id: int) -> int:
        stmt = sa.select(sa.func.coalesce(sa.func.sum(_L.amount), 0)).where(_L.user_id == user_id)
        return int((await self._db.execute(stmt)).scalar() or 0)


async def _audit(conn: DbConn, by: int, action: str, user_id: int, detail: str, now: float) -> None:
    await conn.execute(
        operator_log.insert().values(
            at=now, operator_id=by, action=action, user_id=user_id, detail=detail[:500]
        )
    )
