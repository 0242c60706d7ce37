"""Submission: queued -> submitting -> submitted (or failed). Only one caller ever submits.

The photos are prepared, and the provider account's turn (its rate limit and fair order,
held in the database for every replica: bot.lifecycle.turns) and back-offs after a refusal
are waited for, while the edit is still `queued` (under a renewed lease): a crash there loses
nothing and the sweeper simply starts again; a shutdown leaves it queued for the next run.
`submitting` covers exactly the create request on the wire, so it means "the provider may
have received it": only that state is resolved by telling the user (`interrupt`), never
resubmitted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from bot.images.limits import ImageError
from bot.lifecycle.context import Lifecycle, PhotoUnavailable, Progress
from bot.lifecycle.delivery import Notices
from bot.lifecycle.failover import fail_over
from bot.lifecycle.in_line import take_turn
from bot.lifecycle.leases import Lease
from bot.lifecycle.outcome import Outcomes
from bot.providers.base import InputRejected, Provider, SubmitRequest
from bot.providers.registry import UnknownModel
from domain import steps
from domain.edit import TERMINAL_STATES, Edit, EditState
from domain.errors import InsufficientCredits, ProviderAuthError, ProviderError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Prepared:
    """An edit ready to be sent: its provider, the request and the stored input photos."""

    provider: Provider
    request: SubmitRequest
    blob_keys: list[str]


class Submission:
    """Also reports into the status message and the poll schedule, at the two moments that
    matter to the user: the provider took the task (the message says so, with the model's
    typical duration; when polling, the first status query is planned from it) and the
    provider refused it for now (a back-off of at least one status-message turn is shown as
    "busy, retrying in ~X" instead of a silent wait)."""

    def __init__(self, ctx: Lifecycle, notices: Notices, outcomes: Outcomes) -> None:
        self.ctx = ctx
        self.notices = notices
        self.outcomes = outcomes
        # Edits whose status message says the provider is busy (until they are sent).
        self._busy: set[int] = set()

    def callback_url(self, edit: Edit) -> str | None:
        base_url = self.ctx.base_url
        if base_url is None:
            return None
        url = f"{base_url}/callbacks/{edit.provider}/{edit.id}?token={edit.callback_token}"
        provider = self.ctx.registry.provider(edit.provider)
        return url if provider.accepts_callback_url(url) else None

    async def submit(
        self,
        edit_id: int,
        *,
        claimed: Edit | None = None,
        status: Awaitable[int | None] | None = None,
    ) -> Edit | None:
        """queued -> submitting -> submitted (or failed); None if someone else has it.

        `claimed`: the edit as `create(claim=True)` returned it (already leased to us).
        `status`: the "working on it" message being sent meanwhile (its message id, None if
        it could not be sent); it runs while the photos are prepared and its id is stored
        with the next state change, always before the provider is asked, so whatever ends
        the edit (delivery, failure, cancellation) finds it and clears it.
        """
        ctx = self.ctx
        noted = asyncio.ensure_future(_status_field(status))
        seconds = ctx.timing.submit_lease
        taken = claimed.lease_owner if claimed is not None else None
        lease = Lease(taken, seconds) if taken is not None else ctx.lease(seconds)
        if not ctx.submitting:
            log.info("shutting down: submission left to the next run", extra={"edit_id": edit_id})
            if claimed is not None:
                await ctx.db.edits.release(claimed.id, lease.token, **await noted)
            else:
                await noted
            return None
        edit = claimed or await ctx.db.edits.claim(
            edit_id, [EditState.QUEUED], lease.token, lease.seconds
        )
        if edit is None:
            await noted
            return None
        with ctx.leases.renewed(lease):
            return await self._submit(edit, lease.token, noted)

    async def _submit(
        self, edit: Edit, owner: str, noted: asyncio.Future[dict[str, Any]]
    ) -> Edit | None:
        """Prepare the photos, then send; the lease (`owner`) is renewed meanwhile."""
        ctx = self.ctx
        started = time.monotonic()
        try:
            prepared = await self._prepare(edit)
        except (InputRejected, ImageError, PhotoUnavailable, ProviderError, UnknownModel) as exc:
            return await self._fail(edit, exc, owner, **await noted)
        except asyncio.CancelledError:
            # Nothing was sent: start again later.
            await ctx.db.edits.release(edit.id, owner, **await noted)
            raise
        provider = prepared.provider
        status_field = await noted
        unrecorded = {"blob_keys": prepared.blob_keys, **status_field}
        attempt = 0
        tried: set[str] = set()  # providers that refused this edit (failover)
        # Waiting for the account's turn, or a back-off after a refusal, happens while the
        # edit is `queued`: a crash there leaves nothing uncertain, and a shutdown leaves the
        # edit for the next run.
        while True:
            turn = asyncio.ensure_future(take_turn(ctx, edit, owner, provider, unrecorded))
            if not await self._wait_queued(edit, owner, prepared, unrecorded, turn):
                return None
            sending = turn.result()
            if sending is None:
                # Cancelled meanwhile, or our lease was lost and another worker took over.
                if unrecorded:
                    await self._delete_blobs(prepared)
                    await self._keep_status(edit.id, status_field)
                return None
            unrecorded = {}
            try:
                task_id = await provider.submit(prepared.request)
            except InputRejected as exc:
                return await self._fail(sending, exc, owner)
            except ProviderError as exc:
                delay = provider.retry_delay(attempt, exc) if exc.retryable else None
                if delay is None:
                    moved = await fail_over(
                        ctx, sending, exc, owner, prepared.request, tried, self.callback_url
                    )
                    if moved is None:
                        return await self._fail(sending, exc, owner)
                    edit, provider, request = moved
                    prepared = _Prepared(provider, request, prepared.blob_keys)
                    attempt = 0
                    continue
                if await self._back_off(sending, owner, exc, delay, attempt) is None:
                    return None  # cancelled meanwhile, or our lease was lost
                attempt += 1
                pause = asyncio.ensure_future(asyncio.sleep(delay))
                if not await self._wait_queued(edit, owner, prepared, {}, pause):
                    return None
                continue
            except asyncio.CancelledError:
                # Cut off while the provider may have received the request: never resubmit.
                await self.interrupt(sending, owner, notify=False)
                raise
            await ctx.clear_incident(ProviderAuthError.code, scope=edit.provider)
            await ctx.clear_incident(InsufficientCredits.code, scope=edit.provider)
            return await self._record_task(edit, task_id, prepared, started, owner)

    async def _wait_queued(
        self,
        edit: Edit,
        owner: str,
        prepared: _Prepared,
        unrecorded: dict[str, Any],
        waiting: asyncio.Future[Any],
    ) -> bool:
        """Wait in `queued`; False when shutting down (the edit is left for the next run).

        A turn that came just as the shutdown began already moved the edit to `submitting`:
        it is sent, as it would have been a moment earlier."""
        try:
            if await self.ctx.unless_stopping(waiting):
                return True
        except asyncio.CancelledError:
            await self._leave_queued(edit, owner, prepared, unrecorded)
            raise
        if waiting.done() and not waiting.cancelled() and waiting.result() is not None:
            return True
        await self._leave_queued(edit, owner, prepared, unrecorded)
        return False

    async def _back_off(
        self, edit: Edit, owner: str, exc: ProviderError, delay: float, attempt: int
    ) -> Edit | None:
        """The provider refused the task, so none exists: the edit is `queued` again while it
        waits `delay` (due then, should a shutdown or a crash cut the wait short)."""
        log.warning(
            "provider refused the task, retrying",
            extra={
                "edit_id": edit.id,
                "provider": edit.provider,
                "error": exc.code,
                "attempt": attempt + 1,
                "delay": round(delay, 2),
            },
        )
        db = self.ctx.db
        queued = await db.edits.transition(
            edit.id,
            steps.BACK_OFF,
            owner=owner,
            also=db.turns.answered(edit.id),
            next_check_at=time.time() + delay,
        )
        if queued is not None:
            await self._show_busy(queued, delay)
        return queued

    async def _show_busy(self, queued: Edit, delay: float) -> None:
        status = self.outcomes.status
        interval = status.interval(queued)
        if delay < interval:
            return  # over before the message could change again

        def at_turn(current: Edit, now: float) -> Progress | None:
            """At the message's turn: say so if the wait is still long."""
            retry_at = current.next_check_at
            if current.state is not EditState.QUEUED or retry_at is None:
                return None
            return (
                Progress.of("busy", seconds=retry_at - now) if retry_at - now >= interval else None
            )

        self._busy.add(queued.id)
        await status.show_or_later(queued, Progress.of("busy", seconds=delay), at_turn)

    async def _leave_queued(
        self, edit: Edit, owner: str, prepared: _Prepared, unrecorded: dict[str, Any]
    ) -> None:
        """Stopped while waiting to send: the edit stays `queued` for the next run, which
        prepares its photos again (these are no provider's input: it refused or never saw
        them)."""
        log.info("shutting down: submission left to the next run", extra={"edit_id": edit.id})
        await self._delete_blobs(prepared)
        await self.ctx.db.edits.release(edit.id, owner, **{**unrecorded, "blob_keys": None})

    async def _delete_blobs(self, prepared: _Prepared) -> None:
        for key in prepared.blob_keys:
            await self.ctx.blobs.delete(key)

    async def _record_task(
        self, edit: Edit, task_id: str, prepared: _Prepared, started: float, owner: str
    ) -> Edit | None:
        ctx = self.ctx
        now = time.time()
        callback = prepared.request.callback_url is not None
        next_check = now + (ctx.timing.callback_grace if callback else ctx.timing.poll_interval)
        done = await ctx.db.edits.transition(
            edit.id,
            steps.RECORD_TASK,
            owner=owner,
            also=ctx.db.turns.answered(edit.id, now=now),
            task_id=task_id,
            submitted_at=now,
            next_check_at=next_check,
            lease_owner=None,
            lease_until=None,
        )
        if done is None:
            # The callback beat us to it (it moved the edit on): just record the task id.
            # Not on an edit found cut off (our lease lost, the user told): with no task id
            # its callback still delivers the result after all (LATE_SUCCESS).
            current = await ctx.db.edits.get(edit.id)
            uncertain = current is None or current.error_code in steps.UNCERTAIN_SUBMISSIONS
            done = (
                current
                if uncertain
                else await ctx.db.edits.update_fields(edit.id, task_id=task_id, submitted_at=now)
            )
        log.info(
            "edit submitted",
            extra={"edit_id": edit.id, "task_id": task_id, "provider": edit.provider},
        )
        ctx.observe(
            "submitted",
            {
                "edit_id": edit.id,
                "task_id": task_id,
                "provider": edit.provider,
                "seconds": time.monotonic() - started,
            },
        )
        if done is not None and done.state is EditState.SUBMITTED:
            await self.outcomes.submitted(done, callback=callback, news=done.id in self._busy)
        self._busy.discard(edit.id)
        return done

    async def _prepare(self, edit: Edit) -> _Prepared:
        """Fetch, normalize and store the input photos; build and check the request."""
        ctx = self.ctx
        spec = ctx.registry.model(edit.model)
        provider = ctx.registry.provider(spec.provider)
        images = [photo for photo in edit.inputs if photo.role == "image"]
        masks = [photo for photo in edit.inputs if photo.role == "mask"]
        urls: list[str] = []
        sizes: list[tuple[int, int]] = []
        keys: list[str] = []
        mask_url: str | None = None
        for photo in images + masks:
            raw = await ctx.photos.fetch(photo)
            normalized = await ctx.normalizer.normalize(
                raw, spec.image_limits, trusted_jpeg=photo.kind == "photo"
            )
            del raw
            blob = await ctx.blobs.put(normalized.data, extension=normalized.extension)
            keys.append(blob.key)
            if photo.role == "mask":
                mask_url = blob.url
            else:
                urls.append(blob.url)
                sizes.append((normalized.width, normalized.height))
        request = SubmitRequest(
            model=spec,
            prompt=edit.prompt,
            image_urls=tuple(urls),
            image_sizes=tuple(sizes),
            mask_url=mask_url,
            params=edit.params,
            callback_url=self.callback_url(edit),
        )
        provider.validate(request)
        return _Prepared(provider=provider, request=request, blob_keys=keys)

    async def _keep_status(self, edit_id: int, status_field: dict[str, Any]) -> None:
        """Record a status message that missed its state change; clear it if the edit ended
        meanwhile (e.g. cancelled), so it is not left behind."""
        if not status_field:
            return
        edit = await self.ctx.db.edits.update_fields(edit_id, **status_field)
        if edit is not None and edit.state in TERMINAL_STATES:
            await self.ctx.notifier.clear_status(edit)

    async def _fail(self, edit: Edit, exc: Exception, owner: str, **fields: Any) -> Edit | None:
        ctx = self.ctx
        self._busy.discard(edit.id)
        code, detail = _describe(exc)
        log.warning(
            "submission failed",
            extra={"edit_id": edit.id, "error": code, "detail": detail[:300]},
        )
        if isinstance(exc, ProviderAuthError | InsufficientCredits):
            await ctx.incident(code, f"{edit.provider}: {detail}", scope=edit.provider)
        failed = await self.notices.end(
            edit,
            steps.FAIL_SUBMISSION,
            owner=owner,
            event="failed",
            error_code=code,
            error_detail=detail[:1000],
            finished_at=time.time(),
            **fields,
        )
        if failed is None:
            await self._keep_status(edit.id, fields)
        return failed

    async def recover(self, edit: Edit) -> None:
        """An edit left `submitting` by a process that died (its lease ran out)."""
        lease = self.ctx.lease(self.ctx.timing.notify_lease)
        claimed = await self.ctx.db.edits.claim(
            edit.id, [EditState.SUBMITTING], lease.token, lease.seconds
        )
        if claimed is not None:
            await self.interrupt(claimed, lease.token)

    async def interrupt(self, edit: Edit, owner: str, *, notify: bool = True) -> None:
        """A submission cut off by a crash: never resubmit silently, tell the user instead."""
        log.warning("submission interrupted", extra={"edit_id": edit.id, "provider": edit.provider})
        await self.notices.end(
            edit,
            steps.INTERRUPT,
            owner=owner,
            event="failed",
            notify=notify,
            error_code="submit_interrupted",
            finished_at=time.time(),
        )


async def _status_field(status: Awaitable[int | None] | None) -> dict[str, Any]:
    """`{"status_message_id": id}` once the status message is out; {} without one."""
    message_id = None if status is None else await status
    return {} if message_id is None else {"status_message_id": message_id}


def _describe(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, InputRejected):
        return f"input:{exc.code}", json.dumps(exc.params, default=str)
    if isinstance(exc, ImageError):
        return f"image:{exc.code}", json.dumps(exc.params, default=str)
    if isinstance(exc, PhotoUnavailable):
        return f"photo:{exc.code}", str(exc)
    if isinstance(exc, ProviderError):
        code = exc.code
        if exc.param:
            return f"{code}:{exc.param}"[:64], exc.detail
        return code, exc.detail
    if isinstance(exc, UnknownModel):
        return "model_unavailable", str(exc)
    return "internal", repr(exc)
