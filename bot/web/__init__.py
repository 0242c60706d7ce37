"""aiohttp routes: Telegram webhook, provider callbacks, input files, health and metrics."""

from __future__ import annotations

from aiohttp import web

from bot.web import callbacks, files, health, telegram
from bot.web.errors import error_middleware

__all__ = ["error_middleware", "setup_routes"]


def setup_routes(app: web.Application) -> None:
    telegram.setup(app)
    callbacks.setup(app)
    files.setup(app)
    health.setup(app)
