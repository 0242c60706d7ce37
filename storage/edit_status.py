"""Edit status (`Database.edit_status`): the turns at rewriting an edit's "working on it"
message, and how long a model's recent edits took.

The turn is taken in the edit's row by one conditional UPDATE, so replicas polling the same
edits share one budget of message edits (Telegram's limits are per chat, not per process).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable

import sqlalchemy as sa

from domain.edit import EditState
from storage.dbconn import Backend
from storage.schema import edits
from storage.statements import listed, one_of, prepared

_C = edits.c
# Edits whose provider task finished with a result (delivered ones included).
_SUCCEEDED = (EditState.SUCCEEDED.value, EditState.DELIVERED.value)


def _turn_statement(states: int) -> sa.Update:
    return (
        edits.update()
        .where(
            _C.id == sa.bindparam("w_id"),
            _C.status_message_id.is_not(None),
            one_of(_C.state, "w_states", states),
            sa.or_(_C.status_shown.is_(None), _C.status_shown != sa.bindparam("w_shown")),
            # The message was sent when the edit was made: that is its first turn.
            sa.func.coalesce(_C.status_edited_at, _C.created_at) <= sa.bindparam("w_since"),
        )
        .values(status_shown=sa.bindparam("w_shown"), status_edited_at=sa.bindparam("w_now"))
    )


def _durations_statement() -> sa.Select[tuple[float]]:
    # Among the last `w_window` edits only: a range of the primary key, however rarely the
    # model is used (no index on the model needed, nothing scanned beyond that range).
    newest = sa.select(sa.func.max(_C.id)).scalar_subquery()
    return (
        sa.select((_C.finished_at - _C.submitted_at).label("seconds"))
        .where(
            _C.id > newest - sa.bindparam("w_window"),
            _C.model == sa.bindparam("w_model"),
            _C.state.in_(_SUCCEEDED),
            _C.submitted_at.is_not(None),
            _C.finished_at.is_not(None),
        )
        .order_by(_C.id.desc())
        .limit(sa.bindparam("w_limit"))
    )


class EditStatus:
    def __init__(self, db: Backend) -> None:
        self._db = db

    async def take_turn(
        self,
        edit_id: int,
        shown: str,
        *,
        now: float,
        interval: float,
        states: Iterable[EditState],
    ) -> bool:
        """Claim the right to rewrite the edit's status message to `shown`: True when it has
        one, is in one of `states`, says something else, and was sent or last rewritten at
        least `interval` seconds ago. Recorded as rewritten now."""
        wanted = sorted(state.value for state in states)
        stmt = prepared(("status-turn", len(wanted)), lambda: _turn_statement(len(wanted)))
        params = {
            "w_id": edit_id,
            "w_shown": shown,
            "w_now": now,
            "w_since": now - interval,
            **listed("w_states", wanted),
        }
        return bool((await self._db.execute(stmt, params)).rowcount)

    async def typical_duration(
        self, model: str, *, recent: int = 20, window: int = 5000
    ) -> float | None:
        """The median seconds from submission to outcome of the model's last `recent`
        succeeded edits among the last `window` edits; None without any."""
        stmt = prepared("status-durations", _durations_statement)
        params = {"w_model": model, "w_limit": recent, "w_window": window}
        rows = (await self._db.execute(stmt, params)).all()
        seconds = [float(row[0]) for row in rows if row[0] is not None and row[0] > 0]
        return statistics.median(seconds) if seconds else None
