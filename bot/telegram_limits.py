"""Telegram's flood limits, kept on our side so that the bot provokes no 429.

Telegram documents its limits loosely (FAQ: about 30 messages per second per bot, one per
second in a chat, 20 per minute in a group) and answers anything above them with 429 and
`retry_after`. PTB's `AIORateLimiter` covers the bot and groups with leaky buckets that let a
full burst through at once, and has no per-chat limit: a user with several photos in flight
got several messages within a second, and every 429 paused the whole bot (see README,
Performance, "At Telegram's and KIE's limits"). This limiter counts what Telegram counts,
messages sent or edited, in sliding windows (at most N in any T seconds, the strict reading):
per bot, per chat, and per group or channel on top. Each message counts from Telegram's
answer (see `Slot`). Calls that post nothing (deletions,
answers to button presses, inline queries and pre-checkout queries, getFile, getMe,
setWebhook...) pass at once.

Past the bot-wide ceiling not every message can go at once, and some matter more than others
(`rate_limit_args`, see `limit_args`):
- `optional` (a status rewrite: the next one says the same, newer) is sent only if both its
  chat and the bot have room now and nobody waits for it; otherwise the call raises `Crowded`
  instead of waiting, so results never queue behind progress updates.
- `gives_way` (a new photo's first "working on it" message) waits like any message but takes
  a turn only when no other message waits for it (or next, when a message of its own chat
  waits behind it): under overload the results of earlier photos go first (README,
  Performance, "At Telegram's and KIE's limits"). The edit is submitted only once that
  message is out, so the backlog of an overload is new photos not yet started, each of
  which still gets its message before its result, and every turn the results leave goes
  to them; below the ceiling nothing waits and it goes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from telegram import Bot
from telegram.error import RetryAfter, TelegramError
from telegram.ext import BaseRateLimiter, ExtBot

from bot.setting_values import RateLimit

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]

# Methods that post or change a message in a chat: what Telegram's limits count.
COUNTED_PREFIXES = ("send", "edit", "copy", "forward")
# Windows of chats idle this long are forgotten (bounded memory with many chats).
IDLE_CHATS = 1024
IN_FLIGHT = math.inf
# Ranks of a turn, first served first: every message, then those that give way.
FIRST, GIVING_WAY = 0, 1


def limit_args(bot: Bot, *, optional: bool = False, gives_way: bool = False) -> dict[str, Any]:
    """The keyword that tells the limiter how a call may wait (see the module docstring), for
    a Bot API method's keyword arguments; only PTB's ExtBot (every bot the app builds)
    passes `rate_limit_args` on to its rate limiter."""
    if not isinstance(bot, ExtBot) or not (optional or gives_way):
        return {}
    return {"rate_limit_args": {"optional": optional, "gives_way": gives_way}}


class Crowded(TelegramError):
    """An optional message was not sent: its chat has no room for it now."""

    def __init__(self) -> None:
        super().__init__("not sent: the chat has no room under Telegram's limits now")


class Slot:
    """One message counted in a window: in flight until its answer, then counted from the
    answer's time. Telegram counts a message when it arrives, which is somewhere between
    our send and its answer; counting from the answer, the next message after a full window
    can never arrive within the window of this one, however the network reorders them."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at = IN_FLIGHT


class Waiter:
    """One caller waiting for a `RankedLock` lock, and the lock it holds meanwhile (its chat's)."""

    __slots__ = ("holding", "turn")

    def __init__(self, holding: RankedLock | None) -> None:
        self.turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.holding = holding

    def holds_up_first(self) -> bool:
        """A `FIRST` message waits for the lock this waiter holds (a result of its chat)."""
        return self.holding is not None and self.holding.first_waits()


