"""Recovery: the sweeper's pass over edits that nobody is working on.

Runs at startup and every few seconds, on every replica (leases keep them from doing the
same work twice): submits edits left `queued`, tells users whose submission was cut off by
a crash, polls overdue tasks, redelivers succeeded results, sends missed failure notices,
expires approvals nobody decided on, gives back paid edits' leftover reservations, and
deletes old input photos.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

from bot.lifecycle.context import Lifecycle
from bot.lifecycle.decisions import Decisions
from bot.lifecycle.delivery import Delivery, Notices
from bot.lifecycle.outcome import Outcomes
from bot.lifecycle.submission import Submission
from domain.edit import EditState

log = logging.getLogger(__name__)

RETURNS_WINDOW = 24 * 3600.0  # how far back they are looked for


class Recovery:
    def __init__(
        self,
        ctx: Lifecycle,
        *,
        submission: Submission,
        outcomes: Outcomes,
        delivery: Delivery,
        notices: Notices,
        decisions: Decisions,
    ) -> None:
        self.ctx = ctx
        self.submission = submission
        self.outcomes = outcomes
        self.delivery = delivery
        self.notices = notices
        self.decisions = decisions
        self._returns_checked = 0.0

    async def sweep(self, *, concurrency: int = 32) -> int:
        """One pass of the recovery sweeper; returns how many edits it acted on."""
        ctx = self.ctx
        db, timing = ctx.db, ctx.timing
        now = time.time()
        jobs: list[Awaitable[Any]] = []
        # Queued edits get a grace period for the handler that queued them to submit them
        # itself; those left by an earlier run (e.g. queued during its shutdown) are due now.
        queued_before = max(now - timing.queued_grace, ctx.started_at)
        for edit in await db.edits.due([EditState.QUEUED], now=now, updated_before=queued_before):
            jobs.append(self.submission.submit(edit.id))
        for edit in await db.edits.due([EditState.SUBMITTING], now=now, updated_before=now - 5.0):
            jobs.append(self.submission.recover(edit))
        for edit in await db.edits.due([EditState.SUBMITTED], now=now):
            jobs.append(self.outcomes.poll(edit))
        for edit in await db.edits.due([EditState.SUCCEEDED], now=now):
            jobs.append(self.delivery.deliver(edit.id))
        for edit in await db.edits.unnotified(older_than=now - 2.0):
            jobs.append(self.notices.notify(edit.id))
        # Paid edits: reservations of edits that ended without a result and were not given
        # back (a crash between the end and the return): back, without a notice. Failure
        # notices return theirs themselves, so this pass only catches the rare leftover of
        # the last day, once per NOTIFY_LEASE (a failure notice's takeover time).
        if now - self._returns_checked >= timing.notify_lease:
            self._returns_checked = now
            for edit_id in await db.balances.unreturned(since=now - RETURNS_WINDOW):
                jobs.append(db.balances.release(edit_id))
        for edit in await db.edits.due(
            [EditState.AWAITING_APPROVAL],
            now=now,
            updated_before=now - timing.approval_timeout,
        ):
            jobs.append(self.decisions.expire_approval(edit))
        if not jobs:
            return 0
        semaphore = asyncio.Semaphore(concurrency)

        async def run(job: Awaitable[Any]) -> None:
            async with semaphore:
                try:
                    await job
                except Exception:
                    log.exception("sweeper job failed")

        await asyncio.gather(*(run(job) for job in jobs))
        return len(jobs)

    async def cleanup_blobs(self, *, grace: float | None = None) -> int:
        """Delete input photos of edits that ended more than `grace` seconds ago
        (default: `Timing.blob_grace`)."""
        ctx = self.ctx
        removed = 0
        grace = ctx.timing.blob_grace if grace is None else grace
        for edit in await ctx.db.edits.finished_with_blobs(before=time.time() - grace):
            for key in edit.blob_keys:
                await ctx.blobs.delete(key)
                removed += 1
            await ctx.db.edits.update_fields(edit.id, only_in=[edit.state], blob_keys=None)
        return removed
