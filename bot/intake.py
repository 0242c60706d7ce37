"""Telegram updates in: recorded durably before Telegram hears they arrived, handled once.

The webhook (bot/web/telegram.py) and long polling (bot/polling.py) hand every update to
`UpdateIntake`, which records it (`db.updates`) and only then lets its caller acknowledge it
(the webhook's 200, the next polling offset): Telegram never resends an acknowledged update,
so one acknowledged before it was recorded would be lost by a crash. A repeated `update_id`
records nothing and is not handled again. A new update is handled by PTB's Application (its
handlers, its concurrency limit) in a task of its own, then marked done.

An update recorded but not done (the process died, or shut down before it finished) is
claimed once its lease has run out, by the restarted process or another replica, and handled
then, oldest first. A graceful shutdown gives its unfinished updates back at once; the lease
of a live process is renewed while it handles them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections.abc import Sequence
from typing import Any

from telegram import Update
from telegram.ext import Application

from bot.polling import poll
from storage.updates import Updates

log = logging.getLogger(__name__)

# Telegram keeps an unacknowledged update for up to 24 hours and may send it again until
# then, so a done update's id is remembered longer than that.
DONE_RETENTION = 48 * 3600.0
PRUNE_EVERY = 600.0
CLAIM_BATCH = 100


class UpdateIntake:
    """Records Telegram updates before they are acknowledged and hands each to PTB once."""

    def __init__(
        self, updates: Updates, ptb: Application[Any, Any, Any, Any, Any, Any], *, lease: float
    ) -> None:
        self._updates = updates
        self._ptb = ptb
        self.lease = lease
        self.owner = uuid.uuid4().hex[:12]
        self._handling: dict[int, asyncio.Task[None]] = {}
        self._closing = False
        self._maintainer: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        """Updates being handled by this process."""
        return len(self._handling)

    async def accept(self, update: Update, payload: str) -> bool:
        """Record `update` (`payload` is its JSON), then start handling it; False: a repeat.

        Returns once the record is committed: only then may Telegram be told it arrived.
        """
        new = await self._updates.record(update.update_id, payload, self.owner, self._lease())
        if new and not self._closing:
            self._handle(update)
        return new

    async def accept_batch(self, batch: Sequence[Update]) -> None:
        """Record a batch in one transaction (returns once it is committed), then handle the
        new ones in order."""
        items = [(update.update_id, update.to_json()) for update in batch]
        new = set(await self._updates.record_many(items, self.owner, self._lease()))
        if self._closing:
            return
        for update in batch:
            if update.update_id in new:
                new.discard(update.update_id)  # a batch may repeat an update too
                self._handle(update)

    def _lease(self) -> float:
        # While closing nothing more is handled here: a record is free for the next process.
        return 0.0 if self._closing else self.lease

    def _handle(self, update: Update) -> None:
        update_id = update.update_id
        task = asyncio.create_task(self._run(update), name=f"update-{update_id}")
        self._handling[update_id] = task
        task.add_done_callback(lambda _: self._handling.pop(update_id, None))

    async def _run(self, update: Update) -> None:
        ptb = self._ptb
        # PTB reports a handler's exception to its error handlers; process_update returns.
        await ptb.update_processor.process_update(update, ptb.process_update(update))
        try:
            await self._updates.done(update.update_id)
        except Exception:  # its lease runs out and it is handled again: handlers allow that
            log.exception("update not marked done", extra={"update_id": update.update_id})

    async def start(self) -> None:
        """Handle what earlier runs left unfinished, then keep leases and the table tidy."""
        await self.recover()
        self._maintainer = asyncio.create_task(self._maintain(), name="update-intake")

    async def poll(self, poll_timeout: int) -> None:
        """Long polling (no webhook): getUpdates in the background until `close`."""
        bot = self._ptb.bot
        await bot.delete_webhook()  # Telegram refuses getUpdates while a webhook is set
        self._poller = asyncio.create_task(
            poll(bot, self.accept_batch, poll_timeout=poll_timeout), name="telegram-polling"
        )

    async def recover(self) -> int:
        """Claim recorded updates nobody is handling and handle them, oldest first."""
        total = 0
        while True:
            claimed = await self._updates.claim_stale(self.owner, self.lease, CLAIM_BATCH)
            for update_id, payload in claimed:
                if update_id in self._handling:
                    continue  # still ours: its lease was late to be renewed
                try:
                    update = Update.de_json(json.loads(payload), self._ptb.bot)
                except (ValueError, TypeError, KeyError):
                    log.exception("recorded update unreadable", extra={"update_id": update_id})
                    await self._updates.done(update_id)
                    continue
                self._handle(update)
            total += len(claimed)
            if len(claimed) < CLAIM_BATCH:
                if total:
                    log.info("recorded updates resumed", extra={"count": total})
                return total

    async def _maintain(self) -> None:
        last_prune = -math.inf
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self._updates.renew(list(self._handling), self.owner, self.lease)
                await self.recover()
                if time.monotonic() - last_prune >= PRUNE_EVERY:
                    last_prune = time.monotonic()
                    await self._updates.prune(time.time() - DONE_RETENTION)
            except Exception:
                log.exception("update intake maintenance failed")

    async def close(self, grace: float) -> None:
        """Stop taking updates; let those being handled finish within `grace` seconds; give
        the rest back for the next process."""
        self._closing = True
        for task in (self._poller, self._maintainer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        running = set(self._handling.values())
        if running:
            _, late = await asyncio.wait(running, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=5)
                log.warning("updates left for the next start", extra={"count": len(late)})
        await self._updates.release(self.owner)
