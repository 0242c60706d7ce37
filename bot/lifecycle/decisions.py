"""Decisions about an edit made by people: an admin approves or rejects, the user cancels.

Each is one step of the table (`domain.steps`), so of two admins pressing at once, or a
press racing the expiry or a result, exactly one wins.
"""

from __future__ import annotations

import logging
import time

from bot.lifecycle.context import Lifecycle
from bot.lifecycle.delivery import Notices
from domain import steps
from domain.edit import Edit

# How many of the user's newest edits /cancel looks through.
CANCEL_SEARCH_DEPTH = 50

log = logging.getLogger(__name__)


class Decisions:
    def __init__(self, ctx: Lifecycle, notices: Notices) -> None:
        self.ctx = ctx
        self.notices = notices

    async def approve(self, edit_id: int, *, by: int, by_name: str) -> Edit | None:
        """awaiting_approval -> queued, recording who decided (the caller then submits it).

        None when someone (another admin, the expiry, /cancel) decided first.
        """
        approved = await self.ctx.db.edits.transition(
            edit_id,
            steps.APPROVE,
            decision="approved",
            decided_by=by,
            decided_by_name=by_name[:128],
            decided_at=time.time(),
        )
        if approved is not None:
            self.ctx.observe("approved", {"edit_id": edit_id, "provider": approved.provider})
        return approved

    async def reject(self, edit_id: int, *, by: int, by_name: str) -> Edit | None:
        """awaiting_approval -> rejected: nothing was fetched or sent, nothing is spent."""
        now = time.time()
        rejected = await self.ctx.db.edits.transition(
            edit_id,
            steps.REJECT,
            decision="rejected",
            decided_by=by,
            decided_by_name=by_name[:128],
            decided_at=now,
            error_code="rejected",
            finished_at=now,
        )
        if rejected is not None:
            self.ctx.observe("rejected", {"edit_id": edit_id, "provider": rejected.provider})
        return rejected

    async def expire_approval(self, edit: Edit) -> None:
        """No admin decided within APPROVAL_TIMEOUT: expire the request and tell the member."""
        now = time.time()
        expired = await self.notices.end(
            edit,
            steps.EXPIRE_APPROVAL,
            event="approval_expired",
            decision="expired",
            decided_at=now,
            error_code="approval_expired",
            finished_at=now,
        )
        if expired is not None:
            log.info("approval request expired", extra={"edit_id": edit.id})

    async def cancel_latest(self, user_id: int, chat_id: int) -> tuple[Edit, bool] | None:
        """Cancel the newest edit of this user in this chat that is still in progress.

        Returns the cancelled edit and whether it had already been sent to the provider; None
        when there was nothing to cancel. A result arriving at the same moment either wins
        (and is delivered) or is dropped: results are only accepted from `submitting` and
        `submitted`, which CANCEL_SENT leaves.
        """
        cancellable = steps.CANCEL_UNSENT.sources | steps.CANCEL_SENT.sources
        for edit in await self.ctx.db.edits.recent(user_id, limit=CANCEL_SEARCH_DEPTH):
            if edit.chat_id != chat_id or edit.state not in cancellable:
                continue
            for step, sent in ((steps.CANCEL_UNSENT, False), (steps.CANCEL_SENT, True)):
                cancelled = await self.ctx.db.edits.transition(
                    edit.id,
                    step,
                    error_code="cancelled",
                    finished_at=time.time(),
                    next_check_at=None,
                )
                if cancelled is not None:
                    log.info("edit cancelled", extra={"edit_id": edit.id, "sent": sent})
                    return cancelled, sent
        return None
