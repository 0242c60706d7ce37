"""Outcome: a task's result recorded once, from the provider's callback or a status poll.

Recording it (SUCCEED or FAIL_TASK) queues the delivery or the failure notice on the
outbox; a task that never finishes expires after TASK_TIMEOUT (EXPIRE_TASK). A poll that
finds the task still running shows its progress in the status message and plans the next
one (`schedule`); besides the sweeper, the process that planned it keeps a timer for it, so
the answer is asked for when it is due rather than at the sweeper's next pass.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from bot.lifecycle.context import Lifecycle, Progress
from bot.lifecycle.delivery import Delivery, Notices
from bot.lifecycle.schedule import Durations, first_poll_delay, poll_delay, time_left
from bot.lifecycle.status import StatusUpdates
from bot.providers.base import TaskState, TaskStatus, requested_results
from domain import steps
from domain.edit import Edit, EditState, Settled
from domain.errors import CallbackRejected, ProviderError, unknown_edit

log = logging.getLogger(__name__)

# A status query found due this little ahead of its time is tried again then (timers run on
# the event loop's clock); further ahead, someone else planned it anew and keeps its timer.
EARLY_TIMER = 0.05


@dataclass(frozen=True)
class CallbackOutcome:
    edit_id: int
    changed: bool
    state: EditState


class Outcomes:
    def __init__(self, ctx: Lifecycle, delivery: Delivery, notices: Notices) -> None:
        self.ctx = ctx
        self.delivery = delivery
        self.notices = notices
        self.durations = Durations(ctx.db)
        self.status = StatusUpdates(ctx)

    async def handle_callback(
        self, provider_name: str, edit_id: int, token: str, body: Any, headers: Mapping[str, str]
    ) -> CallbackOutcome:
        """Authenticate a provider callback and apply it once; raises CallbackRejected.

        The usual case, a task's outcome for an edit waiting for it, is one statement: the
        state change names the provider, token and task id in its condition. Anything else
        (a repeat, a bad token, a body needing the stored task id to verify, a body its
        provider cannot parse) falls back to looking the edit up first: nothing about the
        body is answered before the token is right, and a wrong token reads as an unknown
        edit. The caller refuses tokens of the wrong shape before any statement.
        """
        settled = await self._settle_callback(provider_name, edit_id, token, body, headers)
        if settled is not None:
            return settled
        edit = await self.authenticate(provider_name, edit_id, token)
        provider = self.ctx.registry.provider(provider_name)
        status = provider.parse_callback(body, headers, task_id=edit.task_id)
        if status.task_id and edit.task_id and status.task_id != edit.task_id:
            raise CallbackRejected("task id does not match the edit", status=409)
        updated = await self.apply_status(edit, status)
        log.info(
            "callback accepted",
            extra={
                "edit_id": edit.id,
                "task_id": status.task_id or edit.task_id,
                "task_state": status.state.value,
                "changed": updated is not None,
            },
        )
        return CallbackOutcome(
            edit_id=edit.id, changed=updated is not None, state=(updated or edit).state
        )

    async def authenticate(self, provider_name: str, edit_id: int, token: str) -> Edit:
        """The edit a callback's URL names, if its token is right; one refusal otherwise."""
        edit = await self.ctx.db.edits.get(edit_id)
        if edit is None or edit.provider != provider_name:
            raise unknown_edit("unknown edit")
        if not secrets.compare_digest(edit.callback_token.encode(), token.encode()):
            raise unknown_edit("bad token")
        return edit

    async def _settle_callback(
        self, provider_name: str, edit_id: int, token: str, body: Any, headers: Mapping[str, str]
    ) -> CallbackOutcome | None:
        """The one-statement path of `handle_callback`; None: take the full path."""
        provider = self.ctx.registry.providers.get(provider_name)
        if provider is None:
            return None
        try:
            status = provider.parse_callback(body, headers, task_id=None)
        except CallbackRejected:
            return None  # the full path looks the edit up first: 404/403 before 400/401
        if not status.state.finished or len(status.result_urls) > 1:
            return None  # several results: the full path caps them at what the edit asked
        step, fields = _outcome(status)
        updated = await self.ctx.db.edits.settle_callback(
            edit_id,
            step,
            provider=provider_name,
            callback_token=token,
            task_id=status.task_id or None,
            **fields,
        )
        if updated is None:
            return None
        self._report_credits(provider_name, status)
        self._settled(updated)
        log.info(
            "callback accepted",
            extra={
                "edit_id": edit_id,
                "task_id": updated.task_id,
                "task_state": status.state.value,
                "changed": True,
            },
        )
        return CallbackOutcome(edit_id=edit_id, changed=True, state=updated.state)

    def _settled(self, edit: Edit | Settled) -> None:
        """A task's outcome was recorded: queue the delivery or the failure notice."""
        if edit.state is EditState.SUCCEEDED:
            self.durations.succeeded()
            self.ctx.observe("succeeded", {"edit_id": edit.id, "provider": edit.provider})
            self.ctx.outbox.submit(partial(self.delivery.deliver, edit.id))
        else:
            self.ctx.observe(
                "failed", {"edit_id": edit.id, "provider": edit.provider, "code": edit.error_code}
            )
            self.ctx.outbox.submit(partial(self.notices.notify, edit.id))

    def _report_credits(self, provider_name: str, status: TaskStatus) -> None:
        """An authenticated answer told the account's balance (low-balance alerts)."""
        if status.credits_left is not None:
            credits = {"provider": provider_name, "credits": status.credits_left}
            self.ctx.observe("credits_left", credits)

    async def apply_status(
        self, edit: Edit, status: TaskStatus, *, owner: str | None = None
    ) -> Edit | None:
        """Record a finished task once; schedule delivery or the failure message.

        `owner`: the lease of the status query that found the outcome (a callback has none).
        """
        if not status.state.finished:
            return None
        uncertain = (
            edit.state is EditState.FAILED
            and edit.error_code in steps.UNCERTAIN_SUBMISSIONS
            and edit.task_id is None
        )
        self._report_credits(edit.provider, status)
        if edit.state not in steps.AWAITING_OUTCOME and not uncertain:
            return None  # settled before (the edit was just read; it cannot go back)
        asked = requested_results(edit.params)
        if len(status.result_urls) > asked:
            log.warning(
                "more results than the edit asked for: the rest ignored",
                extra={"edit_id": edit.id, "returned": len(status.result_urls), "kept": asked},
            )
            status = replace(status, result_urls=status.result_urls[:asked])
        step, fields = _outcome(status)
        if edit.task_id is None and status.task_id:
            fields["task_id"] = status.task_id
        updated = await self.ctx.db.edits.transition(edit.id, step, owner=owner, **fields)
        if updated is None and step is steps.SUCCEED and edit.task_id is None and status.task_id:
            # The user was told we could not tell whether the task started (the create
            # request timed out or was cut off); the provider's authenticated callback says
            # it did. Deliver the result after all rather than lose it.
            updated = await self.ctx.db.edits.transition(
                edit.id,
                steps.LATE_SUCCESS,
                **{**fields, "error_code": None, "error_detail": None},
            )
            if updated is not None:
                log.info(
                    "uncertain submission completed after all",
                    extra={"edit_id": edit.id, "task_id": status.task_id},
                )
        if updated is not None:
            self._settled(updated)
        return updated

    async def submitted(self, edit: Edit, *, callback: bool, news: bool = False) -> None:
        """The provider has the task: plan the first status query (polling mode) from the
        model's typical duration, and say so in the status message (`news`: even without
        an estimate, as the message said something else, e.g. that the provider was busy)."""
        typical = await self.durations.typical(edit.model)
        if not callback and edit.submitted_at is not None:
            due = edit.submitted_at + first_poll_delay(self.ctx.timing, typical)
            planned: Edit | None = edit
            if typical is not None:  # else RECORD_TASK planned it POLL_INTERVAL ahead
                planned = await self.ctx.db.edits.update_fields(
                    edit.id, only_in=[EditState.SUBMITTED], next_check_at=due
                )
            if planned is not None and planned.poll_count == 0:
                self.ctx.later(due - time.time(), partial(self.poll_due, edit.id))
        interval = self.status.interval(edit)

        def at_turn(current: Edit, now: float) -> Progress | None:
            """At the message's turn: say so if the result is still an interval away."""
            if current.state is not EditState.SUBMITTED or current.submitted_at is None:
                return None
            if typical is None:
                return Progress.of("sent") if news else None
            left = current.submitted_at + typical - now
            return Progress.of("sent", seconds=left) if news or left >= interval else None

        await self.status.show_or_later(edit, Progress.of("sent", seconds=typical), at_turn)

    async def poll(self, edit: Edit) -> None:
        """Ask the provider about a submitted task whose outcome is due."""
        await self.poll_due(edit.id)

    async def poll_due(self, edit_id: int) -> None:
        """Ask the provider about a submitted task, if its status query is due (a timer and
        the sweeper may both come for it: the first one polls, the other finds it not due)."""
        ctx = self.ctx
        lease = ctx.lease(ctx.timing.poll_lease)
        claimed = await ctx.db.edits.claim(
            edit_id, [EditState.SUBMITTED], lease.token, lease.seconds
        )
        if claimed is None:
            return
        early = (claimed.next_check_at or 0.0) - time.time()
        if claimed.task_id is None or early > 0:
            await ctx.db.edits.release(claimed.id, lease.token)
            if claimed.task_id is not None and early < EARLY_TIMER:
                # A timer that fired a hair early (its clock is not the wall clock's).
                ctx.later(early, partial(self.poll_due, edit_id))
            return
        with ctx.leases.renewed(lease):
            await self._poll(claimed, claimed.task_id, lease.token)

    async def _poll(self, claimed: Edit, task_id: str, owner: str) -> None:
        ctx = self.ctx
        try:
            status = await self._query(claimed, task_id)
        except asyncio.CancelledError:
            await ctx.db.edits.release(claimed.id, owner)
            raise
        if status is not None and status.state.finished:
            if status.task_id and status.task_id != claimed.task_id:
                log.error(
                    "status answer for another task",
                    extra={"edit_id": claimed.id, "task_id": claimed.task_id},
                )
                status = None
            else:
                await self.apply_status(claimed, status, owner=owner)
                return
        now = time.time()
        timing = ctx.timing
        if claimed.submitted_at and now - claimed.submitted_at > timing.task_timeout:
            await self._expire(claimed, owner)
            return
        elapsed = now - (claimed.submitted_at or now)
        left = time_left(status, elapsed, await self.durations.typical(claimed.model))
        delay = poll_delay(timing, left, claimed.poll_count)
        if status is not None:  # a failed query tells nothing new
            await self.status.show(claimed, _progress(status, left))
        await ctx.db.edits.release(
            claimed.id, owner, next_check_at=now + delay, poll_count=claimed.poll_count + 1
        )
        ctx.later(now + delay - time.time(), partial(self.poll_due, claimed.id))

    async def _query(self, edit: Edit, task_id: str) -> TaskStatus | None:
        """The provider's view of a task; None if the query failed (still running, then)."""
        provider = self.ctx.registry.provider(edit.provider)
        status: TaskStatus | None
        try:
            status = await provider.status(task_id)
        except ProviderError as exc:
            log.warning(
                "status query failed",
                extra={"edit_id": edit.id, "task_id": task_id, "error": exc.code},
            )
            status = None
        self.ctx.observe("polled", {"edit_id": edit.id, "provider": edit.provider})
        return status

    async def _expire(self, edit: Edit, owner: str) -> None:
        """TASK_TIMEOUT passed without an outcome: give up and tell the user."""
        expired = await self.notices.end(
            edit,
            steps.EXPIRE_TASK,
            owner=owner,
            event="expired",
            error_code="timeout",
            finished_at=time.time(),
        )
        if expired is not None:
            log.warning("task timed out", extra={"edit_id": edit.id, "task_id": edit.task_id})


def _progress(status: TaskStatus, left: float | None) -> Progress:
    """What a running task's status answer shows in the status message."""
    if status.state is TaskState.PENDING:
        return Progress.of("sent", seconds=left)
    return Progress.of("running", fraction=status.progress, seconds=left)


def _outcome(status: TaskStatus) -> tuple[steps.Step, dict[str, Any]]:
    """The step and fields that record a finished task's outcome."""
    fields: dict[str, Any] = {
        "finished_at": time.time(),
        "credits": status.credits_used,
        "lease_owner": None,
        "lease_until": None,
        "next_check_at": None,
    }
    if status.state is TaskState.SUCCEEDED:
        return steps.SUCCEED, {**fields, "result_urls": list(status.result_urls)}
    code = f"task_failed:{status.error_code}" if status.error_code else "task_failed"
    return steps.FAIL_TASK, {
        **fields,
        "error_code": code[:64],
        "error_detail": (status.error_message or "")[:1000],
    }
