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

    `taken`: the candidates that got turns, after their step. `head`: the edit next in line,
    not a candidate (someone else's turn). `free_at`: the window is full until then.
    `gone`: candidates no longer queued, or no longer under their lease (cancelled, taken
    over): they get no turn.
    """

    taken: tuple[Edit, ...] = ()
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


def _history(served: Sequence[Any]) -> tuple[dict[int, int], dict[int, float]]:
    """`fair_order`'s inputs from `Turns._served` rows (requester, turns, latest)."""
    return (
        {int(row[0]): int(row[1]) for row in served},
        {int(row[0]): float(row[2]) for row in served},
    )


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
        """Give the account's next turns to `candidates` (queued edits whose sender waits
        for one): while the window has room and the edit next in the fair order is a
        candidate, it gets a turn and `step` is applied to it, all in one transaction.

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
            taken = int((await conn.execute(*self._count(account))).scalar_one())
            if taken >= account.max_calls:
                # The window frees once this turn leaves it: `period` after its answer, which
                # for a request still under way is not known yet (now at the earliest).
                frees = await conn.execute(*self._leaving(account, taken - account.max_calls))
                return Offer(free_at=min(float(frees.scalar_one()), now) + account.period)
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
            # Who was served lately matters only between two requesters or more.
            history: tuple[dict[int, int], dict[int, float]] = ({}, {})
            if len({who for _edit, who in waiting}) > 1:
                history = _history((await conn.execute(*self._served(account))).all())
            served, last = history
            # As many turns as the window has room for, while the next in line is a candidate
            # (several waiting edits cost one transaction, not one each).
            took: list[Edit] = []
            turns: list[dict[str, Any]] = []
            head: int | None = None
            while waiting and taken + len(took) < account.max_calls:
                head = fair_order(waiting, served, last)[0]
                if head not in candidates:
                    break
                who = dict(waiting)[head]
                waiting.remove((head, who))
                row = (await conn.execute(*_step(step, head, candidates[head], now))).mappings()
                stepped = row.first()
                if stepped is None:  # cancelled, or its lease lost, since the read
                    gone |= {head}
                    head = None
                    continue
                head = None
                took.append(edit_from_row(stepped))
                turns.append(
                    {"account": account.name, "requester": who, "edit_id": stepped["id"]}
                    | {"taken_at": now + account.hold}
                )
                served[who] = served.get(who, 0) + 1
                last[who] = now + account.hold
            if turns:
                await conn.execute(provider_turns.insert(), turns)
            return Offer(taken=tuple(took), head=head, gone=gone)

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
            served = (await conn.execute(*self._served(account, since=now - account.period))).all()
            return list(served), list((await conn.execute(self._queued(account))).all())

        served, rows = await self._db.transaction(body)
        waiting = [(row.id, requester(row.chat_type, row.chat_id, row.user_id)) for row in rows]
        free = max(0, account.max_calls - sum(int(row[1]) for row in served))
        places: dict[int, Place] = {}
        for position, edit_id in enumerate(fair_order(waiting, *_history(served)), 1):
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
    def _count(account: Account) -> Statement:
        """How many turns the account's window holds (the older ones were purged)."""
        c = provider_turns.c
        stmt = prepared(
            "turns_count",
            lambda: sa.select(sa.func.count()).where(c.account == sa.bindparam("w_account")),
        )
        return stmt, {"w_account": account.name}

    @staticmethod
    def _leaving(account: Account, index: int) -> Statement:
        """When the `index`-th oldest turn of the window was taken (0: the oldest)."""
        c = provider_turns.c
        stmt = prepared(
            "turns_leaving",
            lambda: (
                sa.select(c.taken_at)
                .where(c.account == sa.bindparam("w_account"))
                .order_by(c.taken_at)
                .limit(1)
                .offset(sa.bindparam("w_index"))
            ),
        )
        return stmt, {"w_account": account.name, "w_index": index}

    @staticmethod
    def _served(account: Account, *, since: float | None = None) -> Statement:
        """Each requester's turns in the window and the latest of them: (requester, turns,
        latest) rows, one per requester served lately (not one per turn)."""
        c = provider_turns.c
        key = "turns_served" if since is None else "turns_served_since"

        def build() -> sa.Select[Any]:
            conditions = [c.account == sa.bindparam("w_account")]
            if since is not None:
                conditions.append(c.taken_at > sa.bindparam("w_since"))
            return (
                sa.select(c.requester, sa.func.count(), sa.func.max(c.taken_at))
                .where(*conditions)
                .group_by(c.requester)
            )

        params: dict[str, Any] = {"w_account": account.name}
        if since is not None:
            params["w_since"] = since
        return prepared(key, build), params

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
