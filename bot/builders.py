"""The resources the app is made of, built from settings: providers, the input-photo store, PTB."""

from __future__ import annotations

from functools import partial

from telegram.ext import Application, ContextTypes

from bot.config import Settings
from bot.handlers import register_all
from bot.providers.base import AccountLimit, Provider
from bot.providers.http import HttpProvider
from bot.providers.kie import PLAYGROUND_PREFIX, jobs_api
from bot.providers.kie4o import kie4o_api
from bot.providers.kie_upload import KieUploadStore
from bot.providers.odkkk import odkkk_api
from bot.providers.transport import Transport
from bot.services import BotContext
from bot.setting_values import RateLimit
from bot.telegram_http import AiohttpRequest
from bot.telegram_limits import TelegramLimiter
from storage.blobs import BlobStore, LocalBlobStore
from storage.s3 import S3BlobStore, S3Options


def build_providers(settings: Settings, transport: Transport) -> list[Provider]:
    """The provider families whose keys are set (see the README's provider table).

    KIE counts requests per account, so every KIE family shares one rate limit (the
    account "kie"; turns are taken in the database, see storage.turns). Each offers
    the models the catalog (settings.catalog) lists for it.
    """
    models = settings.catalog.models_for
    timeout = settings.provider_timeout
    providers: list[Provider] = []
    if settings.kie_api_key is not None:
        kie_key = settings.kie_api_key.get_secret_value()
        kie_url = str(settings.kie_api_url).rstrip("/")
        hmac_key = (
            settings.kie_webhook_hmac_key.get_secret_value()
            if settings.kie_webhook_hmac_key
            else None
        )
        # The KIE APIs share one account: key, HMAC key, base URL and rate limit.
        on_kie_account = partial(
            HttpProvider,
            transport=transport,
            base_url=kie_url,
            api_key=kie_key,
            hmac_key=hmac_key,
            rate_limit=AccountLimit("kie", *settings.kie_rate_limit, timeout),
        )
        providers.append(on_kie_account(name="kie", api=jobs_api(), models=models("kie")))
        if settings.kie_playground:
            providers.append(
                on_kie_account(
                    name="kie-playground",
                    api=jobs_api(PLAYGROUND_PREFIX),
                    models=models("kie-playground"),
                )
            )
        if settings.kie_4o:
            providers.append(
                on_kie_account(name="kie-4o", api=kie4o_api(), models=models("kie-4o"))
            )
    if settings.apikley_api_key is not None:
        providers.append(
            HttpProvider(
                name="apikley",
                api=jobs_api(),
                transport=transport,
                base_url=str(settings.apikley_api_url).rstrip("/"),
                api_key=settings.apikley_api_key.get_secret_value(),
                models=models("apikley"),
                rate_limit=AccountLimit("apikley", *settings.apikley_rate_limit, timeout),
            )
        )
    if settings.odkkk_api_key is not None:
        providers.append(
            HttpProvider(
                name="odkkk",
                api=odkkk_api(settings.odkkk_task_path),
                transport=transport,
                base_url=str(settings.odkkk_api_url).rstrip("/"),
                api_key=settings.odkkk_api_key.get_secret_value(),
                models=models("odkkk"),
                rate_limit=AccountLimit("odkkk", *settings.odkkk_rate_limit, timeout),
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
    assert settings.s3_bucket is not None  # guaranteed by Settings validation
    secret = settings.s3_secret_access_key
    return S3BlobStore(
        S3Options(
            bucket=settings.s3_bucket,
            region=settings.s3_region,
            endpoint_url=str(settings.s3_endpoint_url) if settings.s3_endpoint_url else None,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None,
            prefix=settings.s3_prefix,
            public_base_url=(
                str(settings.s3_public_base_url) if settings.s3_public_base_url else None
            ),
            url_ttl=settings.file_url_ttl,
            addressing_style=settings.s3_addressing_style,
            read_timeout=settings.provider_timeout,
        )
    )


def build_telegram(settings: Settings) -> Application:  # type: ignore[type-arg]
    base = settings.telegram_base
    builder = (
        Application.builder()
        .token(settings.bot_token.get_secret_value())
        .base_url(f"{base}/bot")
        .base_file_url(f"{base}/file/bot")
        .context_types(ContextTypes(context=BotContext))
        .concurrent_updates(256)
        .request(AiohttpRequest(connection_pool_size=128))
        .get_updates_request(
            AiohttpRequest(connection_pool_size=1, read_timeout=settings.telegram_poll_timeout + 10)
        )
        .rate_limiter(
            TelegramLimiter(
                bot_rate=RateLimit(settings.telegram_max_rate, 1.0),
                chat_rate=settings.telegram_chat_rate,
                group_rate=settings.telegram_group_rate,
            )
        )
    )
    # Updates are fetched by bot.polling or the webhook route and handed over by bot.intake,
    # never by PTB's Updater (it acknowledges updates before they are recorded).
    application = builder.updater(None).build()
    register_all(application)
    return application
