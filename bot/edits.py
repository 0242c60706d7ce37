"""The edit lifecycle: create, submit, complete, fail, deliver, recover.

No Telegram or HTTP details live here: photos come through a `PhotoSource`, results and
failures leave through a `Notifier`, providers sit behind the `Provider` protocol. Every
step is a conditional state change in the database (`Database.transition`/`claim`), so a
repeated callback, a restart or a second replica never repeats a step.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from bot.providers.base import InputRejected, Provider, SubmitRequest, TaskState, TaskStatus
from bot.providers.errors import (
    CallbackRejected,
    InsufficientCredits,
    ProviderAuthError,
    ProviderError,
)
from bot.providers.registry import ProviderRegistry, UnknownModel
from bot.tasks import TaskTracker, WorkQueue
from storage.blobs import BlobStore
from storage.db import (
    NOTIFY_STATES,
    TERMINAL_STATES,
    Database,
    Edit,
    EditState,
    InputPhoto,
    InsertGuard,
    NewEdit,
    Settled,
)
from storage.images import ImageError, normalize

log = logging.getLogger(__name__)

SUBMIT_LEASE = 300.0
DELIVERY_LEASE = 180.0
NOTIFY_LEASE = 60.0
POLL_LEASE = 60.0
# Submissions that may or may not have reached the provider (the user was told so).
UNCERTAIN_SUBMISSIONS = ("submit_uncertain", "submit_interrupted")
# Edits whose task's outcome is still to be recorded.
AWAITING_OUTCOME = (EditState.SUBMITTING, EditState.SUBMITTED)
MAX_DELIVERY_ATTEMPTS = 10
DELIVERY_BACKOFF_MAX = 120.0
BLOB_GRACE = 600.0
# Deliveries and failure notices after a callback: this many at a time, the rest queued (a
# full queue leaves them to the sweeper, which finds every succeeded or unnotified edit).
OUTBOX_WORKERS = 32
OUTBOX_CAPACITY = 10_000


class PhotoUnavailable(Exception):
    """An input photo could not be fetched from Telegram (`code` says why)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code


class DeliveryFailed(Exception):
    """Delivering a result failed. `permanent` failures are not retried."""

    def __init__(self, code: str, detail: str = "", *, permanent: bool = False) -> None:
        super().__init__(detail or code)
        self.code = code
        self.permanent = permanent


class ChatUnreachable(Exception):
    """The chat blocked the bot or is gone: stop sending there."""


class PhotoSource(Protocol):
    async def fetch(self, photo: InputPhoto) -> bytes:
        """The bytes of an input photo."""


class Notifier(Protocol):
    """The user-facing side (Telegram)."""

    async def deliver_result(self, edit: Edit) -> list[str]:
        """Send the results; return their Telegram file ids."""

    async def notify_failure(self, edit: Edit) -> None:
        """Tell the user their edit ended without a result, and why."""

    async def alert_admins(self, incident: str, detail: str) -> None:
        """Tell the bot's operators about a problem they must fix."""

    async def clear_status(self, edit: Edit) -> None:
        """Remove the "working on it" message once the result is out (best effort)."""


@dataclass(frozen=True)
class Timing:
    poll_interval: float = 3.0
    poll_max_interval: float = 30.0
    callback_grace: float = 120.0
    task_timeout: float = 900.0
    queued_grace: float = 10.0  # the handler submits at once; the sweeper picks up the rest
    blob_grace: float = BLOB_GRACE  # input photos outlive their edit this long (retries)
    approval_timeout: float = 3600.0  # a group request waiting for an admin expires then


@dataclass(frozen=True)
class _Prepared:
    """An edit ready to be sent: its provider, the request and the stored input photos."""

    provider: Provider
    request: SubmitRequest
    blob_keys: list[str]


@dataclass(frozen=True)
class CallbackOutcome:
    edit_id: int
    changed: bool
    state: EditState


