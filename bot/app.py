"""The app factory: one aiohttp Application owning every resource through cleanup contexts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from telegram import Update

from bot import builders
from bot.albums import recover as recover_albums
from bot.commands import publish_commands
from bot.config import Settings
from bot.credit_watch import CREDIT_WATCH, CreditWatch, watch_credits
from bot.delivery import TelegramNotifier, TelegramPhotoSource
from bot.i18n import Translator
from bot.intake import UpdateIntake
from bot.keys import (
    BLOBS,
    DATABASE,
    HTTP,
    INTAKE,
    METRICS,
    PTB,
    REGISTRY,
    RESULT_HTTP,
    SERVICES,
    SETTINGS,
    TRACKER,
    TRANSLATOR,
    TRANSPORT,
)
from bot.lifecycle.context import Timing
from bot.lifecycle.service import EditService
from bot.metrics import Metrics
from bot.operator_langs import OperatorLanguages
from bot.providers.registry import ProviderRegistry
from bot.providers.transport import RetryPolicy, Transport
from bot.result_addresses import result_session
from bot.results import ResultFetcher
from bot.services import SERVICES_KEY, Services
from bot.startup import StartupError, database_calls, port_in_use, telegram_calls
from bot.tasks import TaskTracker
from bot.web import BoundedSite, error_middleware, read_deadline, serve_metrics, setup_routes
from storage.db import Database

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 20.0


def create_app(settings: Settings, *, translator: Translator | None = None) -> web.Application:
    """Build the service; resources open on startup and close on cleanup, in order."""
    app = web.Application(
        client_max_size=1024 * 1024, middlewares=[read_deadline, error_middleware]
    )
    app[SETTINGS] = settings
    app[TRANSLATOR] = translator or Translator()
    app[METRICS] = Metrics()
    # Opened in this order, closed in the reverse one.
    app.cleanup_ctx.extend(
        [
            _database,
            _http_session,
            _providers,
            _blob_store,
            _telegram,
            _background_tasks,
            serve_metrics,
            _edit_service,
            _intake,
            _sweeper,
            watch_credits,
        ]
    )
    setup_routes(app)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    db = Database(settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        with database_calls(settings):
            await db.migrate()
    except BaseException:
        await db.close()  # a context that fails before its yield is never cleaned up
        raise
    app[DATABASE] = db
    app[METRICS].watch_database(db)
    yield
    await db.close()


async def _http_session(app: web.Application) -> AsyncIterator[None]:
    """The outgoing HTTP sessions (providers; result downloads, which reach only the addresses
    bot/result_addresses.py allows), and the provider transport (retries, timeouts)."""
    settings = app[SETTINGS]
    connector = aiohttp.TCPConnector(limit=200, limit_per_host=100, ttl_dns_cache=300)
    headers = {"User-Agent": "photo-edit-bot/0.1"}
    async with (
        aiohttp.ClientSession(connector=connector, headers=headers) as session,
        result_session(allow_private=settings.result_allow_private, headers=headers) as results,
    ):
        app[HTTP], app[RESULT_HTTP] = session, results
        app[TRANSPORT] = Transport(
            session,
            timeout=settings.provider_timeout,
            retry=RetryPolicy(
                max_retries=settings.provider_max_retries,
                backoff_base=settings.provider_backoff_base,
            ),
            on_call=app[METRICS].observe_call,
        )
        yield


async def _providers(app: web.Application) -> AsyncIterator[None]:
    """The enabled providers; refuses to start if DEFAULT_MODEL is not one of their models,
    or DEFAULT_GENERATOR (when set) not one of those that generate."""
    settings = app[SETTINGS]
    registry = ProviderRegistry(
        builders.build_providers(settings, app[TRANSPORT]), failover=settings.failover
    )
    if settings.default_model not in registry.models:
        enabled = ", ".join(registry.models) or (
            "none: set KIE_API_KEY, APIKLEY_API_KEY or ODKKK_API_KEY"
        )
        raise StartupError(
            f"DEFAULT_MODEL={settings.default_model} is not offered by any enabled provider "
            f"(enabled models: {enabled}): set DEFAULT_MODEL to one of them, or enable a "
            "provider of that model (README, Providers and models)"
        )
    generator = registry.models.get(settings.default_generator)
    if settings.default_generator and (generator is None or not generator.generates):
        drawing = ", ".join(s.id for s in registry.models.values() if s.generates) or "none"
        raise StartupError(
            f"DEFAULT_GENERATOR={settings.default_generator} is not an enabled model that "
            f"generates from text (enabled ones: {drawing}): set DEFAULT_GENERATOR to one of "
            "them, or leave it unset (README, Configuration)"
        )
    app[REGISTRY] = registry
    yield
    await registry.close()


async def _blob_store(app: web.Application) -> AsyncIterator[None]:
    blobs = builders.build_blob_store(app[SETTINGS], app[TRANSPORT])
    await blobs.start()
    app[BLOBS] = blobs
    yield
    await blobs.close()


async def _telegram(app: web.Application) -> AsyncIterator[None]:
    """PTB's Application, its handlers registered; it takes updates only once `_intake` runs."""
    ptb = builders.build_telegram(app[SETTINGS])
    app[PTB] = ptb
    try:
        with telegram_calls(app[SETTINGS]):
            await ptb.initialize()
    except BaseException:
        # PTB marks itself initialized only after getMe answered, so its own shutdown would
        # leave the HTTP sessions it opened before that call unclosed.
        await asyncio.gather(*(request.shutdown() for request in ptb.bot._request))
        raise
    yield
    await ptb.shutdown()


