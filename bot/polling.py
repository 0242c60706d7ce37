"""Long polling (no PUBLIC_BASE_URL) that loses no update.

getUpdates confirms every update below the offset it is given, and Telegram forgets what it
confirmed. PTB's Updater asks with the next offset as soon as a batch has arrived; this loop
asks only once the batch is recorded (`accept`), so a crash in between means the batch comes
again (and its repeats are recognised), never that it is gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from telegram import Bot, Update
from telegram.error import RetryAfter, TelegramError, TimedOut

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0


async def poll(
    bot: Bot,
    accept: Callable[[Sequence[Update]], Awaitable[None]],
    *,
    poll_timeout: int,
) -> None:
    """Fetch updates and hand each batch to `accept` until cancelled."""
    offset: int | None = None
    failures = 0
    while True:
        try:
            batch = await bot.get_updates(
                offset=offset, timeout=poll_timeout, allowed_updates=Update.ALL_TYPES
            )
        except TimedOut:
            continue  # a long poll the network dropped: ask again
        except RetryAfter as exc:
            retry_after = exc.retry_after
            delay = retry_after if isinstance(retry_after, int) else retry_after.total_seconds()
        except TelegramError as exc:  # Conflict, network errors, a rejected token...
            failures += 1
            delay = min(MAX_BACKOFF, 0.5 * 2**failures)
            log.warning("getUpdates failed", extra={"error": str(exc), "retry_in": delay})
        else:
            if not batch:
                failures = 0
                continue
            try:
                await accept(batch)
            except Exception:  # not recorded: the same batch comes again (the offset stays)
                failures += 1
                delay = min(MAX_BACKOFF, 0.5 * 2**failures)
                log.exception("updates not recorded", extra={"retry_in": delay})
            else:
                failures = 0
                offset = batch[-1].update_id + 1
                continue
        await asyncio.sleep(delay)
