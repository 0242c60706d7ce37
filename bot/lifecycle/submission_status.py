"""The submission phase, reporting into the status message and the poll schedule.

Two moments of `Submission` matter to the user: the provider took the task (the status
message says so, with the model's typical duration; in polling mode the first status query
is planned from that duration) and the provider refused it for now (a back-off of at least
one status-message turn is shown as "busy, retrying in ~X" instead of a silent wait).
"""

from __future__ import annotations

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

    async def _record_task(
        self, edit: Edit, task_id: str, prepared: _Prepared, started: float, owner: str
    ) -> Edit | None:
        done = await super()._record_task(edit, task_id, prepared, started, owner)
        if done is not None and done.state is EditState.SUBMITTED:
            callback = prepared.request.callback_url is not None
            await self.outcomes.submitted(done, callback=callback)
        return done

    async def _back_off(
        self, edit: Edit, owner: str, exc: ProviderError, delay: float, attempt: int
    ) -> Edit | None:
        queued = await super()._back_off(edit, owner, exc, delay, attempt)
        status = self.outcomes.status
        # A shorter wait would be over before the message could change again.
        if queued is not None and delay >= status.interval(queued):
            await status.show(queued, Progress.of("busy", seconds=delay))
        return queued
