"""Telegram's flood limits, kept on our side so that the bot provokes no 429.

Telegram documents its limits loosely (FAQ: about 30 messages per second per bot, one per
second in a chat, 20 per minute in a group) and answers anything above them with 429 and
`retry_after`. PTB's `AIORateLimiter` covers the bot and groups with leaky buckets that let a
full burst through at once, and has no per-chat limit: a user with several photos in flight
got several messages within a second, and every 429 paused the whole bot (see README,
Performance, "At Telegram's and KIE's limits"). This limiter counts what Telegram counts,
messages sent or edited, in sliding windows (at most N in any T seconds, the strict reading):
per bot, per private chat and per group or channel. Calls that post nothing (deletions,
answers to button presses, inline queries and pre-checkout queries, getFile, getMe,
setWebhook...) pass at once.

A message that may be dropped (a status rewrite: the next one says the same, newer) is sent
only if its chat has room now: `rate_limit_args={"optional": True}` makes a call that would
have to wait raise `Crowded` instead, so results never queue behind progress updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.error import RetryAfter, TelegramError
from telegram.ext import BaseRateLimiter

from bot.setting_values import RateLimit

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]

# Methods that post or change a message in a chat: what Telegram's limits count.
COUNTED_PREFIXES = ("send", "edit", "copy", "forward")
# Telegram measures arrival, we measure departure: a little room for network jitter.
MARGIN = 0.05
# Windows of chats idle this long are forgotten (bounded memory with many chats).
IDLE_CHATS = 1024


class Crowded(TelegramError):
    """An optional message was not sent: its chat has no room for it now."""

    def __init__(self) -> None:
        super().__init__("not sent: the chat has no room under Telegram's limits now")


class Window:
    """At most `calls` messages in any `period` seconds; waiters go in arrival order."""

    def __init__(self, calls: int, period: float) -> None:
        self.calls = calls
        self.period = period + MARGIN
        self.stamps: deque[float] = deque()
        self.lock = asyncio.Lock()

    def wait_needed(self, now: float) -> float:
        while self.stamps and self.stamps[0] <= now - self.period:
            self.stamps.popleft()
        if len(self.stamps) < self.calls:
            return 0.0
        return self.stamps[0] + self.period - now

    async def ready(self) -> None:
        """Return once a message fits. The caller holds `lock` and only lock holders record,
        so once the oldest stamp has aged out there is room."""
        delay = self.wait_needed(time.monotonic())
        if delay > 0:
            await asyncio.sleep(delay)

    def record(self) -> None:
        self.stamps.append(time.monotonic())

    def forgettable(self, now: float) -> bool:
        """Nobody waits and nothing it counted is recent: a new window would be the same."""
        self.wait_needed(now)  # drops the stamps older than a period
        return not self.lock.locked() and not self.stamps


class TelegramLimiter(BaseRateLimiter[dict[str, Any]]):
    """Per bot, per private chat and per group (see the module docstring)."""

    def __init__(
        self,
        *,
        bot_rate: RateLimit,
        chat_rate: RateLimit,
        group_rate: RateLimit,
        max_retries: int = 3,
    ) -> None:
        self.bot_window = Window(*bot_rate)
        self.chat_rate = chat_rate
        self.group_rate = group_rate
        self.max_retries = max_retries
        self.chats: dict[int | str, Window] = {}
        # A 429 says Telegram wants a pause: every message waits for it (as PTB's limiter).
        self.resume = asyncio.Event()
        self.resume.set()

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    def chat_window(self, chat_id: int | str) -> Window:
        window = self.chats.get(chat_id)
        if window is None:
            if len(self.chats) > IDLE_CHATS:
                now = time.monotonic()
                for key, old in list(self.chats.items()):
                    if old.forgettable(now):
                        del self.chats[key]
            group = not isinstance(chat_id, int) or chat_id < 0
            window = self.chats[chat_id] = Window(*(self.group_rate if group else self.chat_rate))
        return window

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: dict[str, Any] | None,
    ) -> bool | JSONDict | list[JSONDict]:
        chat_id = data.get("chat_id")
        if chat_id is None or not endpoint.startswith(COUNTED_PREFIXES):
            return await callback(*args, **kwargs)
        with contextlib.suppress(ValueError, TypeError):
            chat_id = int(chat_id)
        optional = bool(rate_limit_args and rate_limit_args.get("optional"))
        window = self.chat_window(chat_id)
        for attempt in range(self.max_retries + 1):
            await self._take_turn(window, optional)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                if attempt == self.max_retries or optional:
                    raise
                pause = exc._retry_after.total_seconds() + 0.1
                log.warning(
                    "Telegram asked for a pause",
                    extra={"method": endpoint, "chat_id": chat_id, "retry_after": pause},
                )
                self.resume.clear()
                try:
                    await asyncio.sleep(pause)
                finally:
                    self.resume.set()
        raise AssertionError("unreachable")  # the last attempt returns or raises

    async def _take_turn(self, window: Window, optional: bool) -> None:
        """Wait for room in the chat's and then the bot's window, and count the message in
        both at the moment it leaves (so the next one in the chat is a full period later)."""
        if optional and (window.lock.locked() or window.wait_needed(time.monotonic()) > 0):
            raise Crowded()
        async with window.lock:
            await window.ready()
            await self.resume.wait()
            async with self.bot_window.lock:
                await self.bot_window.ready()
                self.bot_window.record()
            window.record()
