"""Delivery: the result to the chat (succeeded -> delivered), or the failure notice, once each.

Both take a lease first, so only one worker of one replica sends, and keep it renewed while
they send (a flood wait of minutes included); a chat that blocked the bot gets nothing more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from bot.lifecycle.context import (
    DELIVERY_BACKOFF_MAX,
    MAX_DELIVERY_ATTEMPTS,
    ChatUnreachable,
    DeliveryFailed,
    Lifecycle,
)
from domain import steps
from domain.edit import NOTIFY_STATES, Edit, EditState
from domain.steps import Step

log = logging.getLogger(__name__)


class Notices:
    """Tells the user about a failure-like end (failed, expired, rejected), exactly once."""

    def __init__(self, ctx: Lifecycle) -> None:
        self.ctx = ctx

    async def end(
        self,
        edit: Edit,
        step: Step,
        *,
        event: str | None,
        notify: bool = True,
        owner: str | None = None,
        **fields: Any,
    ) -> Edit | None:
        """End an edit without a result: apply `step`, record `event`, tell the user once.

        `owner`: the lease the step is taken under. None when the step did not apply
        (someone else ended or moved the edit first, or took the lease over); then nothing
        is recorded or sent.
        """
        ended = await self.ctx.db.edits.transition(edit.id, step, owner=owner, **fields)
        if ended is None:
            return None
        if event is not None:
            observed: dict[str, Any] = {"edit_id": edit.id, "provider": edit.provider}
            if step.target is EditState.FAILED:
                observed["code"] = ended.error_code
            self.ctx.observe(event, observed)
        if notify:
            await self.notify(ended.id)
        return ended

    async def notify(self, edit_id: int) -> None:
        """Tell the user about a failure-like end, once."""
        ctx = self.ctx
        lease = ctx.lease(ctx.timing.notify_lease)
        claimed = await ctx.db.edits.claim_for_chat(
            edit_id, list(NOTIFY_STATES), lease.token, lease.seconds
        )
        if claimed is None:
            return
        with ctx.leases.renewed(lease):
            await self._notify(*claimed, lease.token)

    async def _notify(self, edit: Edit, blocked: bool, owner: str) -> None:
        db = self.ctx.db
        if edit.notified_at is not None:
            await db.edits.release(edit.id, owner)
            return
        if blocked:
            await db.balances.release(edit.id)
            await db.edits.mark_notified(edit.id, owner)  # nothing more is sent to a blocked chat
            return
        # The one place a failure-like end reaches the user: its reservation comes back
        # here (once, keyed by the edit), so the notice can say so.
        back = await db.balances.release(edit.id)
        returned = 0 if back is None else back.amount + back.free
        try:
            await self.ctx.notifier.notify_failure(edit, returned)
        except ChatUnreachable as exc:
            await db.chats.block(edit.chat_id, str(exc)[:200])
        except DeliveryFailed as exc:
            log.warning("failure notice not sent", extra={"edit_id": edit.id, "error": exc.code})
            if not exc.permanent:
                await db.edits.release(edit.id, owner)
                return
        except asyncio.CancelledError:
            await db.edits.release(edit.id, owner)
            raise
        await db.edits.mark_notified(edit.id, owner)


class Delivery:
    """succeeded -> delivered (or undeliverable, or failed after too many attempts)."""

    def __init__(self, ctx: Lifecycle, notices: Notices) -> None:
        self.ctx = ctx
        self.notices = notices

    async def deliver(self, edit_id: int) -> None:
        """succeeded -> delivered, with a lease so only one worker sends.

        The state change follows the send immediately (the status message is removed only
        afterwards), keeping the window in which a crash could repeat a send as small as the
        Bot API round trip itself.
        """
        ctx = self.ctx
        lease = ctx.lease(ctx.timing.delivery_lease)
        claimed = await ctx.db.edits.claim_for_chat(
            edit_id, [EditState.SUCCEEDED], lease.token, lease.seconds
        )
        if claimed is None:
            return
        with ctx.leases.renewed(lease):
            await self._deliver(*claimed, lease.token)

    async def _deliver(self, edit: Edit, blocked: bool, owner: str) -> None:
        ctx = self.ctx
        if blocked:
            await self._undeliverable(edit, owner, "the chat blocked the bot earlier")
            return
        started = time.monotonic()
        try:
            delivered = await ctx.notifier.deliver_result(edit)
        except ChatUnreachable as exc:
            await ctx.db.chats.block(edit.chat_id, str(exc)[:200])
            await self._undeliverable(edit, owner, str(exc))
            return
        except DeliveryFailed as exc:
            await self._failed(edit, owner, exc)
            return
        except asyncio.CancelledError:
            await ctx.db.edits.release(edit.id, owner)  # the next run sends it (at least once)
            raise
        # The messages sent go on record ("Remove" deletes those) in the same transaction,
        # also if the lease turns out lost: they are out either way.
        sent = delivered.message_ids
        record = ctx.db.result_messages.recording(edit.id, edit.chat_id, sent) if sent else None
        done = await ctx.db.edits.transition(
            edit.id, steps.DELIVER, owner=owner, also=record, result_file_ids=delivered.file_ids
        )
        if done is None:
            # Only a worker that stalled past its lease gets here: another one took over.
            log.warning("delivery lease lost", extra={"edit_id": edit.id})
            return
        log.info("edit delivered", extra={"edit_id": edit.id, "task_id": edit.task_id})
        ctx.observe(
            "delivered",
            {"edit_id": edit.id, "provider": edit.provider, "seconds": time.monotonic() - started},
        )
        await ctx.notifier.clear_status(edit)

    async def _undeliverable(self, edit: Edit, owner: str, reason: str) -> None:
        log.warning(
            "chat unreachable, result not delivered",
            extra={"edit_id": edit.id, "chat_id": edit.chat_id, "reason": reason[:200]},
        )
        await self.ctx.db.edits.transition(
            edit.id, steps.GIVE_UP, owner=owner, error_code="chat_unreachable"
        )
        self.ctx.observe("undeliverable", {"edit_id": edit.id, "provider": edit.provider})

    async def _failed(self, edit: Edit, owner: str, exc: DeliveryFailed) -> None:
        attempts = edit.delivery_attempts + 1
        log.warning(
            "delivery failed",
            extra={
                "edit_id": edit.id,
                "error": exc.code,
                "attempt": attempts,
                "detail": str(exc)[:300],
            },
        )
        self.ctx.observe("delivery_failed", {"edit_id": edit.id, "provider": edit.provider})
        if exc.permanent or attempts >= MAX_DELIVERY_ATTEMPTS:
            await self.notices.end(
                edit,
                steps.FAIL_DELIVERY,
                owner=owner,
                event=None,  # counted as delivery_failed above
                error_code=exc.code,
                error_detail=str(exc)[:1000],
                delivery_attempts=attempts,
            )
            return
        await self.ctx.db.edits.release(
            edit.id,
            owner,
            delivery_attempts=attempts,
            next_check_at=time.time() + min(DELIVERY_BACKOFF_MAX, 2.0**attempts),
        )
