"""The status poll schedule's arithmetic (`bot.lifecycle.schedule`); the end-to-end proof is
in tests/test_e2e_status_progress.py."""

from __future__ import annotations

import pytest

from bot.lifecycle.context import Progress, Timing
from bot.lifecycle.schedule import first_poll_delay, poll_delay, time_left
from bot.providers.base import TaskState, TaskStatus

TIMING = Timing(poll_interval=3.0, poll_max_interval=30.0, poll_min_interval=0.5)
RUNNING = TaskStatus(state=TaskState.RUNNING)


@pytest.mark.parametrize(
    ("status", "elapsed", "typical", "left"),
    [
        (TaskStatus(TaskState.RUNNING, eta=12.0, progress=0.9), 4.0, 10.0, 12.0),  # estimate
        (TaskStatus(TaskState.RUNNING, progress=0.25), 3.0, 30.0, 9.0),  # progress
        (TaskStatus(TaskState.RUNNING, progress=0.01), 3.0, 10.0, 7.0),  # too little: typical
        (RUNNING, 12.0, 10.0, -2.0),  # overdue
        (None, 4.0, 10.0, 6.0),  # a failed query: what the model usually takes
        (RUNNING, 4.0, None, None),  # nothing known
    ],
    ids=["estimate", "progress", "tiny-progress", "overdue", "failed-query", "unknown"],
)
def test_time_left_from_the_best_source(
    status: TaskStatus | None, elapsed: float, typical: float | None, left: float | None
) -> None:
    assert time_left(status, elapsed, typical) == left


@pytest.mark.parametrize(
    ("left", "poll_count", "delay"),
    [
        (6.0, 0, 6.0),  # when it should be done
        (100.0, 0, 30.0),  # never later than POLL_MAX_INTERVAL
        (0.0, 3, 0.5),  # the provider says "now": still the floor
        (-0.4, 5, 0.5),  # a little late: the floor
        (-8.0, 5, 2.0),  # later: a quarter of the lateness
        (None, 0, 3.0),  # nothing known: the exponential schedule
        (None, 2, 6.75),
    ],
)
def test_poll_delay_keeps_between_the_floor_and_the_cap(
    left: float | None, poll_count: int, delay: float
) -> None:
    assert poll_delay(TIMING, left, poll_count) == pytest.approx(delay)


def test_the_first_poll_waits_for_the_typical_duration() -> None:
    assert first_poll_delay(TIMING, None) == 3.0
    assert first_poll_delay(TIMING, 10.0) == 10.0
    assert first_poll_delay(TIMING, 0.1) == 0.5
    assert first_poll_delay(TIMING, 600.0) == 30.0


@pytest.mark.parametrize(
    ("progress", "key"),
    [
        (Progress.of("running", fraction=0.537, seconds=12.2), "running:50:15"),
        (Progress.of("running", fraction=0.0, seconds=0.0), "running:None:0"),
        (Progress.of("sent", seconds=61), "sent:None:120"),
        (Progress.of("busy", seconds=-3), "busy:None:0"),
    ],
)
def test_progress_is_rounded_as_the_message_words_it(progress: Progress, key: str) -> None:
    assert progress.key == key
