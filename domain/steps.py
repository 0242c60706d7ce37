"""Every state change an edit may make, declared once.

A `Step` names the states an edit may be in for the step to apply and the state it moves
to. The database applies a step as one conditional UPDATE (`storage/edits.py`,
`Edits.transition`): it succeeds for exactly one caller, so a repeated callback, a restart
or a second replica never applies a step twice. A step taken by a worker under a lease
names the lease (`transition(..., owner=token)`) and applies only while it still holds it.
Nothing changes an edit's state except through these steps; updates that leave the state
alone are `Edits.update_fields`.

The table below is the whole state machine; `tests/test_architecture.py` checks its shape
(no step leaves a finished edit except LATE_SUCCESS, every state is reachable).
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.edit import TERMINAL_STATES, EditState

# Submissions that may or may not have reached the provider (the user was told so).
UNCERTAIN_SUBMISSIONS = ("submit_uncertain", "submit_interrupted")

_S = EditState


@dataclass(frozen=True)
class Step:
    """One allowed state change: from any of `sources` to `target`.

    `error_codes`, when set, narrows the step to edits carrying one of those codes.
    """

    name: str
    sources: frozenset[EditState]
    target: EditState
    error_codes: tuple[str, ...] | None = None

    @property
    def ends(self) -> bool:
        """The edit is finished after this step (its lease is given back with it)."""
        return self.target in TERMINAL_STATES


def _step(
    name: str, sources: set[EditState], target: EditState, codes: tuple[str, ...] | None = None
) -> Step:
    return Step(name, frozenset(sources), target, codes)


# Group moderation: an admin decides, or nobody does in time.
APPROVE = _step("approve", {_S.AWAITING_APPROVAL}, _S.QUEUED)
REJECT = _step("reject", {_S.AWAITING_APPROVAL}, _S.REJECTED)
EXPIRE_APPROVAL = _step("expire_approval", {_S.AWAITING_APPROVAL}, _S.EXPIRED)
# Submission: `submitting` means exactly "the provider may have received the request".
BEGIN_SUBMIT = _step("begin_submit", {_S.QUEUED}, _S.SUBMITTING)
# The provider refused the create request (429, 5xx, no connection): no task exists, so the
# edit waits in `queued` again before the next attempt.
BACK_OFF = _step("back_off", {_S.SUBMITTING}, _S.QUEUED)
# The provider refused in a way that proves no task exists (README, "Failover"): the edit
# moves to the same model on the next provider and is `queued` again, so one edit never has
# two paid tasks.
FAIL_OVER = _step("fail_over", {_S.SUBMITTING}, _S.QUEUED)
RECORD_TASK = _step("record_task", {_S.SUBMITTING}, _S.SUBMITTED)
FAIL_SUBMISSION = _step("fail_submission", {_S.QUEUED, _S.SUBMITTING}, _S.FAILED)
INTERRUPT = _step("interrupt", {_S.SUBMITTING}, _S.FAILED)
# The task's outcome, from a callback or a status poll.
SUCCEED = _step("succeed", {_S.SUBMITTING, _S.SUBMITTED}, _S.SUCCEEDED)
FAIL_TASK = _step("fail_task", {_S.SUBMITTING, _S.SUBMITTED}, _S.FAILED)
LATE_SUCCESS = _step("late_success", {_S.FAILED}, _S.SUCCEEDED, UNCERTAIN_SUBMISSIONS)
EXPIRE_TASK = _step("expire_task", {_S.SUBMITTED}, _S.EXPIRED)
# Delivery of the result to the chat.
DELIVER = _step("deliver", {_S.SUCCEEDED}, _S.DELIVERED)
GIVE_UP = _step("give_up", {_S.SUCCEEDED}, _S.UNDELIVERABLE)
FAIL_DELIVERY = _step("fail_delivery", {_S.SUCCEEDED}, _S.FAILED)
# /cancel: before anything was sent, or after (the result is then never delivered).
CANCEL_UNSENT = _step("cancel_unsent", {_S.AWAITING_APPROVAL, _S.QUEUED}, _S.CANCELLED)
CANCEL_SENT = _step("cancel_sent", {_S.SUBMITTING, _S.SUBMITTED}, _S.CANCELLED)

STEPS: tuple[Step, ...] = (
    APPROVE,
    REJECT,
    EXPIRE_APPROVAL,
    BEGIN_SUBMIT,
    BACK_OFF,
    FAIL_OVER,
    RECORD_TASK,
    FAIL_SUBMISSION,
    INTERRUPT,
    SUCCEED,
    FAIL_TASK,
    LATE_SUCCESS,
    EXPIRE_TASK,
    DELIVER,
    GIVE_UP,
    FAIL_DELIVERY,
    CANCEL_UNSENT,
    CANCEL_SENT,
)
# Edits whose task's outcome is still to be recorded.
AWAITING_OUTCOME = SUCCEED.sources
