"""Low-balance alerts: the KIE account's credits, from callbacks (`remainedCredits`) and a
periodic look at KIE's credit endpoint, compared with LOW_CREDITS_ALERT (unset: off).

Below it, the operators are alerted once per incident; the incident ends when a report shows
the balance back at or above it. The incident is kept in the database (`db.alerts`), so
several replicas noticing the same low balance alert once between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from bot.formats import format_credits
from bot.i18n import Translator
from bot.keys import SETTINGS
from bot.lifecycle.context import Observer
from bot.providers.http import HttpProvider
from bot.providers.kie import account_credits
from bot.providers.registry import ProviderRegistry
from domain.errors import ProviderError
from storage.db import Database

log = logging.getLogger(__name__)

INCIDENT = "low_credits"
# The providers on the KIE account (Apikley's callbacks report another account's balance).
KIE_ACCOUNT = frozenset({"kie", "kie-playground", "kie-4o"})
STOP_GRACE = 10.0

Alert = Callable[[str, str], Awaitable[None]]


class CreditWatch:
    """Compares every balance it hears of with the threshold; alerts once per incident."""

    def __init__(
        self,
        db: Database,
        registry: ProviderRegistry,
        alert: Alert,
        translator: Translator,
        *,
        threshold: float | None,
        interval: float,
        on_balance: Callable[[float], None] | None = None,
    ) -> None:
        self.db = db
        self.on_balance = on_balance
        self.registry = registry
        self.alert = alert
        self.translator = translator
        self.threshold = threshold
        self.interval = interval
        self._latest: float | None = None
        self._heard = asyncio.Event()

    def observer(self, inner: Observer) -> Observer:
        """The lifecycle's event observer, also hearing the balances its answers carry."""

        def observe(event: str, fields: Mapping[str, Any]) -> None:
            inner(event, fields)
            credits = fields.get("credits")
            if (
                event == "credits_left"
                and fields.get("provider") in KIE_ACCOUNT
                and isinstance(credits, int | float)
            ):
                self.report(float(credits))

        return observe

    def report(self, credits: float) -> None:
        """A balance heard in passing; checked by the watch loop (bursts coalesce)."""
        self._latest = credits
        self._heard.set()

    async def check(self, credits: float) -> None:
        """Open the incident (and alert) below the threshold; close it at or above."""
        if self.on_balance is not None:
            self.on_balance(credits)
        if self.threshold is None:
            return
        if credits >= self.threshold:
            if await self.db.alerts.close(INCIDENT, credits):
                log.info("credit balance recovered", extra={"credits": credits})
            return
        if await self.db.alerts.open(INCIDENT, credits):
            detail = self.translator.tr(
                "en",
                "admin.low_credits",
                credits=format_credits(credits),
                threshold=format_credits(self.threshold),
            )
            log.warning("credit balance low", extra={"credits": credits})
            await self.alert(INCIDENT, detail)

    async def look(self) -> None:
        """Ask KIE's credit endpoint (no KIE account: nothing to look at)."""
        provider = self.registry.providers.get("kie")
        if not isinstance(provider, HttpProvider):
            return
        try:
            credits = await account_credits(provider)
        except ProviderError as exc:
            log.warning("credit balance query failed", extra={"error": exc.code})
            return
        await self.check(credits)

    async def run(self, stop: asyncio.Event) -> None:
        """Look at startup and every `interval`; check what callbacks report in between."""
        next_look = time.monotonic()
        while not stop.is_set():
            heard = asyncio.create_task(self._heard.wait())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait(
                {heard, stopped},
                timeout=max(0.0, next_look - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            for waiter in (heard, stopped):
                waiter.cancel()
            await asyncio.gather(heard, stopped, return_exceptions=True)
            if stop.is_set():
                return
            try:
                if self._heard.is_set():
                    self._heard.clear()
                    if self._latest is not None:
                        await self.check(self._latest)
                if time.monotonic() >= next_look:
                    next_look = time.monotonic() + self.interval
                    await self.look()
            except Exception:
                log.exception("credit watch failed")


CREDIT_WATCH = web.AppKey("credit_watch", CreditWatch)


async def watch_credits(app: web.Application) -> AsyncIterator[None]:
    """The watch loop (a cleanup context), when LOW_CREDITS_ALERT is set."""
    if app[SETTINGS].low_credits_alert is None:
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(app[CREDIT_WATCH].run(stop), name="credit-watch")
    yield
    stop.set()
    done, _ = await asyncio.wait({task}, timeout=STOP_GRACE)
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
