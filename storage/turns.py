"""Provider turns (`Database.turns`): each provider account's rate limit and fair queue,
shared by every replica.

A new task goes to a provider account only on a turn: a row of `provider_turns`, taken in one
transaction that counts the account's turns in its window (so never more than `max_calls`
per `period`, whichever replicas send them), picks which queued edit is next and applies
its step to sending (`BEGIN_SUBMIT`, fenced with its lease like `Edits.transition`). On
PostgreSQL an advisory lock per account serializes the takers (READ COMMITTED would let two
of them count the same window); on SQLite the transaction's first statement (the purge of
old turns) takes the database's single write lock before anything is counted.

A turn counts in the window from the moment it is taken until `period` after the provider
answered: it is recorded `hold` seconds ahead (the longest a create request may take) and set
to the answer's time with the step that records the answer (`answered`). So whatever delays a
request on its way, the provider never sees more than `max_calls` arrive within `period`.

The fair order is round robin over requesters (the user of a private chat, or the group),
weighted by who was served lately: a queued edit's key is the turns its requester took in
the window plus its place among that requester's queued edits (oldest first); ties go to the
requester served longest ago, then to the older edit. So one user's fifty photos take at
most every other turn while someone else waits, and a lone photo is next in line.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from domain.edit import Edit, EditState
from domain.steps import Step
from storage.dbconn import Backend, DbConn, Statement
from storage.rows import edit_from_row
from storage.schema import edits, provider_turns
from storage.statements import bound, listed, one_of, prepared, setters

LOCK_ACCOUNT = 0x747572  # "tur"

_QUEUED = (
    edits.c.id,
    edits.c.chat_type,
    edits.c.chat_id,
    edits.c.user_id,
    edits.c.next_check_at,
    edits.c.lease_until,
)


@dataclass(frozen=True)
class Account:
    """A provider account: the providers (edits' `provider`) sending on it, its limit and
    how long a create request may take (`hold`)."""

    name: str
    providers: tuple[str, ...]
    max_calls: int
    period: float
    hold: float = 0.0


@dataclass(frozen=True)
class Sending:
    """A candidate for a turn: the lease it holds and the fields its step sets."""

    owner: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class Offer:
    """What one try for a turn found.

    `taken`: the candidate that got the turn, after its step. `head`: the edit next in line,
    not a candidate (someone else's turn). `free_at`: the window is full until then.
    `gone`: candidates no longer queued, or no longer under their lease (cancelled, taken
    over): they get no turn.
    """

    taken: Edit | None = None
    head: int | None = None
    free_at: float | None = None
    gone: frozenset[int] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Place:
    """A queued edit's place in its account's fair order (1: next) and a rough wait."""

    position: int
    wait: float


def requester(chat_type: str, chat_id: int, user_id: int) -> int:
    """Whom the queue is fair between: a private chat's user, or a whole group (group chat
    ids are negative, user ids positive, so the two never collide)."""
    return user_id if chat_type == "private" else chat_id


def fair_order(
    queued: Sequence[tuple[int, int]], served: Mapping[int, int], last: Mapping[int, float]
) -> list[int]:
    """Edit ids of `queued` ((edit id, requester) pairs) in the order they get turns, given
    the turns each requester took in the window (`served`) and when its latest was (`last`)."""
    rounds: dict[int, int] = {}
    keyed: list[tuple[int, float, int]] = []
    for edit_id, who in sorted(queued):
        rounds[who] = rounds.get(who, 0) + 1
        keyed.append((served.get(who, 0) + rounds[who], last.get(who, 0.0), edit_id))
    return [edit_id for *_, edit_id in sorted(keyed)]


def _history(turns: Sequence[Any]) -> tuple[dict[int, int], dict[int, float]]:
    served: dict[int, int] = {}
    last: dict[int, float] = {}
    for who, taken_at in turns:
        served[who] = served.get(who, 0) + 1
        last[who] = max(last.get(who, 0.0), float(taken_at))
    return served, last


def _step(step: Step, edit_id: int, sending: Sending, now: float) -> tuple[sa.Update, Any]:
    """`step` on the edit, only while it is in the step's sources under the sender's lease."""
    values = {"updated_at": now, **sending.fields, "state": step.target.value}
    names = tuple(values)
    sources = sorted(state.value for state in step.sources)

    def build() -> sa.Update:
        return (
            edits.update()
            .where(
                edits.c.id == sa.bindparam("w_id"),
                one_of(edits.c.state, "w_states", len(sources)),
                edits.c.lease_owner == sa.bindparam("w_owner"),
            )
            .values(setters(edits, names))
            .returning(edits)
        )

    stmt = prepared(("turn_step", names, len(sources)), build)
    params = bound(values, w_id=edit_id, w_owner=sending.owner, **listed("w_states", sources))
    return stmt, params


class Turns:
    def __init__(self, db: Backend) -> None:
        self._db = db

    async def take(
        self,
        account: Account,
        step: Step,
        candidates: Mapping[int, Sending],
        *,
        skip: Collection[int] = (),
        now: float | None = None,
    ) -> Offer:
        """Give the account's next turn to one of `candidates` (queued edits whose sender
        waits for it) if the window has room and that candidate is next in the fair order,
        and apply `step` to it in the same transaction.

        Other queued edits count as in line when they are due and leased (their sender is
        alive, perhaps still preparing the photos), unless in `skip` (the caller found them
        next in line for too long: their sender is gone or stuck).
        """
        c = provider_turns.c
        given = now

        async def body(conn: DbConn) -> Offer:
            await self._lock(conn, account)
            # Read after the lock (on PostgreSQL): a clock read earlier, while waiting, would
            # only count more turns in the window, never fewer.
            now = time.time() if given is None else given
            await conn.execute(
                provider_turns.delete().where(
                    c.account == account.name, c.taken_at <= now - account.period
                )
            )
            turns = (await conn.execute(self._turns(account))).all()
            if len(turns) >= account.max_calls:
                # The window frees once this turn leaves it: `period` after its answer, which
                # for a request still under way is not known yet (now at the earliest).
                oldest = min(float(turns[len(turns) - account.max_calls][1]), now)
                return Offer(free_at=oldest + account.period)
            rows = (await conn.execute(self._queued(account))).all()
            gone = frozenset(set(candidates) - {row.id for row in rows})
            waiting = [
                (row.id, requester(row.chat_type, row.chat_id, row.user_id))
                for row in rows
                if row.id in candidates
                or (
                    row.id not in skip
                    and (row.next_check_at is None or row.next_check_at <= now)
                    and row.lease_until is not None
                    and row.lease_until >= now
                )
            ]
            order = fair_order(waiting, *_history(turns))
            if not order:
                return Offer(gone=gone)
            head = order[0]
            if head not in candidates:
                return Offer(head=head, gone=gone)
            row = (await conn.execute(*_step(step, head, candidates[head], now))).mappings().first()
            if row is None:
                return Offer(gone=gone | {head})
            await conn.execute(
                provider_turns.insert().values(
                    account=account.name,
                    requester=dict(waiting)[head],
                    edit_id=head,
                    taken_at=now + account.hold,
                )
            )
            return Offer(taken=edit_from_row(row), gone=gone)

        return await self._db.transaction(body)

    def answered(self, edit_id: int, *, now: float | None = None) -> Statement:
        """The provider answered the edit's create request: its turn counts from now on
        (one statement, to run with the step that records the answer)."""
        now = time.time() if now is None else now
        c = provider_turns.c
        stmt = prepared(
            "turn_answered",
            lambda: (
                provider_turns.update()
                .where(c.edit_id == sa.bindparam("w_edit"), c.taken_at > sa.bindparam("w_now"))
                .values(taken_at=sa.bindparam("w_now"))
            ),
        )
        return stmt, {"w_edit": edit_id, "w_now": now}

    async def places(self, account: Account, *, now: float | None = None) -> dict[int, Place]:
        """Where every queued edit of the account stands in its fair order (1: next), and
        roughly how long until its turn (whole windows of turns): one read for all of them."""
        now = time.time() if now is None else now

        async def body(conn: DbConn) -> tuple[list[Any], list[Any]]:
            turns = (await conn.execute(self._turns(account, since=now - account.period))).all()
            return list(turns), list((await conn.execute(self._queued(account))).all())

        turns, rows = await self._db.transaction(body)
        waiting = [(row.id, requester(row.chat_type, row.chat_id, row.user_id)) for row in rows]
        free = max(0, account.max_calls - len(turns))
        places: dict[int, Place] = {}
        for position, edit_id in enumerate(fair_order(waiting, *_history(turns)), 1):
            windows = math.ceil(max(0, position - free) / account.max_calls)
            places[edit_id] = Place(position=position, wait=windows * account.period)
        return places

    async def _lock(self, conn: DbConn, account: Account) -> None:
        if self._db.dialect == "postgresql":
            key = zlib.crc32(account.name.encode()) % 2**31
            await conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": LOCK_ACCOUNT, "b": key}
            )

    @staticmethod
    def _turns(account: Account, *, since: float | None = None) -> sa.Select[Any]:
        c = provider_turns.c
        conditions = [c.account == account.name]
        if since is not None:
            conditions.append(c.taken_at > since)
        return sa.select(c.requester, c.taken_at).where(*conditions).order_by(c.taken_at)

    @staticmethod
    def _queued(account: Account) -> sa.Select[Any]:
        return (
            sa.select(*_QUEUED)
            .where(
                edits.c.state == EditState.QUEUED.value,
                edits.c.provider.in_(account.providers),
            )
            .order_by(edits.c.id)
        )
