"""`python -m bot`: load settings and run the service until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from aiohttp import web

from bot.app import create_app
from bot.config import ConfigError, load_settings
from bot.keys import SERVICES
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


async def _stop_submitting_on_signal(app: web.Application) -> None:
    """On SIGTERM/SIGINT stop submitting new tasks at once, then shut down as aiohttp does.

    aiohttp stops listening before the app's cleanup runs; a task submitted in between would
    name an input photo URL of this service that no longer answers. (Replaces the handlers
    `run_app` installed just before the app started.)
    """
    loop = asyncio.get_running_loop()

    def stop(signum: int) -> None:
        log.info("signal received: no new submissions", extra={"signal": signum})
        app[SERVICES].edits.stop_submitting()
        raise web.GracefulExit()

    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals here
            loop.add_signal_handler(signum, stop, signum)


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"photo-edit-bot: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings_secrets(settings))
    loop = new_event_loop()
    log.info("event loop", extra={"loop": f"{type(loop).__module__}.{type(loop).__name__}"})
    app = create_app(settings)
    app.on_startup.append(_stop_submitting_on_signal)
    web.run_app(
        app,
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
