"""`python -m bot`: load settings and run the service until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from aiohttp import web
from telegram.error import InvalidToken

from bot.app import create_app, start_serving
from bot.config import ConfigError, Settings, load_settings
from bot.keys import SERVICES
from bot.logs import log_uncaught_exceptions, settings_secrets, setup_logging
from bot.web import make_runner

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


def _on_signal(app: web.Application, signum: int) -> None:
    """SIGTERM/SIGINT: stop submitting new tasks at once, then shut down (GracefulExit).

    The port stops listening before the app's cleanup runs; a task submitted in between
    would name an input photo URL of this service that no longer answers.
    """
    log.info("signal received: no new submissions", extra={"signal": signum})
    if SERVICES in app:  # else still starting: nothing submits yet
        app[SERVICES].edits.stop_submitting()
    raise web.GracefulExit()


async def _serve(app: web.Application, settings: Settings) -> None:
    runner = make_runner(app, access_log=None, shutdown_timeout=30.0)
    try:
        await start_serving(runner, settings.host, settings.port)
        await asyncio.Event().wait()  # until a signal cancels this task
    finally:
        await runner.cleanup()


def _run(loop: asyncio.AbstractEventLoop, app: web.Application, settings: Settings) -> None:
    """Serve until a signal; then shut down in order and close the loop (as aiohttp's
    `run_app` does, which has no step between "listening" and "running" to register the
    webhook in)."""
    asyncio.set_event_loop(loop)
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals here
            loop.add_signal_handler(signum, _on_signal, app, signum)
    main_task = loop.create_task(_serve(app, settings))
    try:
        loop.run_until_complete(main_task)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not main_task.done():
            main_task.cancel()  # its cleanup runs now
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(main_task)
        rest = asyncio.all_tasks(loop)
        for task in rest:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"photo-edit-bot: {exc}", file=sys.stderr)
        return 2
    # Before anything that can fail on the token (the first getMe): from here on, every
    # record and every traceback is scrubbed of the secrets.
    redacting = setup_logging(settings.log_level, settings_secrets(settings))
    log_uncaught_exceptions()
    try:
        loop = new_event_loop()
        log.info("event loop", extra={"loop": f"{type(loop).__module__}.{type(loop).__name__}"})
        _run(loop, create_app(settings), settings)
    except Exception as exc:
        log.critical("the service stopped on an error", exc_info=exc)
        print(f"photo-edit-bot: {redacting.scrub(_failure(exc))}", file=sys.stderr)
        return 1
    return 0


def _failure(exc: Exception) -> str:
    """One line for the operator saying what went wrong (the log record has the traceback)."""
    if isinstance(exc, InvalidToken):
        # PTB maps both 401 and 404 from the Bot API to InvalidToken; a 404 also answers a
        # TELEGRAM_API_URL that names no Bot API server.
        answer = exc.__cause__ if isinstance(exc.__cause__, InvalidToken) else exc
        return (
            f"the Bot API refused the bot token ({answer.message}): check BOT_TOKEN, and "
            "TELEGRAM_API_URL if you run your own Bot API server"
        )
    return f"stopped on an error: {type(exc).__name__}: {exc}"


if __name__ == "__main__":
    sys.exit(main())
