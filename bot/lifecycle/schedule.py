"""When to ask a provider about a task again, and how long it should still take.

A status query costs a request and finds the result no sooner than it is asked, so the next
one is planned from what is known about the task, best first: the provider's own estimate
(odkkk's `estimated_time`), its progress extrapolated over the time spent so far (4o), the
model's typical duration (the median of its recent succeeded edits). The poll goes out when
the task should be done; one that finds it still running is followed by short intervals
that grow with how late it is. Knowing nothing, the schedule is the plain exponential one
from POLL_INTERVAL. Never sooner than POLL_MIN_INTERVAL, never later than POLL_MAX_INTERVAL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bot.lifecycle.context import Timing
from bot.providers.base import TaskStatus
from storage.db import Database

# Progress below this says too little to extrapolate from (1 % after 2 s is not 200 s).
MIN_FRACTION = 0.05
# Once overdue, the next poll waits this share of the lateness (late tasks are polled less).
OVERDUE_SHARE = 0.25
# Recent succeeded edits of a model behind its typical duration.
RECENT_EDITS = 20
# A model's typical duration is looked up again after this long, or sooner once an edit
# succeeded (at most once per FRESH_AFTER_SUCCESS seconds then).
TYPICAL_TTL = 300.0
FRESH_AFTER_SUCCESS = 1.0


def time_left(status: TaskStatus | None, elapsed: float, typical: float | None) -> float | None:
    """Seconds until the task should be done (negative: overdue); None if nothing is known.

    `status`: the provider's answer (None: the query failed); `elapsed`: seconds since the
    task was created; `typical`: the model's typical duration.
    """
    if status is not None:
        if status.eta is not None:
            return max(0.0, status.eta)
        fraction = status.progress
        if fraction is not None and MIN_FRACTION <= fraction < 1 and elapsed > 0:
            return elapsed * (1 - fraction) / fraction
    if typical is not None:
        return typical - elapsed
    return None


def poll_delay(timing: Timing, left: float | None, poll_count: int) -> float:
    """Seconds until the next status query, `left` being `time_left`'s answer."""
    if left is None:
        delay = timing.poll_interval * (1.5 ** min(poll_count, 20))
    elif left > 0:
        delay = left
    else:
        delay = -left * OVERDUE_SHARE
    return min(timing.poll_max_interval, max(timing.poll_min_interval, delay))


def first_poll_delay(timing: Timing, typical: float | None) -> float:
    """Seconds from the task's creation to the first status query (polling mode)."""
    if typical is None:
        return max(timing.poll_min_interval, timing.poll_interval)
    return min(timing.poll_max_interval, max(timing.poll_min_interval, typical))


@dataclass
class _Known:
    seconds: float | None
    at: float


class Durations:
    """Each model's typical duration, looked up in the database now and then (per process)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._known: dict[str, _Known] = {}
        self._succeeded_at = 0.0

    async def typical(self, model: str) -> float | None:
        now = time.monotonic()
        known = self._known.get(model)
        if known is not None and self._fresh(known, now):
            return known.seconds
        seconds = await self.db.edit_status.typical_duration(model, recent=RECENT_EDITS)
        self._known[model] = _Known(seconds, now)
        return seconds

    def _fresh(self, known: _Known, now: float) -> bool:
        age = now - known.at
        if age >= TYPICAL_TTL:
            return False
        return known.at >= self._succeeded_at or age < FRESH_AFTER_SUCCESS

    def succeeded(self) -> None:
        """An edit got its result: the typical durations may have moved."""
        self._succeeded_at = time.monotonic()
