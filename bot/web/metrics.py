"""GET /metrics (Prometheus), from counters and a snapshot: a scrape never reaches the database.

Counters and histograms move as events happen. The gauges that count database rows (edits by
state, queue depths) are refreshed by one task per process every METRICS_REFRESH_INTERVAL,
so any number of scrapers cost the database one set of counts per interval. METRICS_TOKEN
makes /metrics ask for `Authorization: Bearer <token>`; with METRICS_PORT it is served on
that port alone (the main port answers 404 for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator

from aiohttp import web

from bot.keys import DATABASE, METRICS, SETTINGS, TRACKER
from bot.metrics import CONTENT_TYPE_LATEST, Metrics
from bot.startup import port_in_use
from bot.web.server import BoundedSite, make_runner, read_deadline
from storage.db import Database

log = logging.getLogger(__name__)


def _authorized(request: web.Request) -> bool:
    token = request.app[SETTINGS].metrics_token
    if token is None:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), expected)


async def metrics(request: web.Request) -> web.Response:
    if not _authorized(request):
        return web.Response(
            status=401, text="unauthorized", headers={"WWW-Authenticate": 'Bearer realm="metrics"'}
        )
    return web.Response(
        body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def setup(app: web.Application) -> None:
    if app[SETTINGS].metrics_port is None:
        app.router.add_get("/metrics", metrics)


async def _refresh(meters: Metrics, db: Database, interval: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await meters.refresh(db)
        except Exception:
            log.exception("metrics snapshot failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def serve_metrics(app: web.Application) -> AsyncIterator[None]:
    """The snapshot task, and the METRICS_PORT listener when one is set."""
    settings, meters, tracker = app[SETTINGS], app[METRICS], app[TRACKER]
    meters.background_tasks.set_function(lambda: len(tracker))
    stop = asyncio.Event()
    task = asyncio.create_task(
        _refresh(meters, app[DATABASE], settings.metrics_refresh_interval, stop),
        name="metrics-snapshot",
    )
    runner: web.AppRunner | None = None
    try:
        if settings.metrics_port is not None:
            listener = web.Application(middlewares=[read_deadline])
            listener[SETTINGS], listener[METRICS] = settings, meters
            listener.router.add_get("/metrics", metrics)
            runner = make_runner(listener, access_log=None, handle_signals=False)
            await runner.setup()
            site = BoundedSite(
                runner,
                settings.host,
                settings.metrics_port,
                max_connections=settings.http_max_connections,
            )
            try:
                await site.start()
            except OSError as exc:
                raise (
                    port_in_use(exc, "METRICS_PORT", settings.host, settings.metrics_port) or exc
                ) from None
        yield
    finally:
        stop.set()
        await task
        if runner is not None:
            await runner.cleanup()
