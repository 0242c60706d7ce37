"""What an edit costs: the one figure /usage, /modlog, the per-user budget and the bot-wide
cap all use, so they never disagree.

An edit's figure is the credits its provider reported (`credits`, from KIE's
`consumeCredits`) when there is a report; otherwise it is estimated (`cost_estimate`, set at
intake from the model's price table) for every edit that was or may yet be charged: one
still running (a reservation: it counts before its task exists, so two requests cannot both
take the last credits), one that produced a result, and one cancelled or timed out after
its task was created (the provider may have run it anyway). A failed or refused edit the
provider did not report costs nothing.
"""

from __future__ import annotations

import calendar
import datetime as dt

import sqlalchemy as sa

from domain.edit import Edit, EditState
from storage.schema import edits

# Not finished yet: these count against USER_MAX_IN_FLIGHT and reserve their estimate.
UNFINISHED = frozenset(
    {
        EditState.AWAITING_APPROVAL,
        EditState.QUEUED,
        EditState.SUBMITTING,
        EditState.SUBMITTED,
        EditState.SUCCEEDED,
    }
)
_CHARGED = UNFINISHED | {EditState.DELIVERED, EditState.UNDELIVERABLE}
# Ended without a result, possibly after the provider ran (and billed) the task.
_MAYBE_CHARGED = frozenset({EditState.CANCELLED, EditState.EXPIRED})


def _estimate_counts() -> sa.ColumnElement[bool]:
    charged = edits.c.state.in_([state.value for state in _CHARGED])
    maybe = edits.c.state.in_([state.value for state in _MAYBE_CHARGED])
    return sa.or_(charged, sa.and_(maybe, edits.c.task_id.is_not(None)))


def spent() -> sa.ColumnElement[float]:
    """An edit's credits as a column expression: reported, else estimated, else 0."""
    return sa.case(
        (edits.c.credits.is_not(None), edits.c.credits),
        (_estimate_counts(), sa.func.coalesce(edits.c.cost_estimate, 0.0)),
        else_=0.0,
    )


def estimated() -> sa.ColumnElement[bool]:
    """Whether an edit's figure is an estimate (no report, and an estimate counts)."""
    return sa.and_(edits.c.credits.is_(None), edits.c.cost_estimate > 0, _estimate_counts())


def edit_spend(edit: Edit) -> tuple[float, bool]:
    """`spent()` and `estimated()` for one edit already read: (credits, is an estimate)."""
    if edit.credits is not None:
        return edit.credits, False
    counts = edit.state in _CHARGED or (edit.state in _MAYBE_CHARGED and edit.task_id is not None)
    estimate = edit.cost_estimate or 0.0
    return (estimate, estimate > 0) if counts else (0.0, False)


# Periods of the bot-wide cap: calendar periods in UTC ----------------------------------------


def _utc(now: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, tz=dt.UTC)


def day_bounds(now: float) -> tuple[float, float, str]:
    """The UTC day around `now`: its start, the next one's start, and its name."""
    start = _utc(now).replace(hour=0, minute=0, second=0, microsecond=0)
    return start.timestamp(), (start + dt.timedelta(days=1)).timestamp(), start.date().isoformat()


def month_bounds(now: float) -> tuple[float, float, str]:
    """The calendar month (UTC) around `now`: its start, the next one's start, its name."""
    start = _utc(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(start.year, start.month)[1]
    return start.timestamp(), (start + dt.timedelta(days=days)).timestamp(), start.strftime("%Y-%m")
