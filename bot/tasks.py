"""Background tasks kept alive by strong references and drained on shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskTracker:
    """Owns fire-and-forget tasks so none is garbage-collected or lost silently."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False
        self._shutdown_began: float | None = None

    def grace_left(self, grace: float) -> float:
        """Seconds left of a shutdown grace period of `grace` seconds that began at the
        first call: every step of a shutdown shares one budget instead of each taking all."""
        now = time.monotonic()
        if self._shutdown_began is None:
            self._shutdown_began = now
        return max(0.0, self._shutdown_began + grace - now)

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any] | None:
        if self.closed:
            coro.close()
            return None
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "background task failed", exc_info=task.exception(), extra={"task": task.get_name()}
            )

    def __len__(self) -> int:
        return len(self._tasks)

    async def drain(self, grace: float) -> None:
        """Stop accepting work, wait up to `grace` seconds for running tasks, cancel the rest."""
        self.closed = True
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)


class WorkQueue:
    """Jobs run one after another by at most `workers` tasks of a `TaskTracker`.

    Jobs wait in a bounded queue instead of each getting a task of its own, so a burst (a
    thousand provider callbacks) costs a queue entry per job, not a task competing for the
    CPU and the database. Workers start on demand and end when the queue is empty, so
    draining the tracker on shutdown also finishes (or, past its grace, cancels) what is
    queued. `submit` says False when the queue is full or the tracker closed: only jobs that
    something else recovers (the sweeper) belong here.
    """

    def __init__(self, tracker: TaskTracker, *, name: str, workers: int, capacity: int) -> None:
        self.tracker = tracker
        self.name = name
        self.workers = workers
        self.capacity = capacity
        self._jobs: deque[Callable[[], Awaitable[Any]]] = deque()
        self._running = 0

    def __len__(self) -> int:
        return len(self._jobs)

    def submit(self, job: Callable[[], Awaitable[Any]]) -> bool:
        """Queue `job` (a function returning the awaitable to run); False if refused."""
        if self.tracker.closed or len(self._jobs) >= self.capacity:
            return False
        self._jobs.append(job)
        worker_wanted = self._running < self.workers
        if worker_wanted and self.tracker.spawn(self._work(), name=f"{self.name}-worker"):
            self._running += 1
        return True

    async def _work(self) -> None:
        try:
            while self._jobs:
                job = self._jobs.popleft()
                try:
                    await job()
                except Exception:
                    log.exception("background job failed", extra={"queue": self.name})
        finally:
            self._running -= 1
