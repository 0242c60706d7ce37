"""GET /healthz: the database, and (webhook mode) whether Telegram's webhook points here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError
from telegram import Bot
from telegram.error import TelegramError

from bot.keys import METRICS, PTB, SERVICES, SETTINGS


class WebhookCheck:
    """Telegram's getWebhookInfo, asked at most once per WEBHOOK_CHECK_TTL however many
    probes come, and by one request at a time that concurrent probes share.

    It is a Bot API call like any other: a 429 on it makes PTB's rate limiter hold every
    request of the bot (every reply) for the retry_after, so probes must not multiply it.
    """

    def __init__(self, ttl: float, on_status: Callable[[bool], None] | None = None) -> None:
        self._ttl = ttl
        self._on_status = on_status
        self._answer: tuple[float, str] | None = None  # (when, status)
        self._asking: asyncio.Task[str] | None = None

    async def status(self, bot: Bot, expected_url: str) -> str:
        """ "ok", "not set" (the webhook points elsewhere) or "error: <kind>"."""
        if self._answer is not None and time.monotonic() - self._answer[0] < self._ttl:
            return self._answer[1]
        if self._asking is None:
            self._asking = asyncio.create_task(self._ask(bot, expected_url), name="webhook-check")
        # A probe that gives up (its client left) does not cancel the others' answer.
        return await asyncio.shield(self._asking)

    async def _ask(self, bot: Bot, expected_url: str) -> str:
        try:
            info = await bot.get_webhook_info()
            status = "ok" if info.url == expected_url else "not set"
        except TelegramError as exc:
            status = f"error: {type(exc).__name__}"
        finally:
            self._asking = None
        self._answer = (time.monotonic(), status)
        if self._on_status is not None:
            self._on_status(status == "ok")
        return status


WEBHOOK_CHECK = web.AppKey("webhook_check", WebhookCheck)


async def healthz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    checks: dict[str, str] = {}
    healthy = True
    try:
        await services.db.ping()
        checks["database"] = "ok"
    except (SQLAlchemyError, OSError) as exc:
        checks["database"] = f"error: {type(exc).__name__}"
        healthy = False
    settings = request.app[SETTINGS]
    if settings.webhook_mode:
        expected = f"{settings.base_url}/telegram"
        checks["webhook"] = await request.app[WEBHOOK_CHECK].status(request.app[PTB].bot, expected)
        healthy = healthy and checks["webhook"] == "ok"
    else:
        checks["webhook"] = "polling"
    return web.json_response({"ok": healthy, "checks": checks}, status=200 if healthy else 503)


def setup(app: web.Application) -> None:
    app[WEBHOOK_CHECK] = WebhookCheck(
        app[SETTINGS].webhook_check_ttl, on_status=app[METRICS].webhook_ok.set
    )
    app.router.add_get("/healthz", healthz)
