"""Leases that hold while their work is alive, and cannot be used once lost.

A lease (an owner token and an expiry on the edit's row) keeps every other worker and replica
off an edit while one works on it. Each claim gets a token of its own, and the steps taken
under it name it (`db.edits.transition(..., owner=token)`), so a worker whose lease ran out
and was taken over commits nothing. While the work runs, one renewal loop per process extends
every lease the process holds: a lease runs out only when its process died or stalled for
longer than the lease, never because the work itself (a rate limiter, a back-off, a flood
wait) took long.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from storage.db import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lease:
    """One claim: its token (the row's `lease_owner`) and how long each renewal lasts."""

    token: str
    seconds: float


class Leases:
    """Hands out lease tokens and renews the leases of work still running in this process."""

    def __init__(self, db: Database, *, renew_every: float) -> None:
        self._db = db
        self.renew_every = renew_every
        self._process = uuid.uuid4().hex[:12]
        self._count = itertools.count(1)
        self._held: dict[str, float] = {}  # token -> lease seconds
        self._renewer: asyncio.Task[None] | None = None
        self._released = asyncio.Event()

    def new(self, seconds: float) -> Lease:
        """A token for one claim (unique to this process and claim)."""
        return Lease(f"{self._process}.{next(self._count)}", seconds)

    def __len__(self) -> int:
        return len(self._held)

    @contextlib.contextmanager
    def renewed(self, lease: Lease) -> Iterator[None]:
        """Keep `lease` (already taken) alive while the block runs."""
        self._held[lease.token] = lease.seconds
        if self._renewer is None:
            self._renewer = asyncio.create_task(self._renew_while_held(), name="lease-renewal")
        try:
            yield
        finally:
            self._held.pop(lease.token, None)
            if not self._held:
                self._released.set()  # the loop ends now rather than at its next tick

    async def _renew_while_held(self) -> None:
        try:
            while self._held:
                self._released.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._released.wait(), self.renew_every)
                if self._held:
                    await self._renew()
        finally:
            self._renewer = None

    async def _renew(self) -> None:
        by_length: dict[float, list[str]] = {}
        for token, seconds in self._held.items():
            by_length.setdefault(seconds, []).append(token)
        for seconds, tokens in by_length.items():
            try:
                renewed = await self._db.edits.renew(tokens, seconds)
            except Exception:
                # The next tick tries again; the lease itself still has time left.
                log.exception("could not renew leases", extra={"count": len(tokens)})
                continue
            for token in tokens:
                if token not in renewed and self._held.pop(token, None) is not None:
                    # Given back by a step just now, or lost to another worker: either way
                    # there is nothing to keep alive, and fenced steps commit nothing.
                    log.debug("lease no longer held", extra={"lease": token})
