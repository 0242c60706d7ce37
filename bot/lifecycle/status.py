"""The edit's "working on it" message, kept saying where the edit is (`Progress`).

Telegram limits how often a message may be edited (more so in groups), so a rewrite takes a
turn first, recorded in the edit's row (`db.edit_status.take_turn`): at most one per
STATUS_EDIT_INTERVAL (STATUS_EDIT_INTERVAL_GROUP outside private chats) per message, shared
by every replica, and none when the words would not change. A turn missed is not made up:
the next news takes the next turn. News that misses its turn by moments after the message
was sent (or last rewritten) can wait for the turn (`show_or_later`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial

from bot.lifecycle.context import Lifecycle, Progress
from domain.edit import Edit, EditState

log = logging.getLogger(__name__)

# States in which the status message still says "working on it" (after these it carries
# the failure notice, or is deleted under the result).
SHOWN_IN = (EditState.QUEUED, EditState.SUBMITTED)


class StatusUpdates:
    def __init__(self, ctx: Lifecycle) -> None:
        self.ctx = ctx

    def interval(self, edit: Edit) -> float:
        """Seconds between two rewrites of the edit's status message."""
        return self.ctx.timing.status_interval(edit.chat_type)

    async def show(self, edit: Edit, progress: Progress) -> bool:
        """Rewrite the status message to `progress` if it is its turn; True if rewritten."""
        if progress == Progress("running"):
            return False  # the message says the edit is under way already
        now = time.time()
        if edit.status_message_id is None or now < edit.created_at + self.interval(edit):
            return False  # the message went out moments ago (no statement for that)
        taken = await self.ctx.db.edit_status.take_turn(
            edit.id,
            progress.key,
            now=now,
            interval=self.interval(edit),
            states=SHOWN_IN,
        )
        if not taken:
            return False
        try:
            await self.ctx.notifier.show_progress(edit, progress)
        except Exception:
            log.exception("status message not rewritten", extra={"edit_id": edit.id})
            return False
        return True

    async def show_or_later(
        self,
        edit: Edit,
        progress: Progress,
        at_turn: Callable[[Edit, float], Progress | None],
    ) -> None:
        """Show `progress` now if it is the message's turn; otherwise at its turn, what
        `at_turn(edit as it is then, time)` says then (None: nothing worth a rewrite)."""
        if await self.show(edit, progress):
            return
        now, interval = time.time(), self.interval(edit)
        first = edit.created_at + interval
        turn = first if first > now else now + interval
        self.ctx.later(turn - now, partial(self._at_turn, edit.id, at_turn))

    async def _at_turn(
        self, edit_id: int, at_turn: Callable[[Edit, float], Progress | None]
    ) -> None:
        edit = await self.ctx.db.edits.get(edit_id)
        if edit is None:
            return
        progress = at_turn(edit, time.time())
        if progress is not None:
            await self.show(edit, progress)
