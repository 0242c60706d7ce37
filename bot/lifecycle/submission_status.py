"""The submission phase, reporting into the status message and the poll schedule.

Two moments of `Submission` matter to the user: the provider took the task (the status
message says so, with the model's typical duration; in polling mode the first status query
is planned from that duration) and the provider refused it for now (a back-off of at least
one status-message turn is shown as "busy, retrying in ~X" instead of a silent wait).
"""

from __future__ import annotations

from typing import Any

from bot.lifecycle.context import Lifecycle, Progress
from bot.lifecycle.delivery import Notices
from bot.lifecycle.outcome import Outcomes
from bot.lifecycle.submission import Submission, _Prepared
from domain.edit import Edit, EditState
from domain.errors import ProviderError


class ReportingSubmission(Submission):
    def __init__(self, ctx: Lifecycle, notices: Notices, outcomes: Outcomes) -> None:
        super().__init__(ctx, notices)
        self.outcomes = outcomes
        # Edits whose status message says the provider is busy (until they are sent).
        self._busy: set[int] = set()

    async def _record_task(
        self, edit: Edit, task_id: str, prepared: _Prepared, started: float, owner: str
    ) -> Edit | None:
        done = await super()._record_task(edit, task_id, prepared, started, owner)
        if done is not None and done.state is EditState.SUBMITTED:
            callback = prepared.request.callback_url is not None
            await self.outcomes.submitted(done, callback=callback, news=done.id in self._busy)
        self._busy.discard(edit.id)
        return done

    async def _fail(self, edit: Edit, exc: Exception, owner: str, **fields: Any) -> Edit | None:
        self._busy.discard(edit.id)
        return await super()._fail(edit, exc, owner, **fields)

    async def _back_off(
        self, edit: Edit, owner: str, exc: ProviderError, delay: float, attempt: int
    ) -> Edit | None:
        queued = await super()._back_off(edit, owner, exc, delay, attempt)
        status = self.outcomes.status
        interval = status.interval(edit)
        # A shorter wait would be over before the message could change again.
        if queued is None or delay < interval:
            return queued
        self._busy.add(edit.id)

        def at_turn(current: Edit, now: float) -> Progress | None:
            """At the message's turn: say so if the wait is still long."""
            retry_at = current.next_check_at
            if current.state is not EditState.QUEUED or retry_at is None:
                return None
            return (
                Progress.of("busy", seconds=retry_at - now) if retry_at - now >= interval else None
            )

        await status.show_or_later(queued, Progress.of("busy", seconds=delay), at_turn)
        return queued