async def _background_tasks(app: web.Application) -> AsyncIterator[None]:
    """Background work (deliveries, album flushes), drained once updates have stopped."""
    tracker = TaskTracker()
    app[TRACKER] = tracker
    yield
    await tracker.drain(tracker.grace_left(SHUTDOWN_GRACE))
    log.info("background work drained", extra={"unfinished": len(tracker)})


async def _edit_service(app: web.Application) -> AsyncIterator[None]:
    """The edit lifecycle and the services handlers and routes use (nothing to close: its
    submissions are stopped by `_intake`, its work drained with the background tasks)."""
    settings, translator, metrics = app[SETTINGS], app[TRANSLATOR], app[METRICS]
    bot = app[PTB].bot
    notifier = TelegramNotifier(
        bot,
        translator,
        ResultFetcher(
            app[RESULT_HTTP],
            max_bytes=settings.max_result_bytes,
            allow_private=settings.result_allow_private,
        ),
        app[REGISTRY],
        settings.admin_ids,
        OperatorLanguages(settings.admin_ids, app[DATABASE].chat_settings, translator),
    )
    watch = CreditWatch(
        app[DATABASE],
        app[REGISTRY],
        notifier.alert_admins,
        translator,
        threshold=settings.low_credits_alert,
        interval=settings.credits_check_interval,
        on_balance=metrics.provider_credits.labels(account="kie").set,
    )
    app[CREDIT_WATCH] = watch
    edits = EditService(
        app[DATABASE],
        app[REGISTRY],
        app[BLOBS],
        TelegramPhotoSource(bot),
        notifier,
        base_url=settings.base_url,
        timing=Timing(
            poll_interval=settings.poll_interval,
            poll_max_interval=settings.poll_max_interval,
            poll_min_interval=settings.poll_min_interval,
            status_edit_interval=settings.status_edit_interval,
            status_edit_interval_group=settings.status_edit_interval_group,
            callback_grace=settings.callback_grace,
            task_timeout=settings.task_timeout,
            blob_grace=settings.blob_grace,
            approval_timeout=settings.approval_timeout,
            submit_lease=settings.submit_lease,
            delivery_lease=settings.delivery_lease,
            notify_lease=settings.notify_lease,
            poll_lease=settings.poll_lease,
            lease_renewal=settings.lease_renew_interval,
        ),
        tracker=app[TRACKER],
        observe=watch.observer(metrics.observe_edit),
        normalize_budget_mb=settings.normalize_memory_budget_mb,
    )
    services = Services(
        settings=settings,
        db=app[DATABASE],
        edits=edits,
        translator=translator,
        registry=app[REGISTRY],
        blobs=app[BLOBS],
        tracker=app[TRACKER],
        metrics=metrics,
        notifier=notifier,
    )
    app[PTB].bot_data[SERVICES_KEY] = services
    app[SERVICES] = services
    yield


