"""Intake: a request checked against the model's limits and recorded as a new edit.

Nothing is spent on a request that cannot work; the insert is keyed by chat and message, so
a repeated Telegram update records nothing new.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from bot.lifecycle.context import Lifecycle
from bot.providers.base import InputRejected, SubmitRequest
from bot.providers.registry import UnknownModel
from domain.edit import Edit, EditState, InputPhoto, NewEdit, new_callback_token
from storage.edits import InsertGuard


class Intake:
    def __init__(self, ctx: Lifecycle) -> None:
        self.ctx = ctx

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
        registry = self.ctx.registry
        try:
            spec = registry.model(model_id)
        except UnknownModel:
            raise InputRejected("model_unavailable", model=model_id) from None
        if has_mask and not spec.supports_mask:
            raise InputRejected("mask_unsupported", model=spec.title)
        provider = registry.provider(spec.provider)
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
        cost_estimate: float | None = None,
        thread_id: int | None = None,
    ) -> Edit | None:
        """Record a new edit; None if this request was recorded before (a repeated update).

        `guard`: the group's limits, re-checked by the insert (LimitReached if they no longer
        hold); `user_name` is kept for the moderation log; `cost_estimate` is the expected
        credits, reserved against the spending limits until the real figure is known;
        `thread_id` the forum topic every answer goes to.

        `unblock_chat`: the chat wrote to the bot, so it no longer blocks it. `claim`: a
        queued edit is created leased to this worker, which must then pass it to `submit`
        (as `claimed`) at once; while shutting down it is left for the next run instead.
        """
        ctx = self.ctx
        spec = ctx.registry.model(model_id)
        leased = claim and state is EditState.QUEUED and ctx.submitting
        lease = ctx.lease(ctx.timing.submit_lease)
        edit = await ctx.db.edits.create(
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
                callback_token=new_callback_token(),
                inputs=inputs,
                params=dict(params),
                state=state,
                lease_owner=lease.token if leased else None,
                lease_until=time.time() + lease.seconds if leased else None,
                user_name=user_name[:128] if user_name else None,
                cost_estimate=cost_estimate,
                thread_id=thread_id,
            ),
            unblock_chat=unblock_chat,
            guard=guard,
        )
        if edit is not None:
            ctx.observe("created", {"edit_id": edit.id, "provider": edit.provider})
        return edit