Observer = Callable[[str, Mapping[str, Any]], None]


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
    ) -> None:
        self.db = db
        self.registry = registry
        self.blobs = blobs
        self.photos = photos
        self.notifier = notifier
        self.base_url = base_url
        self.timing = timing
        self.tracker = tracker
        self.owner = f"{uuid.uuid4().hex[:12]}"
        self._observe = observe or (lambda _event, _fields: None)
        self._incidents: dict[str, float] = {}
        self._submitting = True
        self._started_at = time.time()
        self._outbox = WorkQueue(
            tracker, name="outbox", workers=OUTBOX_WORKERS, capacity=OUTBOX_CAPACITY
        )

    def stop_submitting(self) -> None:
        """Shutting down: new edits wait in `queued` for the next run to submit them.

        A task created now would be fetching its input photo while this process (which may
        be the one serving it) goes away; the next run submits it and serves the photo.
        """
        self._submitting = False

    # Creation ----------------------------------------------------------------------------------

    def check_request(
        self,
        model_id: str,
        prompt: str,
        image_count: int,
        params: Mapping[str, Any],
        *,
        has_mask: bool = False,
    ) -> None:
        """Validate a request against the model's documented limits; raises InputRejected."""
        try:
            spec = self.registry.model(model_id)
        except UnknownModel:
            raise InputRejected("model_unavailable", model=model_id) from None
        if has_mask and not spec.supports_mask:
            raise InputRejected("mask_unsupported", model=spec.title)
        provider = self.registry.provider(spec.provider)
        provider.validate(
            SubmitRequest(
                model=spec,
                prompt=prompt,
                image_urls=tuple("https://placeholder.invalid/" for _ in range(image_count)),
                params=params,
            )
        )

    async def create(
        self,
        *,
        dedupe_key: str,
        chat_id: int,
        chat_type: str,
        user_id: int,
        message_id: int,
        lang: str,
        model_id: str,
        prompt: str,
        inputs: list[InputPhoto],
        params: Mapping[str, Any],
        state: EditState = EditState.QUEUED,
        unblock_chat: bool = False,
        claim: bool = False,
        user_name: str | None = None,
        guard: InsertGuard | None = None,
    ) -> Edit | None:
        """Record a new edit; None if this request was recorded before (a repeated update).

        `guard`: the group's limits, re-checked by the insert (LimitReached if they no longer
        hold); `user_name` is kept for the moderation log.

        `unblock_chat`: the chat wrote to the bot, so it no longer blocks it. `claim`: a
        queued edit is created leased to this worker, which must then pass it to `submit`
        (as `claimed`) at once; while shutting down it is left for the next run instead.
        """
        spec = self.registry.model(model_id)
        leased = claim and state is EditState.QUEUED and self._submitting
        edit = await self.db.create_edit(
            NewEdit(
                dedupe_key=dedupe_key,
                chat_id=chat_id,
                chat_type=chat_type,
                user_id=user_id,
                message_id=message_id,
                lang=lang,
                provider=spec.provider,
                model=spec.id,
                prompt=prompt,
                callback_token=secrets.token_urlsafe(24),
                inputs=inputs,
                params=dict(params),
                state=state,
                lease_owner=self.owner if leased else None,
                lease_until=time.time() + SUBMIT_LEASE if leased else None,
                user_name=user_name[:128] if user_name else None,
            ),
            unblock_chat=unblock_chat,
            guard=guard,
        )
        if edit is not None:
            self._observe("created", {"edit_id": edit.id, "provider": edit.provider})
        return edit

    # Submission --------------------------------------------------------------------------------

    def callback_url(self, edit: Edit) -> str | None:
        if self.base_url is None:
            return None
        url = f"{self.base_url}/callbacks/{edit.provider}/{edit.id}?token={edit.callback_token}"
        provider = self.registry.provider(edit.provider)
        return url if provider.accepts_callback_url(url) else None

    async def submit(
        self,
        edit_id: int,
        *,
        claimed: Edit | None = None,
        status: Awaitable[int | None] | None = None,
    ) -> Edit | None:
        """queued -> submitting -> submitted (or failed). Only one caller ever submits.

        The photos are prepared while the edit is still `queued` (under a lease): a crash
        there loses nothing and the sweeper simply starts again. `submitting` is entered
        right before the create request, so it means exactly "the provider may have
        received it": only that state is resolved by telling the user, never resubmitted.

        `claimed`: the edit as `create(claim=True)` returned it (already leased to us).
        `status`: the "working on it" message being sent meanwhile (its message id, None if
        it could not be sent); it runs while the photos are prepared and its id is stored
        with the next state change, always before the provider is asked, so whatever ends
        the edit (delivery, failure, cancellation) finds it and clears it.
        """
        noted = asyncio.ensure_future(_status_field(status))
        if not self._submitting:
            log.info("shutting down: submission left to the next run", extra={"edit_id": edit_id})
            if claimed is not None:
                await self.db.release(claimed.id, self.owner, **await noted)
            else:
                await noted
            return None
        edit = claimed or await self.db.claim(edit_id, [EditState.QUEUED], self.owner, SUBMIT_LEASE)
        if edit is None:
            await noted
            return None
        started = time.monotonic()
        try:
            prepared = await self._prepare(edit)
        except (InputRejected, ImageError, PhotoUnavailable, ProviderError, UnknownModel) as exc:
            return await self._fail_submission(edit, exc, **await noted)
        except asyncio.CancelledError:
            # Nothing was sent: start again later.
            await self.db.release(edit.id, self.owner, **await noted)
            raise
        status_field = await noted
        sending = await self.db.transition(
            edit.id,
            [EditState.QUEUED],
            EditState.SUBMITTING,
            blob_keys=prepared.blob_keys,
            lease_owner=self.owner,
            lease_until=time.time() + SUBMIT_LEASE,
            **status_field,
        )
        if sending is None:
            # Cancelled meanwhile, or our lease ran out and another worker took over.
            for key in prepared.blob_keys:
                await self.blobs.delete(key)
            await self._keep_status(edit.id, status_field)
            return None
        try:
            task_id = await prepared.provider.submit(prepared.request)
        except (InputRejected, ProviderError) as exc:
            return await self._fail_submission(sending, exc)
        except asyncio.CancelledError:
            # Cut off while the provider may have received the request: never resubmit.
            await self._interrupted(sending, notify=False)
            raise
        self.clear_incident(ProviderAuthError.code)
        self.clear_incident(InsufficientCredits.code)
        now = time.time()
        callback = prepared.request.callback_url is not None
        next_check = now + (self.timing.callback_grace if callback else self.timing.poll_interval)
        done = await self.db.transition(
            edit.id,
            [EditState.SUBMITTING],
            EditState.SUBMITTED,
            task_id=task_id,
            submitted_at=now,
            next_check_at=next_check,
            lease_owner=None,
            lease_until=None,
        )
        if done is None:
            # The callback beat us to it (it moved the edit on); just record the task id.
            done = await self.db.transition(
                edit.id, list(EditState), None, task_id=task_id, submitted_at=now
            )
        log.info(
            "edit submitted",
            extra={"edit_id": edit.id, "task_id": task_id, "provider": edit.provider},
        )
        self._observe(
            "submitted",
            {
                "edit_id": edit.id,
                "task_id": task_id,
                "provider": edit.provider,
                "seconds": time.monotonic() - started,
            },
        )
        return done

    async def _prepare(self, edit: Edit) -> _Prepared:
        """Fetch, normalize and store the input photos; build and check the request."""
        spec = self.registry.model(edit.model)
        provider = self.registry.provider(spec.provider)
        images = [photo for photo in edit.inputs if photo.role == "image"]
        masks = [photo for photo in edit.inputs if photo.role == "mask"]
        urls: list[str] = []
        sizes: list[tuple[int, int]] = []
        keys: list[str] = []
        mask_url: str | None = None
        for photo in images + masks:
            raw = await self.photos.fetch(photo)
            normalized = await asyncio.to_thread(
                normalize, raw, spec.image_limits, trusted_jpeg=photo.kind == "photo"
            )
            del raw
            blob = await self.blobs.put(normalized.data, extension=normalized.extension)
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
        edit = await self.db.transition(edit_id, list(EditState), None, **status_field)
        if edit is not None and edit.state in TERMINAL_STATES:
            await self.notifier.clear_status(edit)

    async def _fail_submission(self, edit: Edit, exc: Exception, **fields: Any) -> Edit | None:
        code, detail = _describe(exc)
        log.warning(
            "submission failed",
            extra={"edit_id": edit.id, "error": code, "detail": detail[:300]},
        )
        if isinstance(exc, ProviderAuthError | InsufficientCredits):
            await self._incident(code, f"{edit.provider}: {detail}")
        failed = await self.db.transition(
            edit.id,
            [EditState.QUEUED, EditState.SUBMITTING],
            EditState.FAILED,
            error_code=code,
            error_detail=detail[:1000],
            finished_at=time.time(),
            **fields,
        )
        if failed is not None:
            self._observe("failed", {"edit_id": edit.id, "provider": edit.provider, "code": code})
            await self.notify(failed.id)
        else:
            await self._keep_status(edit.id, fields)
        return failed

    async def _incident(self, code: str, detail: str, *, quiet_period: float = 3600.0) -> None:
        """Alert the operators once per incident, not once per edit."""
        now = time.time()
        if now - self._incidents.get(code, 0.0) < quiet_period:
            return
        self._incidents[code] = now
        try:
            await self.notifier.alert_admins(code, detail)
        except Exception:
            log.exception("could not alert admins", extra={"incident": code})

    def clear_incident(self, code: str) -> None:
        self._incidents.pop(code, None)

    # Outcomes (callbacks and polling) --------------------------------------------------------

    async def handle_callback(
        self, provider_name: str, edit_id: int, token: str, body: Any, headers: Mapping[str, str]
    ) -> CallbackOutcome:
        """Authenticate a provider callback and apply it once; raises CallbackRejected.

        The usual case, a task's outcome for an edit waiting for it, is one statement: the
        state change names the provider, token and task id in its condition. Anything else
        (a repeat, a bad token, a body needing the stored task id to verify) falls back to
        looking the edit up first, which also says which refusal applies.
        """
        settled = await self._settle_callback(provider_name, edit_id, token, body, headers)
        if settled is not None:
            return settled
        edit = await self.db.get_edit(edit_id)
        if edit is None or edit.provider != provider_name:
            raise CallbackRejected("unknown edit", status=404)
        if not secrets.compare_digest(edit.callback_token.encode(), token.encode()):
            raise CallbackRejected("bad token", status=403)
        provider = self.registry.provider(provider_name)
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

    async def _settle_callback(
        self, provider_name: str, edit_id: int, token: str, body: Any, headers: Mapping[str, str]
    ) -> CallbackOutcome | None:
        """The one-statement path of `handle_callback`; None: take the full path."""
        provider = self.registry.providers.get(provider_name)
        if provider is None:
            return None
        try:
            status = provider.parse_callback(body, headers, task_id=None)
        except CallbackRejected:
            return None  # the full path looks the edit up first: 404/403 before 400/401
        if not status.state.finished:
            return None
        to_state, fields = _outcome(status)
        updated = await self.db.settle_callback(
            edit_id,
            AWAITING_OUTCOME,
            to_state,
            provider=provider_name,
            callback_token=token,
            task_id=status.task_id or None,
            **fields,
        )
        if updated is None:
            return None
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
            self._observe("succeeded", {"edit_id": edit.id, "provider": edit.provider})
            self._outbox.submit(partial(self.deliver, edit.id))
        else:
            self._observe(
                "failed", {"edit_id": edit.id, "provider": edit.provider, "code": edit.error_code}
            )
            self._outbox.submit(partial(self.notify, edit.id))

    async def apply_status(self, edit: Edit, status: TaskStatus) -> Edit | None:
        """Record a finished task once; schedule delivery or the failure message."""
        if not status.state.finished:
            return None
        uncertain = (
            edit.state is EditState.FAILED
            and edit.error_code in UNCERTAIN_SUBMISSIONS
            and edit.task_id is None
        )
        if edit.state not in AWAITING_OUTCOME and not uncertain:
            return None  # settled before (the edit was just read; it cannot go back)
        to_state, fields = _outcome(status)
        if edit.task_id is None and status.task_id:
            fields["task_id"] = status.task_id
        if to_state is EditState.SUCCEEDED:
            updated = await self.db.transition(edit.id, AWAITING_OUTCOME, to_state, **fields)
            if updated is None and edit.task_id is None and status.task_id:
                # The user was told we could not tell whether the task started (the create
                # request timed out or was cut off); the provider's authenticated callback
                # says it did. Deliver the result after all rather than lose it.
                updated = await self.db.transition(
                    edit.id,
                    [EditState.FAILED],
                    EditState.SUCCEEDED,
                    error_codes=UNCERTAIN_SUBMISSIONS,
                    **{**fields, "error_code": None, "error_detail": None},
                )
                if updated is not None:
                    log.info(
                        "uncertain submission completed after all",
                        extra={"edit_id": edit.id, "task_id": status.task_id},
                    )
        else:
            updated = await self.db.transition(edit.id, AWAITING_OUTCOME, to_state, **fields)
        if updated is not None:
            self._settled(updated)
        return updated

    async def poll(self, edit: Edit) -> None:
        """Ask the provider about a submitted task whose outcome is due."""
        claimed = await self.db.claim(edit.id, [EditState.SUBMITTED], self.owner, POLL_LEASE)
        if claimed is None or claimed.task_id is None:
            return
        try:
            status = await self._query(claimed, claimed.task_id)
        except asyncio.CancelledError:
            await self.db.release(claimed.id, self.owner)
            raise
        if status.state.finished:
            if status.task_id and status.task_id != claimed.task_id:
                log.error(
                    "status answer for another task",
                    extra={"edit_id": edit.id, "task_id": claimed.task_id},
                )
            else:
                await self.apply_status(claimed, status)
                return
        now = time.time()
        if claimed.submitted_at and now - claimed.submitted_at > self.timing.task_timeout:
            await self._expire(claimed)
            return
        delay = min(
            self.timing.poll_max_interval,
            self.timing.poll_interval * (1.5 ** min(claimed.poll_count, 20)),
        )
        await self.db.release(
            claimed.id, self.owner, next_check_at=now + delay, poll_count=claimed.poll_count + 1
        )

    async def _query(self, edit: Edit, task_id: str) -> TaskStatus:
        """The provider's view of a task; a failed query counts as "still running"."""
        provider = self.registry.provider(edit.provider)
        try:
            status = await provider.status(task_id)
        except ProviderError as exc:
            log.warning(
                "status query failed",
                extra={"edit_id": edit.id, "task_id": task_id, "error": exc.code},
            )
            status = TaskStatus(state=TaskState.RUNNING)
        self._observe("polled", {"edit_id": edit.id, "provider": edit.provider})
        return status

    async def _expire(self, edit: Edit) -> None:
        """TASK_TIMEOUT passed without an outcome: give up and tell the user."""
        expired = await self.db.transition(
            edit.id,
            [EditState.SUBMITTED],
            EditState.EXPIRED,
            error_code="timeout",
            finished_at=time.time(),
        )
        if expired is not None:
            log.warning("task timed out", extra={"edit_id": edit.id, "task_id": edit.task_id})
            self._observe("expired", {"edit_id": edit.id, "provider": edit.provider})
            await self.notify(expired.id)

    # Delivery ----------------------------------------------------------------------------------

    async def deliver(self, edit_id: int) -> None:
        """succeeded -> delivered, with a lease so only one worker sends.

        The state change follows the send immediately (the status message is removed only
        afterwards), keeping the window in which a crash could repeat a send as small as the
        Bot API round trip itself.
        """
        claimed = await self.db.claim_for_chat(
            edit_id, [EditState.SUCCEEDED], self.owner, DELIVERY_LEASE
        )
        if claimed is None:
            return
        edit, blocked = claimed
        if blocked:
            await self._undeliverable(edit, "the chat blocked the bot earlier")
            return
        started = time.monotonic()
        try:
            file_ids = await self.notifier.deliver_result(edit)
        except ChatUnreachable as exc:
            await self.db.block_chat(edit.chat_id, str(exc)[:200])
            await self._undeliverable(edit, str(exc))
            return
        except DeliveryFailed as exc:
            await self._delivery_failed(edit, exc)
            return
        except asyncio.CancelledError:
            await self.db.release(edit.id, self.owner)  # the next run sends it (at least once)
            raise
        await self.db.transition(
            edit.id,
            [EditState.SUCCEEDED],
            EditState.DELIVERED,
            result_file_ids=file_ids,
        )
        log.info("edit delivered", extra={"edit_id": edit.id, "task_id": edit.task_id})
        self._observe(
            "delivered",
            {"edit_id": edit.id, "provider": edit.provider, "seconds": time.monotonic() - started},
        )
        await self.notifier.clear_status(edit)

    async def _undeliverable(self, edit: Edit, reason: str) -> None:
        log.warning(
            "chat unreachable, result not delivered",
            extra={"edit_id": edit.id, "chat_id": edit.chat_id, "reason": reason[:200]},
        )
        await self.db.transition(
            edit.id,
            [EditState.SUCCEEDED],
            EditState.UNDELIVERABLE,
            error_code="chat_unreachable",
        )
        self._observe("undeliverable", {"edit_id": edit.id, "provider": edit.provider})

    async def _delivery_failed(self, edit: Edit, exc: DeliveryFailed) -> None:
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
        self._observe("delivery_failed", {"edit_id": edit.id, "provider": edit.provider})
        if exc.permanent or attempts >= MAX_DELIVERY_ATTEMPTS:
            failed = await self.db.transition(
                edit.id,
                [EditState.SUCCEEDED],
                EditState.FAILED,
                error_code=exc.code,
                error_detail=str(exc)[:1000],
                delivery_attempts=attempts,
            )
            if failed is not None:
                await self.notify(failed.id)
            return
        await self.db.release(
            edit.id,
            self.owner,
            delivery_attempts=attempts,
            next_check_at=time.time() + min(DELIVERY_BACKOFF_MAX, 2.0**attempts),
        )

    async def notify(self, edit_id: int) -> None:
        """Tell the user about a failure-like end, once."""
        claimed = await self.db.claim_for_chat(
            edit_id, list(NOTIFY_STATES), self.owner, NOTIFY_LEASE
        )
        if claimed is None:
            return
        edit, blocked = claimed
        if edit.notified_at is not None:
            await self.db.release(edit.id, self.owner)
            return
        if blocked:
            await self.db.mark_notified(edit.id)  # nothing more is sent to a blocked chat
            return
        try:
            await self.notifier.notify_failure(edit)
        except ChatUnreachable as exc:
            await self.db.block_chat(edit.chat_id, str(exc)[:200])
        except DeliveryFailed as exc:
            log.warning("failure notice not sent", extra={"edit_id": edit.id, "error": exc.code})
            if not exc.permanent:
                await self.db.release(edit.id, self.owner)
                return
        except asyncio.CancelledError:
            await self.db.release(edit.id, self.owner)
            raise
        await self.db.mark_notified(edit.id)

    # Approval (group moderation) -------------------------------------------------------------

    async def approve(self, edit_id: int, *, by: int, by_name: str) -> Edit | None:
        """awaiting_approval -> queued, recording who decided (the caller then submits it).

        One conditional UPDATE: of two admins pressing at once, or an admin and the expiry,
        exactly one wins; None for the others.
        """
        approved = await self.db.transition(
            edit_id,
            [EditState.AWAITING_APPROVAL],
            EditState.QUEUED,
            decision="approved",
            decided_by=by,
            decided_by_name=by_name[:128],
            decided_at=time.time(),
        )
        if approved is not None:
            self._observe("approved", {"edit_id": edit_id, "provider": approved.provider})
        return approved

    async def reject(self, edit_id: int, *, by: int, by_name: str) -> Edit | None:
        """awaiting_approval -> rejected: nothing was fetched or sent, nothing is spent."""
        now = time.time()
        rejected = await self.db.transition(
            edit_id,
            [EditState.AWAITING_APPROVAL],
            EditState.REJECTED,
            decision="rejected",
            decided_by=by,
            decided_by_name=by_name[:128],
            decided_at=now,
            error_code="rejected",
            finished_at=now,
        )
        if rejected is not None:
            self._observe("rejected", {"edit_id": edit_id, "provider": rejected.provider})
        return rejected

    async def _expire_approval(self, edit: Edit) -> None:
        """No admin decided within APPROVAL_TIMEOUT: expire the request and tell the member."""
        now = time.time()
        expired = await self.db.transition(
            edit.id,
            [EditState.AWAITING_APPROVAL],
            EditState.EXPIRED,
            decision="expired",
            decided_at=now,
            error_code="approval_expired",
            finished_at=now,
        )
        if expired is not None:
            log.info("approval request expired", extra={"edit_id": edit.id})
            self._observe("approval_expired", {"edit_id": edit.id, "provider": edit.provider})
            await self.notify(expired.id)

    # Recovery ------------------------------------------------------------------------------

    async def sweep(self, *, concurrency: int = 32) -> int:
        """One pass of the recovery sweeper; returns how many edits it acted on."""
        now = time.time()
        jobs: list[Awaitable[Any]] = []
        # Queued edits get a grace period for the handler that queued them to submit them
        # itself; those left by an earlier run (e.g. queued during its shutdown) are due now.
        queued_before = max(now - self.timing.queued_grace, self._started_at)
        for edit in await self.db.due_edits(
            [EditState.QUEUED], now=now, updated_before=queued_before
        ):
            jobs.append(self.submit(edit.id))
        for edit in await self.db.due_edits(
            [EditState.SUBMITTING], now=now, updated_before=now - 5.0
        ):
            jobs.append(self._interrupted(edit))
        for edit in await self.db.due_edits([EditState.SUBMITTED], now=now):
            jobs.append(self.poll(edit))
        for edit in await self.db.due_edits([EditState.SUCCEEDED], now=now):
            jobs.append(self.deliver(edit.id))
        for edit in await self.db.unnotified(older_than=now - 2.0):
            jobs.append(self.notify(edit.id))
        for edit in await self.db.due_edits(
            [EditState.AWAITING_APPROVAL],
            now=now,
            updated_before=now - self.timing.approval_timeout,
        ):
            jobs.append(self._expire_approval(edit))
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

    async def _interrupted(self, edit: Edit, *, notify: bool = True) -> None:
        """A submission cut off by a crash: never resubmit silently, tell the user instead."""
        log.warning("submission interrupted", extra={"edit_id": edit.id, "provider": edit.provider})
        failed = await self.db.transition(
            edit.id,
            [EditState.SUBMITTING],
            EditState.FAILED,
            error_code="submit_interrupted",
            finished_at=time.time(),
        )
        if failed is not None:
            self._observe(
                "failed",
                {"edit_id": edit.id, "provider": edit.provider, "code": "submit_interrupted"},
            )
            if notify:
                await self.notify(failed.id)

    async def cleanup_blobs(self, *, grace: float | None = None) -> int:
        """Delete input photos of edits that ended more than `grace` seconds ago
        (default: `Timing.blob_grace`)."""
        removed = 0
        grace = self.timing.blob_grace if grace is None else grace
        for edit in await self.db.finished_with_blobs(before=time.time() - grace):
            for key in edit.blob_keys:
                await self.blobs.delete(key)
                removed += 1
            await self.db.transition(edit.id, [edit.state], None, blob_keys=None)
        return removed


def _outcome(status: TaskStatus) -> tuple[EditState, dict[str, Any]]:
    """The state and fields that record a finished task's outcome."""
    fields: dict[str, Any] = {
        "finished_at": time.time(),
        "credits": status.credits_used,
        "lease_owner": None,
        "lease_until": None,
        "next_check_at": None,
    }
    if status.state is TaskState.SUCCEEDED:
        return EditState.SUCCEEDED, {**fields, "result_urls": list(status.result_urls)}
    code = f"task_failed:{status.error_code}" if status.error_code else "task_failed"
    return EditState.FAILED, {
        **fields,
        "error_code": code[:64],
        "error_detail": (status.error_message or "")[:1000],
    }


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
