"""Operator incidents with several replicas: a provider account that refuses every task (out
of credits) is one incident for all of them, so the operators get one alert, not one per
replica; a task that goes through ends it, and the next refusal is a new incident.

Two instances of the real service on one database (SQLite file or PostgreSQL) behind a
round-robin balancer, the fake Bot API and the fake KIE.
"""

from __future__ import annotations

import pytest

from domain.edit import EditState
from tests.conftest import RunningBot
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.reliability import eventually, replies_to
from tests.test_e2e_failover import JOBS_CREATE, admin_alerts
from tests.test_fair_queue import replicas, send_all  # noqa: F401  (the two-replica fixture)

pytestmark = pytest.mark.usefixtures("replicas")


def credit_alerts(tg: FakeTelegram) -> list[str]:
    return [text for text in admin_alerts(tg) if "insufficient_credits" in text]


async def failed(bots: list[RunningBot], count: int) -> None:
    async def enough() -> bool:
        edits = await bots[0].edits()
        return sum(edit.state is EditState.FAILED for edit in edits) >= count

    await eventually(enough, what=f"{count} failed edits")


async def test_an_incident_seen_by_two_replicas_alerts_the_operators_once(
    tg: FakeTelegram,
    kie: FakeKie,
    replicas: list[RunningBot],  # noqa: F811
) -> None:
    kie.fail_next(JOBS_CREATE, 402, "Credits insufficient", http_status=True, times=4)
    await send_all(tg, [5001, 5002, 5003, 5004])  # the balancer alternates: two each
    await failed(replicas, 4)
    assert len(credit_alerts(tg)) == 1, admin_alerts(tg)

    # Credits are back: a task goes through, which ends the incident ...
    [photo] = await send_all(tg, [5005])
    await tg.wait_for("sendPhoto", replies_to(photo))
    # ... so the next refusal is news again, told once more.
    kie.fail_next(JOBS_CREATE, 402, "Credits insufficient", http_status=True, times=2)
    await send_all(tg, [5006, 5007])
    await failed(replicas, 6)
    assert len(credit_alerts(tg)) == 2, admin_alerts(tg)
