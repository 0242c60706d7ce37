"""aiohttp routes: Telegram webhook, provider callbacks, input files, health and metrics;
the listener's bounds (bot.web.server)."""

from __future__ import annotations

from aiohttp import web

from bot.web import callbacks, files, health, metrics, telegram
from bot.web.errors import error_middleware
from bot.web.metrics import serve_metrics
from bot.web.server import BoundedSite, make_runner, read_deadline

__all__ = [
    "BoundedSite",
    "error_middleware",
    "make_runner",
    "read_deadline",
    "serve_metrics",
    "setup_routes",
]


def setup_routes(app: web.Application) -> None:
    telegram.setup(app)
    callbacks.setup(app)
    files.setup(app)
    health.setup(app)
    metrics.setup(app)
