"""What the operators' commands read and write: who a command is about, the limits typed
after /userlimits, and the texts of /limits, /oplog and a user's record."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from telegram import (
    Message,
    MessageOriginChannel,
    MessageOriginChat,
    MessageOriginHiddenUser,
    MessageOriginUser,
)

from bot.config import RateLimit, Settings
from bot.formats import format_credits, format_wait
from storage.user_controls import LogEntry, UserControl, UserOverrides, UserSpend

Tr = Callable[..., str]

USER_ID = re.compile(r"-?\d{1,15}")  # a user, or a chat posting as itself (`bot.origin`)
LIMIT_NAMES = {
    "in_flight": "max_in_flight",
    "max_in_flight": "max_in_flight",
    "daily": "daily_edits",
    "daily_edits": "daily_edits",
    "credits": "daily_credits",
    "daily_credits": "daily_credits",
}
LIMIT_MAX = {"max_in_flight": 1000, "daily_edits": 100_000, "daily_credits": 1e9}
RESET_WORDS = frozenset({"reset", "default"})


@dataclass(frozen=True)
class Target:
    """Who a command is about (None: nobody could be told) and the words after the id.
    `hidden`: the command replies to a forward whose sender hides their account."""

    user_id: int | None
    rest: tuple[str, ...] = ()
    hidden: bool = False


def command_target(args: Sequence[str], message: Message) -> Target:
    """The numeric id first among the arguments (a user's, or a channel's: negative), or
    the sender of the forwarded message the command replies to (a user, or the chat it was
    posted as)."""
    if args and USER_ID.fullmatch(args[0]):
        return Target(int(args[0]), tuple(args[1:]))
    replied = message.reply_to_message
    origin = replied.forward_origin if replied is not None else None
    if isinstance(origin, MessageOriginUser):
        return Target(origin.sender_user.id, tuple(args))
    if isinstance(origin, MessageOriginChat):
        return Target(origin.sender_chat.id, tuple(args))
    if isinstance(origin, MessageOriginChannel):
        return Target(origin.chat.id, tuple(args))
    return Target(None, tuple(args), hidden=isinstance(origin, MessageOriginHiddenUser))


class BadLimit(ValueError):
    """A word after /userlimits that is not `name=value`, `name=default` or `reset`."""

    def __init__(self, part: str) -> None:
        super().__init__(part)
        self.part = part


def parse_limits(current: UserOverrides, words: Sequence[str]) -> UserOverrides:
    """`current` changed by words such as `daily=50 in_flight=1 credits=default` or `reset`."""
    limits = current
    for word in words:
        if word.lower() == "reset":
            limits = UserOverrides()
            continue
        name, sep, raw = word.partition("=")
        field = LIMIT_NAMES.get(name.lower())
        if not sep or field is None:
            raise BadLimit(word)
        if raw.lower() in RESET_WORDS:
            cleared: dict[str, Any] = {field: None}
            limits = replace(limits, **cleared)
            continue
        try:
            value: float = float(raw) if field == "daily_credits" else int(raw)
        except ValueError:
            raise BadLimit(word) from None
        if not 0 <= value <= LIMIT_MAX[field]:  # also refuses NaN
            raise BadLimit(word)
        changes: dict[str, Any] = {field: value}
        limits = replace(limits, **changes)
    return limits


def limits_text(tr: Tr, limits: UserOverrides) -> str:
    """A user's own limits, or that the deployment's apply."""
    parts = []
    for field, key in (
        ("max_in_flight", "operators.limit.in_flight"),
        ("daily_edits", "operators.limit.daily"),
        ("daily_credits", "operators.limit.credits"),
    ):
        value = getattr(limits, field)
        if value is not None:
            shown = tr("operators.limit.none") if value == 0 else format_credits(value)
            parts.append(tr(key, value=shown))
    return ", ".join(parts) or tr("operators.limit.defaults")


def user_text(tr: Tr, user_id: int, control: UserControl | None) -> str:
    """One user's record: ban, runtime allowlist, own limits."""
    control = control or UserControl(user_id)
    yes, no = tr("operators.yes"), tr("operators.no")
    return tr(
        "operators.user",
        user=user_id,
        banned=yes if control.banned else no,
        allowed=yes if control.allowed else no,
        limits=limits_text(tr, control.limits),
    )


def _rate(tr: Tr, rate: RateLimit) -> str:
    return tr("operators.rate", n=rate.calls, period=format_wait(tr, rate.period))


def limits_overview(
    tr: Tr,
    settings: Settings,
    *,
    day: tuple[int, float],
    month: tuple[int, float],
    capped: tuple[float, float],
    heaviest: Sequence[UserSpend],
    listed: Sequence[UserControl],
) -> str:
    """/limits: the caps, the spend of the last day and month, the heaviest users and the
    users operators set something for (HTML). `capped`: what the spend caps count so far this
    UTC day and calendar month (estimates included)."""
    alert = settings.low_credits_alert
    per_user = UserOverrides(
        settings.user_max_in_flight, settings.user_daily_edits, settings.user_daily_credits or 0
    )

    def cap(spent: float, limit: float | None) -> str:
        if not limit:
            return tr("operators.limit.off")
        return tr("operators.limits.cap", spent=format_credits(spent), cap=format_credits(limit))

    lines = [
        tr("operators.limits.title"),
        tr("operators.limits.per_user", limits=limits_text(tr, per_user)),
        tr(
            "operators.limits.caps",
            day=cap(capped[0], settings.spend_cap_daily),
            month=cap(capped[1], settings.spend_cap_monthly),
        ),
        tr(
            "operators.limits.as_file",
            result=_rate(tr, settings.as_file_result_limit),
            user=_rate(tr, settings.as_file_user_limit),
        ),
        tr(
            "operators.limits.low_credits",
            value=format_credits(alert) if alert is not None else tr("operators.limit.off"),
        ),
        tr("operators.limits.spend_day", edits=day[0], credits=format_credits(day[1])),
        tr("operators.limits.spend_month", edits=month[0], credits=format_credits(month[1])),
    ]
    if heaviest:
        lines.append(tr("operators.limits.heaviest"))
        lines.extend(
            tr(
                "operators.limits.heavy_user",
                user=item.user_id,
                name=html.escape(item.name or "—"),
                edits=item.edits,
                credits=format_credits(item.credits),
            )
            for item in heaviest
        )
    if listed:
        lines.append(tr("operators.limits.listed"))
        lines.extend(html.escape(user_text(tr, control.user_id, control)) for control in listed)
    return "\n".join(lines)


def oplog_text(tr: Tr, entries: Sequence[LogEntry], *, now: float | None = None) -> str:
    """/oplog: the newest operator changes, each with who, what and how long ago (HTML)."""
    if not entries:
        return tr("operators.oplog.empty")
    now = time.time() if now is None else now
    lines = [tr("operators.oplog.title")]
    for entry in entries:
        lines.append(
            tr(
                "operators.oplog.item",
                ago=format_wait(tr, max(0.0, now - entry.at)),
                operator=entry.operator_id,
                action=tr(f"operators.action.{entry.action}"),
                user=entry.user_id if entry.user_id is not None else "—",
                detail=f" {html.escape(entry.detail)}" if entry.detail else "",
            )
        )
    return "\n".join(lines)
