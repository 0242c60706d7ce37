"""What every phase of the edit lifecycle shares: collaborators, timing, leases, incidents.

The lifecycle knows neither Telegram nor HTTP: photos come through a `PhotoSource`, results
and failures leave through a `Notifier`, providers sit behind the `Provider` protocol.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, NamedTuple, Protocol

from bot.images.gate import DEFAULT_BUDGET_MB, Normalizer
from bot.lifecycle.leases import Lease, Leases
from bot.lifecycle.turns import Turns
from bot.providers.registry import ProviderRegistry
from bot.tasks import TaskTracker, WorkQueue
from domain.edit import Edit, InputPhoto
from storage.blobs import BlobStore
from storage.db import Database

log = logging.getLogger(__name__)

MAX_DELIVERY_ATTEMPTS = 10
DELIVERY_BACKOFF_MAX = 120.0
BLOB_GRACE = 600.0
# Deliveries and failure notices after a callback: this many at a time, the rest queued (a
# full queue leaves them to the sweeper, which finds every succeeded or unnotified edit).
OUTBOX_WORKERS = 32
OUTBOX_CAPACITY = 10_000


class PhotoUnavailable(Exception):
    """An input photo could not be fetched from Telegram (`code` says why)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code


class DeliveryFailed(Exception):
    """Delivering a result failed. `permanent` failures are not retried."""

    def __init__(self, code: str, detail: str = "", *, permanent: bool = False) -> None:
        super().__init__(detail or code)
        self.code = code
        self.permanent = permanent


class ChatUnreachable(Exception):
    """The chat blocked the bot or is gone: stop sending there."""


class Delivered(NamedTuple):
    """A result out in the chat: its Telegram file ids (to send it again without a
    download) and the ids of every message carrying it (what "Remove" deletes)."""

    file_ids: list[str]
    message_ids: list[int]


ProgressStage = Literal["sent", "running", "busy"]


@dataclass(frozen=True)
class Progress:
    """Where an edit is, as its status message shows it.

    Built with `Progress.of`, which rounds the figures the way the message words them, so two
    equal values read the same and `key` tells whether the message would change at all.
    `stage`: "sent" (the provider has it, not started), "running", or "busy" (the provider
    refused it for now; `left` is then the wait before the next try). `percent`: the
    provider's progress; `left`: seconds until the result (0: any moment now).
    """

    stage: ProgressStage
    percent: int | None = None
    left: int | None = None

    @classmethod
    def of(
        cls, stage: ProgressStage, *, fraction: float | None = None, seconds: float | None = None
    ) -> Progress:
        percent = None
        if fraction is not None and 0 < fraction < 1:
            percent = int(fraction * 100) // 5 * 5  # 5 % steps: a message edit means news
        return cls(stage, percent, None if seconds is None else _rounded(seconds))

    @property
    def key(self) -> str:
        return f"{self.stage}:{self.percent}:{self.left}"


def _rounded(seconds: float) -> int:
    """Seconds up to the next 5 below a minute, to whole minutes above."""
    if seconds <= 0:
        return 0
    if seconds < 60:
        return 5 * math.ceil(seconds / 5)
    return 60 * math.ceil(seconds / 60)


class PhotoSource(Protocol):
    async def fetch(self, photo: InputPhoto) -> bytes:
        """The bytes of an input photo."""


class Notifier(Protocol):
    """The user-facing side (Telegram)."""

    async def deliver_result(self, edit: Edit) -> Delivered:
        """Send the results; return their file ids and the messages carrying them."""

    async def notify_failure(self, edit: Edit, returned: int = 0) -> None:
        """Tell the user their edit ended without a result, and why (and that `returned`
        reserved edits came back, with paid edits)."""

    async def alert_admins(self, incident: str, detail: str) -> None:
        """Tell the bot's operators about a problem they must fix."""

    async def clear_status(self, edit: Edit) -> None:
        """Remove the "working on it" message once the result is out (best effort)."""

    async def show_progress(self, edit: Edit, progress: Progress) -> None:
        """Rewrite the "working on it" message to say where the edit is (best effort)."""

    async def show_place(self, edit: Edit, position: int, wait: float) -> None:
        """Say in the "working on it" message that the edit waits for its turn: its place
        in line and a rough wait in seconds (best effort)."""


