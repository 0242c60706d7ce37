"""Failover: a create request the provider refused goes to the same model elsewhere.

Only refusals that prove the provider created no task move an edit: a wrong or blocked key
(401/403), no credits (402), and maintenance, 5xx or 429 once the retries are spent. A create
request that timed out after it was sent (`SubmitUncertain`) may have made a task, and a
refused parameter would be refused elsewhere too: those end the edit as before. The move is
one step (`FAIL_OVER`, submitting -> queued) taken under the submission's lease, so an edit
has at most one task at any time and never two paid ones.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from bot.lifecycle.context import Lifecycle
from bot.providers.base import Provider, SubmitRequest
from domain import steps
from domain.edit import Edit
from domain.errors import (
    InsufficientCredits,
    ProviderAuthError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)

log = logging.getLogger(__name__)

REFUSALS = (ProviderAuthError, InsufficientCredits, ProviderUnavailable, RateLimited)
# The operator must act on these even when another provider took the edit over.
ALERTING = (ProviderAuthError, InsufficientCredits)


async def fail_over(
    ctx: Lifecycle,
    edit: Edit,
    exc: ProviderError,
    owner: str,
    request: SubmitRequest,
    tried: set[str],
    callback_url: Callable[[Edit], str | None],
) -> tuple[Edit, Provider, SubmitRequest] | None:
    """Move `edit` (submitting, refused with `exc`) to the next provider of its model.

    Returns the moved edit with its new provider and request (the same stored photos: one
    catalog entry takes the same photos everywhere), or None when there is nowhere to go,
    or the edit was taken from us meanwhile (the caller then ends it as without failover,
    which in turn finds nothing to do)."""
    if not isinstance(exc, REFUSALS):
        return None
    tried.add(edit.provider)
    target = ctx.registry.failover_target(edit.model, tried)
    if target is None:
        return None
    if isinstance(exc, ALERTING):
        await ctx.incident(exc.code, f"{edit.provider}: {exc.detail}", scope=edit.provider)
    moved = await ctx.db.edits.transition(
        edit.id, steps.FAIL_OVER, owner=owner, model=target.id, provider=target.provider
    )
    if moved is None:
        return None
    log.warning(
        "provider refused the task, failing over",
        extra={
            "edit_id": edit.id,
            "provider": edit.provider,
            "error": exc.code,
            "to": target.provider,
        },
    )
    ctx.observe("failed_over", {"edit_id": edit.id, "from": edit.provider, "to": target.provider})
    # Same entry, same checks: the request was valid for the first provider, so it is here.
    moved_request = dataclasses.replace(request, model=target, callback_url=callback_url(moved))
    return moved, ctx.registry.provider(target.provider), moved_request
