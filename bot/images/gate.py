"""The process-wide memory budget of image normalization (`NORMALIZE_MEMORY_BUDGET_MB`).

Each normalization reserves its estimated peak (`normalize_cost`, from the header alone)
before it decodes anything, so several large images wait for each other instead of
adding up. Admission is first come, first served: a large image waiting at the head is not
overtaken by a stream of small ones. An image whose estimate exceeds the whole budget
still runs, alone, once everything before it has finished (it never waits forever).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.images.limits import ImageLimits, NormalizedImage
from bot.images.normalize import normalize, normalize_cost

DEFAULT_BUDGET_MB = 600


class MemoryBudget:
    """A weighted first-come-first-served semaphore over bytes."""

    def __init__(self, budget: int) -> None:
        if budget <= 0:
            raise ValueError("the memory budget must be positive")
        self.budget = budget
        self.in_use = 0
        self.peak = 0  # the most ever reserved at once (metrics and tests)
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def waiting(self) -> int:
        """How many reservations are waiting for their turn."""
        return len(self._waiting)

    @asynccontextmanager
    async def reserve(self, amount: int) -> AsyncIterator[None]:
        """Hold ``amount`` bytes (at most the whole budget) for the ``with`` block."""
        held = await self.acquire(amount)
        try:
            yield
        finally:
            self.release(held)

    async def acquire(self, amount: int) -> int:
        """Wait for ``amount`` bytes (at most the whole budget); returns what is held,
        to be given back with :meth:`release`."""
        amount = min(max(amount, 0), self.budget)
        if not self._waiting and self.in_use + amount <= self.budget:
            self._take(amount)
            return amount
        turn = asyncio.get_running_loop().create_future()
        entry = (amount, turn)
        self._waiting.append(entry)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.in_use -= amount  # admitted just as we were cancelled
            elif entry in self._waiting:
                self._waiting.remove(entry)
            self._admit()
            raise
        return amount

    def release(self, amount: int) -> None:
        self.in_use -= amount
        self._admit()

    def _take(self, amount: int) -> None:
        self.in_use += amount
        self.peak = max(self.peak, self.in_use)

    def _admit(self) -> None:
        while self._waiting and self.in_use + self._waiting[0][0] <= self.budget:
            amount, turn = self._waiting.popleft()
            if not turn.done():
                self._take(amount)
                turn.set_result(None)


class Normalizer:
    """`normalize` in a worker thread, within the process's memory budget."""

    def __init__(self, budget_bytes: int) -> None:
        self.memory = MemoryBudget(budget_bytes)

    async def normalize(
        self, data: bytes, limits: ImageLimits, *, trusted_jpeg: bool = False
    ) -> NormalizedImage:
        """Raises `ImageError` (refusals over the per-image limit come before any wait)."""
        cost = await asyncio.to_thread(normalize_cost, data, limits, trusted_jpeg=trusted_jpeg)
        held = await self.memory.acquire(cost)
        work = asyncio.ensure_future(
            asyncio.to_thread(normalize, data, limits, trusted_jpeg=trusted_jpeg)
        )
        # A thread cannot be stopped: if we are cancelled, its bytes stay reserved until
        # it has really finished.
        work.add_done_callback(lambda done: self._finished(done, held))
        return await asyncio.shield(work)

    def _finished(self, work: asyncio.Future[NormalizedImage], held: int) -> None:
        self.memory.release(held)
        if not work.cancelled():
            work.exception()  # retrieved here too, in case nobody awaits it any more
