"""The app factory: one aiohttp Application owning every resource through cleanup contexts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from telegram import Update
from telegram.ext import AIORateLimiter, Application, ContextTypes

from bot.config import Settings
from bot.delivery import TelegramNotifier, TelegramPhotoSource
from bot.edits import EditService, Timing
from bot.handlers import album, register_all
from bot.i18n import Translator
from bot.keys import DATABASE, HTTP, PTB, SERVICES, SETTINGS
from bot.metrics import Metrics
from bot.providers.base import Provider
from bot.providers.kie import KieJobsProvider, jobs_models
from bot.providers.registry import ProviderRegistry
from bot.providers.transport import RetryPolicy, SlidingWindowLimiter, Transport
from bot.results import ResultFetcher
from bot.services import SERVICES_KEY, BotContext, Services
from bot.tasks import TaskTracker
from bot.web import error_middleware, setup_routes
from storage.blobs import BlobStore, KieUploadStore, LocalBlobStore
from storage.db import Database

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 20.0
BLOB_MAX_AGE = 24 * 3600.0


def create_app(settings: Settings, *, translator: Translator | None = None) -> web.Application:
    """Build the service; resources open on startup and close on cleanup, in order."""
    app = web.Application(client_max_size=1024 * 1024, middlewares=[error_middleware])
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_http_session)
    app.cleanup_ctx.append(_services(translator or Translator()))
    app.cleanup_ctx.append(_sweeper)
    setup_routes(app)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    db = Database(app[SETTINGS].resolved_database_url)
    await db.migrate()
    app[DATABASE] = db
    yield
    await db.close()


async def _http_session(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=200, limit_per_host=100, ttl_dns_cache=300)
    async with aiohttp.ClientSession(
        connector=connector, headers={"User-Agent": "photo-edit-bot/0.1"}
    ) as session:
        app[HTTP] = session
        yield


def build_providers(settings: Settings, transport: Transport) -> list[Provider]:
    """The provider families whose keys are set."""
    providers: list[Provider] = []
    if settings.kie_api_key is not None:
        limiter = SlidingWindowLimiter(20, 10.0)
        providers.append(
            KieJobsProvider(
                name="kie",
                transport=transport,
                base_url=str(settings.kie_api_url).rstrip("/"),
                api_key=settings.kie_api_key.get_secret_value(),
                models=jobs_models("kie"),
                hmac_key=(
                    settings.kie_webhook_hmac_key.get_secret_value()
                    if settings.kie_webhook_hmac_key
                    else None
                ),
                limiter=limiter,
            )
        )
    return providers


def build_blob_store(settings: Settings, transport: Transport) -> BlobStore:
    kind = settings.resolved_storage
    if kind == "local":
        assert settings.base_url is not None  # guaranteed by Settings validation
        return LocalBlobStore(
            settings.data_dir / "files",
            settings.base_url,
            settings.resolved_signing_key,
            settings.file_url_ttl,
        )
    if kind == "kie":
        assert settings.kie_api_key is not None  # guaranteed by Settings validation
        return KieUploadStore(
            transport, str(settings.kie_upload_url), settings.kie_api_key.get_secret_value()
        )
    raise NotImplementedError(f"STORAGE={kind} is not available yet")


def build_telegram(settings: Settings) -> Application:  # type: ignore[type-arg]
    base = settings.telegram_base
    builder = (
        Application.builder()
        .token(settings.bot_token.get_secret_value())
        .base_url(f"{base}/bot")
        .base_file_url(f"{base}/file/bot")
        .context_types(ContextTypes(context=BotContext))
        .concurrent_updates(256)
        .connection_pool_size(128)
        .rate_limiter(
            AIORateLimiter(
                overall_max_rate=settings.telegram_max_rate,
                overall_time_period=1,
                group_max_rate=20,
                group_time_period=60,
                max_retries=3,
            )
        )
    )
    if settings.webhook_mode:
        builder = builder.updater(None)
    else:
        builder = builder.get_updates_read_timeout(settings.telegram_poll_timeout + 10)
    application = builder.build()
    register_all(application)
    return application


def _services(translator: Translator):  # type: ignore[no-untyped-def]
    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        metrics = Metrics()
        tracker = TaskTracker()
        transport = Transport(
            app[HTTP],
            timeout=settings.provider_timeout,
            retry=RetryPolicy(
                max_retries=settings.provider_max_retries,
                backoff_base=settings.provider_backoff_base,
            ),
            on_call=metrics.observe_call,
        )
        registry = ProviderRegistry(build_providers(settings, transport))
        if settings.default_model not in registry.models:
            raise RuntimeError(
                f"DEFAULT_MODEL={settings.default_model} is not offered by any enabled provider "
                f"(enabled models: {', '.join(registry.models) or 'none: set KIE_API_KEY'})"
            )
        blobs = build_blob_store(settings, transport)
        ptb = build_telegram(settings)
        notifier = TelegramNotifier(
            ptb.bot,
            translator,
            ResultFetcher(app[HTTP], max_bytes=settings.max_result_bytes),
            registry,
            settings.admin_ids,
        )
        edits = EditService(
            app[DATABASE],
            registry,
            blobs,
            TelegramPhotoSource(ptb.bot),
            notifier,
            base_url=settings.base_url,
            timing=Timing(
                poll_interval=settings.poll_interval,
                poll_max_interval=settings.poll_max_interval,
                callback_grace=settings.callback_grace,
                task_timeout=settings.task_timeout,
            ),
            tracker=tracker,
            observe=metrics.observe_edit,
        )
        services = Services(
            settings=settings,
            db=app[DATABASE],
            edits=edits,
            translator=translator,
            registry=registry,
            blobs=blobs,
            tracker=tracker,
            metrics=metrics,
        )
        ptb.bot_data[SERVICES_KEY] = services
        app[SERVICES] = services
        app[PTB] = ptb
        await ptb.initialize()
        await ptb.start()
        if settings.webhook_mode:
            await ptb.bot.set_webhook(
                url=f"{settings.base_url}/telegram",
                secret_token=settings.resolved_webhook_secret,
                allowed_updates=Update.ALL_TYPES,
                max_connections=100,
            )
            log.info("webhook mode", extra={"url": f"{settings.base_url}/telegram"})
        else:
            assert ptb.updater is not None
            await ptb.updater.start_polling(
                allowed_updates=Update.ALL_TYPES,
                timeout=settings.telegram_poll_timeout,
                poll_interval=0.0,
            )
            log.info("long polling mode")
        try:
            yield
        finally:
            # Stop taking new work, let in-flight handlers and deliveries finish, then close.
            if ptb.updater is not None and ptb.updater.running:
                await ptb.updater.stop()
            if ptb.running:
                await ptb.stop()
            await tracker.drain(SHUTDOWN_GRACE)
            await ptb.shutdown()
            await registry.close()
            await blobs.close()

    return services_ctx


async def _sweeper(app: web.Application) -> AsyncIterator[None]:
    """Recovery and polling loop: runs at startup and every SWEEP_INTERVAL seconds."""
    settings = app[SETTINGS]
    services = app[SERVICES]
    stop = asyncio.Event()

    async def loop() -> None:
        last_cleanup = 0.0
        while not stop.is_set():
            try:
                await services.edits.sweep()
                if time.monotonic() - last_cleanup > 60:
                    last_cleanup = time.monotonic()
                    await services.edits.cleanup_blobs()
                    await album.recover(app[PTB].bot, services)
                    await services.blobs.sweep(older_than=time.time() - BLOB_MAX_AGE)
            except Exception:
                log.exception("sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=settings.sweep_interval)

    task = asyncio.create_task(loop(), name="sweeper")
    yield
    stop.set()
    await task
