"""Operator incidents every replica shares (`Database.alerts`), e.g. a low credit balance.

An incident is open from the first report of it until the condition is over; only the
report that opens it returns True, so the operators are alerted once per incident however
many replicas notice it (one conditional statement decides).
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from storage.dbconn import Backend, DbConn
from storage.schema import operator_alerts


class OperatorAlerts:
    def __init__(self, db: Backend) -> None:
        self._db = db

    async def open(
        self, code: str, value: float | None = None, *, remind_after: float | None = None
    ) -> bool:
        """Report the incident; True only if this report opened it, or (with `remind_after`)
        if it has been open that many seconds since it opened or last reminded (then this
        report is the reminder: the operators are told again, once)."""
        now = time.time()
        c = operator_alerts.c
        due = sa.not_(c.open)
        if remind_after is not None:
            due = sa.or_(due, c.changed_at <= now - remind_after)

        async def body(conn: DbConn) -> bool:
            changed = await conn.execute(
                operator_alerts.update()
                .where(c.code == code, due)
                .values(open=True, value=value, changed_at=now)
            )
            if changed.rowcount:
                return True
            exists = await conn.execute(sa.select(c.open).where(c.code == code))
            if exists.first() is not None:
                await conn.execute(
                    operator_alerts.update().where(c.code == code).values(value=value)
                )
                return False
            await conn.execute(
                operator_alerts.insert().values(code=code, open=True, value=value, changed_at=now)
            )
            return True

        try:
            return await self._db.transaction(body)
        except IntegrityError:
            return False  # another replica opened it at the same moment

    async def close(self, code: str, value: float | None = None) -> bool:
        """The incident is over; True if it was open."""
        c = operator_alerts.c
        changed = await self._db.execute(
            operator_alerts.update()
            .where(c.code == code, c.open)
            .values(open=False, value=value, changed_at=time.time())
        )
        return bool(changed.rowcount)

    async def is_open(self, code: str) -> bool:
        c = operator_alerts.c
        row = (await self._db.execute(sa.select(c.open).where(c.code == code))).first()
        return bool(row is not None and row[0])
