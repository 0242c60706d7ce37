"""Waiting in line for the provider account's turn (its rate limit and fair order, held in
the database for every replica: bot.lifecycle.turns), while the edit stays `queued`, and
telling the user where the edit stands meanwhile."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bot.lifecycle.context import Lifecycle
from bot.providers.base import AccountLimit, Provider
from domain import steps
from domain.edit import Edit
from storage.turns import Place

log = logging.getLogger(__name__)


async def take_turn(
    ctx: Lifecycle, edit: Edit, owner: str, provider: Provider, unrecorded: dict[str, Any]
) -> Edit | None:
    """`BEGIN_SUBMIT` on the provider account's next turn for this edit (in the turn's
    transaction); None when the edit was cancelled meanwhile or our lease was lost.

    A turn that is not free at once (the first try found the window full or someone
    else next in line) is a wait, perhaps of minutes: the "working on it" message is
    recorded before it (one write, only when waiting), since after a crash
    meanwhile nothing could remove that message or rewrite it into a failure notice;
    meanwhile the message shows the edit's place in line."""
    limit = provider.rate_limit
    if limit is None:
        return await ctx.db.edits.transition(edit.id, steps.BEGIN_SUBMIT, owner=owner, **unrecorded)
    in_line = asyncio.Event()
    turn = asyncio.ensure_future(
        ctx.turns.wait(edit.id, limit, owner=owner, fields=unrecorded, in_line=in_line)
    )
    told = asyncio.ensure_future(in_line.wait())
    showing: asyncio.Future[None] | None = None
    try:
        done, _ = await asyncio.wait({turn, told}, return_when=asyncio.FIRST_COMPLETED)
        if turn not in done:
            shown: Edit | None = edit
            if "status_message_id" in unrecorded:
                status = {"status_message_id": unrecorded["status_message_id"]}
                shown = await ctx.db.edits.update_fields(edit.id, owner=owner, **status)
            if shown is not None and shown.status_message_id is not None:
                # Not awaited: a chat's own Telegram rate limit must not hold the turn.
                showing = asyncio.ensure_future(show_place(ctx, shown, limit))
        return await turn
    finally:
        turn.cancel()
        told.cancel()
        if showing is not None:
            showing.cancel()  # the turn came: what the message says next is up to later steps


async def show_place(ctx: Lifecycle, edit: Edit, limit: AccountLimit) -> None:
    """Show the place in line, and again as it changes: checked once per account window,
    and never more often than the chat's status messages are rewritten."""
    every = max(limit.period, ctx.timing.status_interval(edit.chat_type))
    shown: Place | None = None
    while True:
        try:
            place = await ctx.turns.place(edit.id, limit)
            if place is not None and place != shown:
                await ctx.notifier.show_place(edit, place.position, place.wait)
                shown = place
        except Exception:
            log.exception("could not show the place in line", extra={"edit_id": edit.id})
        await asyncio.sleep(every)