class RankedLock:
    """A lock handed to its waiters by rank (`FIRST` before `GIVING_WAY`), in arrival order
    within a rank. The holder waits for room in its window, so the next message to go is
    whoever holds it; a message giving way takes it only when no `FIRST` message waits,
    unless a `FIRST` message waits behind it for its chat (it goes then, ahead of all)."""

    def __init__(self) -> None:
        self.held = False
        self.waiting: tuple[deque[Waiter], ...] = (deque(), deque())

    def locked(self) -> bool:
        return self.held

    def first_waits(self) -> bool:
        return any(not waiter.turn.done() for waiter in self.waiting[FIRST])

    @contextlib.asynccontextmanager
    async def hold(
        self, rank: int = FIRST, *, holding: RankedLock | None = None
    ) -> AsyncIterator[None]:
        """`holding`: the lock the caller holds while it waits for this one."""
        await self._acquire(rank, holding)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, rank: int, holding: RankedLock | None) -> None:
        if not self.held:  # nobody holds it, so nobody waits (`_release` hands it over)
            self.held = True
            return
        waiter = Waiter(holding)
        queue = self.waiting[rank]
        queue.append(waiter)
        try:
            await waiter.turn
        except asyncio.CancelledError:
            if waiter.turn.done() and not waiter.turn.cancelled():
                self._release()  # handed over just as the caller was cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(waiter)
            raise

    def _release(self) -> None:
        giving_way = self.waiting[GIVING_WAY]
        # A message giving way must not hold up a result of its own chat waiting behind it.
        urgent = next((w for w in giving_way if w.holds_up_first() and not w.turn.done()), None)
        if urgent is not None:
            giving_way.remove(urgent)
            urgent.turn.set_result(None)
            return
        for queue in self.waiting:
            while queue:
                waiter = queue.popleft()
                if not waiter.turn.done():
                    waiter.turn.set_result(None)  # still held: it is the next waiter's now
                    return
        self.held = False


class Window:
    """At most `calls` messages in any `period` seconds, for each of its `limits`;
    waiters queue on `lock` by rank, then in arrival order."""

    def __init__(self, *limits: RateLimit) -> None:
        self.limits = limits
        self.longest = max(period for _, period in limits)
        self.slots: list[Slot] = []
        self.lock = RankedLock()
        self.answered = asyncio.Event()

    def wait_needed(self, now: float) -> float:
        """Seconds until one more message fits (`IN_FLIGHT`: once an answer comes)."""
        self.slots = [slot for slot in self.slots if slot.at > now - self.longest]
        needed = 0.0
        for calls, period in self.limits:
            recent = sorted(slot.at for slot in self.slots if slot.at > now - period)
            if len(recent) >= calls:
                needed = max(needed, recent[len(recent) - calls] + period - now)
        return needed

    async def ready(self) -> None:
        """Return once a message fits. The caller holds `lock` and only lock holders take
        slots, so waiting for the oldest to age out (or for an answer) is enough."""
        while (delay := self.wait_needed(time.monotonic())) > 0:
            self.answered.clear()
            timeout = None if delay == IN_FLIGHT else delay
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.answered.wait(), timeout)

    def free(self, now: float) -> bool:
        """A message would go at once: nobody waits and there is room."""
        return not self.lock.locked() and self.wait_needed(now) == 0

    def take(self) -> Slot:
        slot = Slot()
        self.slots.append(slot)
        return slot

    def answered_at(self, slot: Slot) -> None:
        slot.at = time.monotonic()
        self.answered.set()

    def forgettable(self, now: float) -> bool:
        """Nobody waits and nothing it counted is recent: a new window would be the same."""
        return self.free(now) and not self.slots


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
        self.bot_window = Window(bot_rate)
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
            # A group has both limits: about one message a second, 20 a minute.
            group = not isinstance(chat_id, int) or chat_id < 0
            limits = (self.chat_rate, self.group_rate) if group else (self.chat_rate,)
            window = self.chats[chat_id] = Window(*limits)
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
        how = rate_limit_args or {}
        optional = bool(how.get("optional"))
        rank = GIVING_WAY if how.get("gives_way") else FIRST
        window = self.chat_window(chat_id)
        for attempt in range(self.max_retries + 1):
            slots = await self._take_turn(window, optional, rank)
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
            finally:
                window.answered_at(slots[0])
                self.bot_window.answered_at(slots[1])
        raise AssertionError("unreachable")  # the last attempt returns or raises

    async def _take_turn(self, window: Window, optional: bool, rank: int) -> tuple[Slot, Slot]:
        """Wait for room in the chat's and then the bot's window, and take a slot in both
        as the message leaves (so the next one in the chat is a full period later)."""
        now = time.monotonic()
        if optional and not (window.free(now) and self.bot_window.free(now)):
            raise Crowded()
        async with window.lock.hold(rank):
            await window.ready()
            await self.resume.wait()
            async with self.bot_window.lock.hold(rank, holding=window.lock):
                await self.bot_window.ready()
                bot_slot = self.bot_window.take()
            return window.take(), bot_slot
