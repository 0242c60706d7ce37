"""Turns: waiting for a provider account's next turn, in fair order, with every replica.

The turns themselves live in the database (storage.turns): the window count that enforces
the account's rate limit and the fair order between requesters. This process keeps one
dispatcher per account while any of its edits waits: it asks for the next turn on behalf of
all of them at once, sleeps while the window is full (until a turn frees) or while the edit
next in line is another process's (a short poll), and wakes early when one of its own edits
starts waiting, since that one may be next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from bot.providers.base import AccountLimit
from bot.providers.registry import ProviderRegistry
from bot.tasks import TaskTracker
from domain import steps
from domain.edit import Edit
from storage.db import Database
from storage.turns import Account, Offer, Place, Sending

log = logging.getLogger(__name__)

# How often a dispatcher looks again while the edit next in line is another process's.
TURN_POLL = 0.1
# An edit next in line whose sender does not take its turn within this long is passed over
# (its process died or is stuck; the sweeper resubmits it later, in line again).
HEAD_GRACE = 3.0
_FORGET_AFTER = 600.0  # heads seen this long ago are forgotten
PLACES_FRESH = 1.0  # seconds one read of an account's line answers every waiter


class Turns:
    """This process's waiters for provider turns, one dispatcher per account."""

    def __init__(self, db: Database, registry: ProviderRegistry, tracker: TaskTracker) -> None:
        self.db = db
        self.registry = registry
        self.tracker = tracker
        self._waiting: dict[str, dict[int, _Waiter]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._running: set[str] = set()
        # account -> (when read, the read of its line): shared by the waiters showing places
        self._places: dict[str, tuple[float, asyncio.Future[dict[int, Place]]]] = {}

    def account(self, limit: AccountLimit) -> Account:
        """The account as storage sees it: its limit and every provider sending on it."""
        providers = tuple(
            sorted(
                name
                for name, provider in self.registry.providers.items()
                if provider.rate_limit is not None and provider.rate_limit.account == limit.account
            )
        )
        return Account(
            limit.account, providers, limit.max_calls, limit.period, limit.request_timeout
        )

    async def wait(
        self,
        edit_id: int,
        limit: AccountLimit,
        *,
        owner: str,
        fields: dict[str, Any],
        in_line: asyncio.Event | None = None,
    ) -> Edit | None:
        """The edit's turn at its account: the edit moved on to `submitting` with `fields`
        (under the lease `owner`, in the transaction that took the turn); None when it is no
        longer queued under that lease (cancelled, or taken over), and gets no turn.
        `in_line` is set when a try found the turn not free (the window full, or another
        edit next): the edit waits in line."""
        account = self.account(limit)
        future: asyncio.Future[Edit | None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(Sending(owner, fields), future, in_line or asyncio.Event())
        self._waiting.setdefault(account.name, {})[edit_id] = waiter
        self._wake.setdefault(account.name, asyncio.Event()).set()
        if account.name not in self._running:
            self._running.add(account.name)
            if self.tracker.spawn(self._dispatch(account), name=f"turns-{account.name}") is None:
                self._running.discard(account.name)  # shutting down: no more turns
        try:
            return await future
        finally:
            waiting = self._waiting.get(account.name, {})
            if waiting.get(edit_id) is waiter:
                del waiting[edit_id]

    async def place(self, edit_id: int, limit: AccountLimit) -> Place | None:
        """The edit's place in its account's line; None once it is no longer queued. One
        read of the account's whole line answers every waiter asking within `PLACES_FRESH`
        (a read begun before this edit joined the line is not trusted with its absence)."""
        account = self.account(limit)
        asked = time.monotonic()
        places = await self._line(account, not_before=asked - PLACES_FRESH)
        if edit_id not in places:
            places = await self._line(account, not_before=asked)
        return places.get(edit_id)

    async def _line(self, account: Account, *, not_before: float) -> dict[int, Place]:
        reading = self._places.get(account.name)
        if reading is None or reading[0] < not_before:
            reading = (time.monotonic(), asyncio.ensure_future(self.db.turns.places(account)))
            self._places[account.name] = reading
        try:
            return await asyncio.shield(reading[1])
        except Exception:
            if self._places.get(account.name) is reading:
                del self._places[account.name]  # the next asker reads again
            raise

    async def _put_back(self, edit: Edit) -> None:
        """A turn taken for an edit whose sender stopped waiting meanwhile (shutting down):
        nothing was sent, so the edit is queued again for the next run (the turn is spent)."""
        try:
            await self.db.edits.transition(edit.id, steps.BACK_OFF, next_check_at=time.time())
        except Exception:
            log.exception("could not put an edit back in line", extra={"edit_id": edit.id})

    async def _dispatch(self, account: Account) -> None:
        waiting = self._waiting[account.name]
        wake = self._wake[account.name]
        heads: dict[int, float] = {}  # edits next in line that are not ours: first seen
        try:
            while waiting:
                wake.clear()
                now = time.monotonic()
                skip = {edit for edit, seen in heads.items() if now - seen > HEAD_GRACE}
                candidates = {edit_id: waiter.sending for edit_id, waiter in waiting.items()}
                try:
                    offer = await self.db.turns.take(
                        account, steps.BEGIN_SUBMIT, candidates, skip=skip
                    )
                except Exception:
                    log.exception("could not take a provider turn", extra={"account": account.name})
                    offer = Offer(free_at=time.time() + 1.0)  # the database: again in a second
                for edit_id in offer.gone:
                    _settle(waiting.pop(edit_id, None), None)
                for turn in offer.taken:
                    if not _settle(waiting.pop(turn.id, None), turn):
                        await self._put_back(turn)
                if offer.taken:
                    continue
                for edit_id in candidates:
                    if edit_id in waiting:
                        waiting[edit_id].in_line.set()
                delay = TURN_POLL
                if offer.free_at is not None:
                    delay = max(0.0, offer.free_at - time.time())
                elif offer.head is not None:
                    heads.setdefault(offer.head, now)
                    for edit, seen in list(heads.items()):
                        if now - seen > _FORGET_AFTER:
                            del heads[edit]
                if waiting:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), timeout=delay)
        finally:
            self._running.discard(account.name)


@dataclass(frozen=True)
class _Waiter:
    sending: Sending
    future: asyncio.Future[Edit | None]
    in_line: asyncio.Event


def _settle(waiter: _Waiter | None, edit: Edit | None) -> bool:
    """Hand the outcome to a waiter; False when it is no longer waiting."""
    if waiter is None or waiter.future.done():
        return False
    waiter.future.set_result(edit)
    return True
