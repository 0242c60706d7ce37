"""`python -m bot`: load settings and run the service until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import sys

from aiohttp import web

from bot.app import create_app
from bot.config import ConfigError, load_settings
from bot.logs import settings_secrets, setup_logging

log = logging.getLogger("bot")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (Linux, macOS), else asyncio's own.

    uvloop runs the same asyncio code with a fraction of the event loop's CPU time per
    socket operation and callback (see the README's Performance section).
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"photo-edit-bot: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings_secrets(settings))
    loop = new_event_loop()
    log.info("event loop", extra={"loop": f"{type(loop).__module__}.{type(loop).__name__}"})
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        shutdown_timeout=30.0,
        print=None,
        access_log=None,
        loop=loop,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