async def _intake(app: web.Application) -> AsyncIterator[None]:
    """New work coming in: Telegram updates and the submissions they start. Started last,
    stopped first. Updates flow only once the port listens (`start_serving`)."""
    settings, ptb = app[SETTINGS], app[PTB]
    intake = UpdateIntake(app[DATABASE].updates, ptb, lease=settings.update_lease)
    app[INTAKE] = intake
    await ptb.start()
    try:
        with telegram_calls(settings):
            await publish_commands(ptb.bot, app[TRANSLATOR], payments=settings.payments)
        await intake.start()  # updates an earlier run recorded and did not finish
    except BaseException:
        await ptb.stop()  # so that `_telegram` can shut it down
        raise
    yield
    # Stop taking new work, let updates being handled finish; background work drains next.
    log.info("shutting down: finishing updates and background work")
    app[SERVICES].edits.stop_submitting()
    await intake.close(SHUTDOWN_GRACE)
    if ptb.running:
        await ptb.stop()


async def start_serving(runner: web.AppRunner, host: str, port: int) -> None:
    """Open every resource, listen on `host`:`port`, and only then have Telegram send updates.

    An update Telegram sends to a port that does not listen yet is refused, and Telegram
    tries it again only seconds to a minute later; so the webhook is registered (or long
    polling starts) last.
    """
    await runner.setup()
    app = runner.app
    settings, intake = app[SETTINGS], app[INTAKE]
    site = BoundedSite(runner, host, port, max_connections=settings.http_max_connections)
    try:
        await site.start()
    except OSError as exc:
        raise port_in_use(exc, "PORT", host, port) or exc from None
    if settings.webhook_mode:
        with telegram_calls(settings, webhook=True):
            await app[PTB].bot.set_webhook(
                url=f"{settings.base_url}/telegram",
                secret_token=settings.resolved_webhook_secret,
                allowed_updates=Update.ALL_TYPES,
                max_connections=100,
            )
        log.info("webhook mode", extra={"url": f"{settings.base_url}/telegram"})
        return
    with telegram_calls(settings):
        await intake.poll(settings.telegram_poll_timeout)
    log.info("long polling mode")


async def _sweeper(app: web.Application) -> AsyncIterator[None]:
    """Recovery and polling loop: runs at startup and every SWEEP_INTERVAL seconds."""
    settings = app[SETTINGS]
    services = app[SERVICES]
    stop = asyncio.Event()

    async def loop() -> None:
        last_cleanup = 0.0
        last_blob_cleanup = -math.inf
        while not stop.is_set():
            try:
                await services.edits.sweep()
                if time.monotonic() - last_cleanup > 60:
                    last_cleanup = time.monotonic()
                    await recover_albums(app[PTB].bot, services)
                if time.monotonic() - last_blob_cleanup >= settings.blob_cleanup_interval:
                    # Input photos: those of ended edits after BLOB_GRACE, orphans after
                    # BLOB_MAX_AGE.
                    last_blob_cleanup = time.monotonic()
                    await services.edits.cleanup_blobs()
                    await services.blobs.sweep(older_than=time.time() - settings.blob_max_age)
            except Exception:
                log.exception("sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=settings.sweep_interval)

    task = asyncio.create_task(loop(), name="sweeper")
    yield
    # Let the running pass finish its jobs, within the shutdown grace (shared with the
    # background work); submissions waiting for a rate limiter or a back-off stop at once
    # and stay queued. Jobs cut off give their leases back (or record an interrupted
    # submission) as they are cancelled.
    services.edits.stop_submitting()
    stop.set()
    done, _ = await asyncio.wait({task}, timeout=app[TRACKER].grace_left(SHUTDOWN_GRACE))
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
