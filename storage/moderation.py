"""Group moderation: the rules a group's admins set, and the counts they are checked against.

The rules live in the group's settings document (`storage/chat_settings.py`, under
"moderation"), so they change by the same compare-and-set as every other setting. The
limits are never kept in memory: every count comes from the `edits` table, so all replicas
see the same numbers, and a guarded insert (`quota_guard`) re-checks them inside the
transaction that records the edit (see `Edits.create`). The queries are `Database.moderation`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

import sqlalchemy as sa

from domain.edit import Edit
from storage.dbconn import Backend, DbConn
from storage.edits import InsertGuard
from storage.rows import edit_from_row
from storage.schema import edits
from storage.spend import estimated, spent

DAY = 24 * 3600.0
PHRASE_MAX = 100
BLOCKLIST_MAX = 200
MEMBERS_MAX = 1000
NAME_MAX = 64
# The model option a group's safety lock forces on (for the models that have it).
SAFETY_OPTION = "enable_safety_checker"


class WhoMayEdit(StrEnum):
    """Who may ask for edits in a group."""

    EVERYONE = "everyone"
    ADMINS = "admins"
    APPROVED = "approved"


class Decision(StrEnum):
    """What an admin (or the clock) decided about a request that needed approval."""

    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


def _members(data: Any) -> dict[int, str]:
    if not isinstance(data, dict):
        return {}
    members: dict[int, str] = {}
    for key, name in data.items():
        try:
            members[int(key)] = str(name)[:NAME_MAX]
        except (TypeError, ValueError):
            continue
    return members


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass(frozen=True)
class Moderation:
    """A group's moderation rules; the defaults restrict nothing.

    Limits are 0 when off. `blocklist` holds normalized phrases (see `bot.blocklist`);
    `allowed` and `banned` map user ids to the name they had when an admin listed them.
    """

    who: WhoMayEdit = WhoMayEdit.EVERYONE
    approval: bool = False
    member_daily: int = 0
    group_daily: int = 0
    cooldown: int = 0
    safety_locked: bool = False
    blocklist: tuple[str, ...] = ()
    allowed: Mapping[int, str] = field(default_factory=dict)
    banned: Mapping[int, str] = field(default_factory=dict)

    @property
    def binds(self) -> bool:
        """Whether any rule can refuse or hold a request (else requests go straight on)."""
        return bool(
            self.who is not WhoMayEdit.EVERYONE
            or self.approval
            or self.member_daily
            or self.group_daily
            or self.cooldown
            or self.blocklist
            or self.banned
        )

    def to_json(self) -> dict[str, Any]:
        """Only what differs from the defaults."""
        data: dict[str, Any] = {}
        if self.who is not WhoMayEdit.EVERYONE:
            data["who"] = self.who.value
        for name in ("approval", "safety_locked"):
            if getattr(self, name):
                data[name] = True
        for name in ("member_daily", "group_daily", "cooldown"):
            if getattr(self, name):
                data[name] = getattr(self, name)
        if self.blocklist:
            data["blocklist"] = list(self.blocklist)
        for name in ("allowed", "banned"):
            members: Mapping[int, str] = getattr(self, name)
            if members:
                data[name] = {str(user_id): label for user_id, label in members.items()}
        return data

    @classmethod
    def from_json(cls, data: Any) -> Moderation:
        """Tolerant of anything: unknown or malformed values fall back to the defaults."""
        if not isinstance(data, dict):
            return cls()
        who = data.get("who")
        known = who in WhoMayEdit._value2member_map_
        phrases = data.get("blocklist")
        return cls(
            who=WhoMayEdit(str(who)) if known else WhoMayEdit.EVERYONE,
            approval=data.get("approval") is True,
            member_daily=_count(data.get("member_daily")),
            group_daily=_count(data.get("group_daily")),
            cooldown=_count(data.get("cooldown")),
            safety_locked=data.get("safety_locked") is True,
            blocklist=tuple(p for p in phrases if isinstance(p, str) and p)
            if isinstance(phrases, list)
            else (),
            allowed=_members(data.get("allowed")),
            banned=_members(data.get("banned")),
        )

    # Changes (pure: used inside ChatSettings.update) ---------------------------------------

    def with_member(
        self, role: Literal["allowed", "banned"], user_id: int, name: str | None
    ) -> Moderation:
        """Add (`name` given) or remove (`name` None) a member of the allowed or banned list."""
        members = dict(getattr(self, role))
        if name is None:
            members.pop(user_id, None)
        elif user_id in members or len(members) < MEMBERS_MAX:
            members[user_id] = name[:NAME_MAX]
        if role == "allowed":
            return replace(self, allowed=members)
        return replace(self, banned=members)

    def with_limit(self, kind: Literal["m", "g", "c"], value: int) -> Moderation:
        """Set a limit: `m` per member per day, `g` per group per day, `c` cooldown (s)."""
        if kind == "m":
            return replace(self, member_daily=value)
        if kind == "g":
            return replace(self, group_daily=value)
        return replace(self, cooldown=value)

    def with_phrases(self, add: tuple[str, ...] = (), remove: tuple[str, ...] = ()) -> Moderation:
        """Add and remove normalized phrases (kept in the order they were added)."""
        phrases = [p for p in self.blocklist if p not in remove]
        for phrase in add:
            if phrase not in phrases and len(phrases) < BLOCKLIST_MAX:
                phrases.append(phrase)
        return replace(self, blocklist=tuple(phrases))


# Quotas -----------------------------------------------------------------------------------


def counted() -> sa.ColumnElement[bool]:
    """Requests that count against the limits: all but those an admin (or the clock) turned
    down. A request waiting for approval counts, so a member cannot flood the admins."""
    return sa.or_(edits.c.decision.is_(None), edits.c.decision == Decision.APPROVED.value)


@dataclass(frozen=True)
class Quota:
    """The limits that apply to one request (0: off)."""

    chat_id: int
    user_id: int
    member_daily: int = 0
    group_daily: int = 0
    cooldown: int = 0

    @property
    def active(self) -> bool:
        return bool(self.member_daily or self.group_daily or self.cooldown)


QuotaKind = Literal["cooldown", "member", "group"]


@dataclass(frozen=True)
class QuotaHit:
    """A limit that refuses the request now, and when it will allow one again."""

    kind: QuotaKind
    limit: int
    retry_at: float


LOCK_NAMESPACE = 0x6D6F64  # "mod": PostgreSQL advisory locks of guarded inserts


def quota_guard(quota: Quota) -> InsertGuard:
    """The limits as a condition the inserting transaction checks with its new row counted."""

    def holds(new_id: int, now: float) -> sa.ColumnElement[bool]:
        member = (edits.c.chat_id == quota.chat_id, edits.c.user_id == quota.user_id, counted())
        conditions: list[sa.ColumnElement[bool]] = []
        if quota.member_daily:
            count = sa.select(sa.func.count()).where(*member, edits.c.created_at > now - DAY)
            conditions.append(count.scalar_subquery() <= quota.member_daily)
        if quota.group_daily:
            count = sa.select(sa.func.count()).where(
                edits.c.chat_id == quota.chat_id, counted(), edits.c.created_at > now - DAY
            )
            conditions.append(count.scalar_subquery() <= quota.group_daily)
        if quota.cooldown:
            recent = sa.exists().where(
                *member, edits.c.id != new_id, edits.c.created_at > now - quota.cooldown
            )
            conditions.append(~recent)
        return sa.and_(sa.true(), *conditions)

    # One lock per group: member and group limits of the same chat are checked in turn.
    return InsertGuard(holds=holds, locks=((LOCK_NAMESPACE, quota.chat_id % 2**31),))


# Audit and spend --------------------------------------------------------------------------


PERIODS: tuple[tuple[str, float | None], ...] = (
    ("day", DAY),
    ("week", 7 * DAY),
    ("month", 30 * DAY),
    ("all", None),
)


@dataclass(frozen=True)
class Spend:
    """Edits sent to a provider and the credits they consumed (see storage/spend.py);
    `estimated`: some of them were not reported, but estimated from the price table."""

    edits: int = 0
    credits: float = 0.0
    estimated: bool = False


def _sent() -> sa.ColumnElement[bool]:
    return edits.c.task_id.is_not(None)


@dataclass(frozen=True)
class MemberSpend:
    user_id: int
    name: str | None
    edits: int
    credits: float
    estimated: bool = False


class ModerationQueries:
    """The counts behind a group's limits, its request log and its spend
    (`Database.moderation`)."""

    def __init__(self, db: Backend) -> None:
        self._db = db

    async def quota_hit(self, quota: Quota, now: float | None = None) -> QuotaHit | None:
        """The first limit the request would exceed (counted from the edits table), or None."""
        now = time.time() if now is None else now
        member = (edits.c.chat_id == quota.chat_id, edits.c.user_id == quota.user_id, counted())
        checks: list[tuple[QuotaKind, int, tuple[sa.ColumnElement[bool], ...]]] = [
            ("member", quota.member_daily, member),
            ("group", quota.group_daily, (edits.c.chat_id == quota.chat_id, counted())),
        ]

        async def body(conn: DbConn) -> QuotaHit | None:
            if quota.cooldown:
                last = (
                    await conn.execute(sa.select(sa.func.max(edits.c.created_at)).where(*member))
                ).scalar()
                if last is not None and last + quota.cooldown > now:
                    return QuotaHit("cooldown", quota.cooldown, float(last) + quota.cooldown)
            for kind, limit, scope in checks:
                if not limit:
                    continue
                # The limit-th newest request in the window: once it is a day old, one slot frees.
                stmt = (
                    sa.select(edits.c.created_at)
                    .where(*scope, edits.c.created_at > now - DAY)
                    .order_by(edits.c.created_at.desc())
                    .offset(limit - 1)
                    .limit(1)
                )
                oldest = (await conn.execute(stmt)).scalar()
                if oldest is not None:
                    return QuotaHit(kind, limit, float(oldest) + DAY)
            return None

        return await self._db.transaction(body)

    async def recent_requests(self, chat_id: int, *, limit: int = 15) -> list[Edit]:
        """The newest edit requests of a chat (for /modlog)."""
        stmt = sa.select(edits).where(edits.c.chat_id == chat_id).order_by(edits.c.id.desc())
        rows = (await self._db.execute(stmt.limit(limit))).mappings().all()
        return [edit_from_row(row) for row in rows]

    async def usage(
        self, *, chat_id: int | None = None, user_id: int | None = None, now: float | None = None
    ) -> dict[str, Spend]:
        """Spend per period ("day", "week", "month", "all") of a chat, a user, or a user in a
        chat."""
        now = time.time() if now is None else now
        columns: list[sa.ColumnElement[Any]] = []
        for _name, span in PERIODS:
            inside = sa.true() if span is None else edits.c.created_at > now - span
            columns.append(sa.func.sum(sa.case((inside, 1), else_=0)))
            columns.append(sa.func.sum(sa.case((inside, spent()))))
            columns.append(sa.func.max(sa.case((sa.and_(inside, estimated()), 1), else_=0)))
        conditions = [_sent()]
        if chat_id is not None:
            conditions.append(edits.c.chat_id == chat_id)
        if user_id is not None:
            conditions.append(edits.c.user_id == user_id)
        row = (await self._db.execute(sa.select(*columns).where(*conditions))).one()
        return {
            name: Spend(int(row[3 * i] or 0), float(row[3 * i + 1] or 0.0), bool(row[3 * i + 2]))
            for i, (name, _span) in enumerate(PERIODS)
        }

    async def top_spenders(
        self, chat_id: int, *, since: float, limit: int = 5
    ) -> list[MemberSpend]:
        """The members of a chat who consumed the most credits since `since`."""
        credits = sa.func.coalesce(sa.func.sum(spent()), 0.0)
        guessed = sa.func.max(sa.case((estimated(), 1), else_=0))
        stmt = (
            sa.select(
                edits.c.user_id,
                sa.func.max(edits.c.user_name),
                sa.func.count(),
                credits.label("c"),
                guessed,
            )
            .where(edits.c.chat_id == chat_id, _sent(), edits.c.created_at > since)
            .group_by(edits.c.user_id)
            .order_by(sa.desc("c"), sa.func.count().desc(), edits.c.user_id)
            .limit(limit)
        )
        rows = (await self._db.execute(stmt)).all()
        return [
            MemberSpend(int(user_id), name, int(count), float(total), bool(guess))
            for user_id, name, count, total, guess in rows
        ]