@dataclass(frozen=True)
class Timing:
    poll_interval: float = 3.0
    poll_max_interval: float = 30.0
    poll_min_interval: float = 0.5  # never a status query sooner than this after the last
    status_edit_interval: float = 5.0  # one rewrite of a status message per this, per chat
    status_edit_interval_group: float = 20.0
    callback_grace: float = 120.0
    task_timeout: float = 900.0
    queued_grace: float = 10.0  # the handler submits at once; the sweeper picks up the rest
    blob_grace: float = BLOB_GRACE  # input photos outlive their edit this long (retries)
    approval_timeout: float = 3600.0  # a group request waiting for an admin expires then
    # Leases: how long each lasts without renewal (so how long another worker waits before
    # taking over the work of a process that died), and how often live work renews them.
    submit_lease: float = 300.0
    delivery_lease: float = 180.0
    notify_lease: float = 60.0
    poll_lease: float = 60.0
    lease_renewal: float = 15.0

    def status_interval(self, chat_type: str) -> float:
        """Seconds between two rewrites of one status message in a chat of this type."""
        if chat_type == "private":
            return self.status_edit_interval
        return self.status_edit_interval_group


Observer = Callable[[str, Mapping[str, Any]], None]


def _ignore(_event: str, _fields: Mapping[str, Any]) -> None:
    return None


@dataclass
class Lifecycle:
    """The collaborators and per-process state every phase works with."""

    db: Database
    registry: ProviderRegistry
    blobs: BlobStore
    photos: PhotoSource
    notifier: Notifier
    base_url: str | None
    timing: Timing
    tracker: TaskTracker
    observe: Observer = _ignore
    started_at: float = field(default_factory=time.time)
    # Set at shutdown: nothing more is submitted, and submissions still waiting for a rate
    # limiter or a back-off stop waiting (their edits stay queued for the next run).
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    incidents: dict[str, float] = field(default_factory=dict)
    # Input photos are normalized within one memory budget per process.
    normalizer: Normalizer = field(default_factory=lambda: Normalizer(DEFAULT_BUDGET_MB << 20))
    outbox: WorkQueue = field(init=False)
    leases: Leases = field(init=False)
    turns: Turns = field(init=False)

    def __post_init__(self) -> None:
        self.outbox = WorkQueue(
            self.tracker, name="outbox", workers=OUTBOX_WORKERS, capacity=OUTBOX_CAPACITY
        )
        self.leases = Leases(self.db, renew_every=self.timing.lease_renewal)
        self.turns = Turns(self.db, self.registry, self.tracker)

    @property
    def submitting(self) -> bool:
        return not self.stopping.is_set()

    def lease(self, seconds: float) -> Lease:
        """A new lease token for one claim of `seconds`."""
        return self.leases.new(seconds)

    def later(self, delay: float, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `job` in `delay` seconds in this process, best effort (the sweeper covers what
        a process that went away would have done): a timer, not a task, so nothing waits
        for it at shutdown."""
        spawn = partial(self.tracker.spawn, name="edit-timer")
        asyncio.get_running_loop().call_later(max(0.0, delay), lambda: spawn(job()))

    async def unless_stopping(self, waiting: Awaitable[Any]) -> bool:
        """Wait for `waiting` unless the process starts shutting down first (False then)."""
        waiter = asyncio.ensure_future(waiting)
        stopper = asyncio.ensure_future(self.stopping.wait())
        try:
            done, _ = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            stopper.cancel()
        if waiter in done:
            waiter.result()
            return self.submitting
        return False

    async def incident(
        self, code: str, detail: str, *, scope: str = "", quiet_period: float = 3600.0
    ) -> None:
        """Alert the operators once per incident, not once per edit nor once per replica (the
        incident is kept in the database, `db.alerts`), and remind them every `quiet_period`
        while it lasts. `scope` (a provider) keeps one account's incident apart from
        another's: with failover, the next provider's success must not end the first one's
        incident."""
        key = f"{code}@{scope}"
        self.incidents[key] = time.time()  # seen open here: this process's success ends it
        try:
            due = await self.db.alerts.open(key, remind_after=quiet_period)
        except Exception:
            log.exception("could not record an incident", extra={"incident": key})
            due = True  # better twice than never
        if not due:
            return
        try:
            await self.notifier.alert_admins(code, detail)
        except Exception:
            log.exception("could not alert admins", extra={"incident": code})

    async def clear_incident(self, code: str, *, scope: str = "") -> None:
        """The incident is over (a request it stopped went through). Only an incident this
        process saw costs a statement: a success elsewhere ends it there."""
        key = f"{code}@{scope}"
        if self.incidents.pop(key, None) is None:
            return
        try:
            await self.db.alerts.close(key)
        except Exception:
            log.exception("could not close an incident", extra={"incident": key})
