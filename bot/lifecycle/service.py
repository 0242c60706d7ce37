"""`EditService`: the one surface handlers, routes and the sweeper use to drive edits.

It wires the phases together and hands each call to the phase that owns it; the phases are
where the work is (`intake`, `submission`, `outcome`, `delivery`, `decisions`, `recovery`).
Every state change is a step of `domain.steps`, applied as one conditional UPDATE, so the
service is safe to run in several processes at once.
"""

from __future__ import annotations

from bot.images.gate import DEFAULT_BUDGET_MB, Normalizer
from bot.lifecycle.context import Lifecycle, Notifier, Observer, PhotoSource, Timing
from bot.lifecycle.decisions import Decisions
from bot.lifecycle.delivery import Delivery, Notices
from bot.lifecycle.intake import Intake
from bot.lifecycle.outcome import Outcomes
from bot.lifecycle.recovery import Recovery
from bot.lifecycle.submission import Submission
from bot.providers.registry import ProviderRegistry
from bot.tasks import TaskTracker
from domain import steps
from domain.edit import Edit
from storage.blobs import BlobStore
from storage.db import Database


class EditService:
    """Drives edits through their states; safe to run in several processes at once."""

    def __init__(
        self,
        db: Database,
        registry: ProviderRegistry,
        blobs: BlobStore,
        photos: PhotoSource,
        notifier: Notifier,
        *,
        base_url: str | None,
        timing: Timing,
        tracker: TaskTracker,
        observe: Observer | None = None,
        normalize_budget_mb: int = DEFAULT_BUDGET_MB,
    ) -> None:
        ctx = Lifecycle(db, registry, blobs, photos, notifier, base_url, timing, tracker)
        ctx.normalizer = Normalizer(normalize_budget_mb << 20)
        if observe is not None:
            ctx.observe = observe
        self.ctx = ctx
        notices = Notices(ctx)
        delivery = Delivery(ctx, notices)
        self.intake = Intake(ctx)
        self.outcomes = Outcomes(ctx, delivery, notices)
        self.submission = Submission(ctx, notices, self.outcomes)
        self.decisions = Decisions(ctx, notices)
        self.recovery = Recovery(
            ctx,
            submission=self.submission,
            outcomes=self.outcomes,
            delivery=delivery,
            notices=notices,
            decisions=self.decisions,
        )
        # The calls the rest of the bot makes, each owned by one phase.
        self.check_request = self.intake.check_request
        self.create = self.intake.create
        self.submit = self.submission.submit
        self.handle_callback = self.outcomes.handle_callback
        self.authenticate_callback = self.outcomes.authenticate
        self.deliver = delivery.deliver
        self.notify = notices.notify
        self.approve = self.decisions.approve
        self.reject = self.decisions.reject
        self.cancel_latest = self.decisions.cancel_latest
        self.sweep = self.recovery.sweep
        self.cleanup_blobs = self.recovery.cleanup_blobs

    def stop_submitting(self) -> None:
        """Shutting down: new edits, and those still waiting for a rate limiter or a
        back-off, stay in `queued` for the next run to submit them.

        A task created now would be fetching its input photo while this process (which may
        be the one serving it) goes away; the next run submits it and serves the photo.
        """
        self.ctx.stopping.set()

    async def note_status_message(self, edit_id: int, message_id: int) -> None:
        """The edit's "working on it" message, so whatever ends the edit can clear it."""
        await self.ctx.db.edits.update_fields(edit_id, status_message_id=message_id)

    async def note_approval_panel(self, edit: Edit, message_id: int) -> None:
        """The admins' Approve/Reject message, so the expiry can close it (if still pending)."""
        await self.ctx.db.edits.update_fields(
            edit.id, only_in=steps.APPROVE.sources, approval_message_id=message_id
        )

    async def note_removal(self, edit_id: int, *, by_name: str, at: float) -> None:
        """An admin removed the edit's result from the chat (for /modlog; a removed result is
        never sent again)."""
        await self.ctx.db.edits.update_fields(edit_id, removed_by_name=by_name[:128], removed_at=at)
