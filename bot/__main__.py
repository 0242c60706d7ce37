"""`python -m bot`: load settings and run the service until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from aiohttp import web

from bot.app import create_app, start_serving
from bot.config import ConfigError, Settings, load_settings
from bot.keys import SERVICES
from bot.logs import log_uncaught_exceptions, settings_secrets, setup_logging
from bot.startup import Retries, StartupError, Unreachable, check_data_dir, one_line
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


class _Running:
    """The app of the current start-up attempt (a failed attempt builds a new one)."""

    app: web.Application | None = None


def _on_signal(running: _Running, signum: int) -> None:
    """SIGTERM/SIGINT: stop submitting new tasks at once, then shut down (GracefulExit).

    The port stops listening before the app's cleanup runs; a task submitted in between
    would name an input photo URL of this service that no longer answers.
    """
    log.info("signal received: no new submissions", extra={"signal": signum})
    if running.app is not None and SERVICES in running.app:  # else still starting
        running.app[SERVICES].edits.stop_submitting()
    raise web.GracefulExit()


async def _serve(running: _Running, settings: Settings) -> None:
    """Start (again, while Telegram or the database does not answer), then serve."""
    retries = Retries(settings.startup_retry_timeout)
    while True:
        delay = 0.0
        running.app = app = create_app(settings)
        runner = make_runner(app, access_log=None, shutdown_timeout=30.0)
        try:
            try:
                await start_serving(runner, settings.host, settings.port)
            except Unreachable as exc:
                wait = retries.next_delay()
                if wait is None:
                    raise retries.give_up(exc) from None
                delay = wait
                log.warning(
                    f"start-up attempt {retries.attempts} failed, retrying in {delay:.0f} s: {exc}",
                    extra={"attempt": retries.attempts, "retry_in": delay},
                )
            else:
                await asyncio.Event().wait()  # until a signal cancels this task
        finally:
            await runner.cleanup()
        await asyncio.sleep(delay)


def _run(loop: asyncio.AbstractEventLoop, settings: Settings) -> None:
    """Serve until a signal; then shut down in order and close the loop (as aiohttp's
    `run_app` does, which has no step between "listening" and "running" to register the
    webhook in)."""
    asyncio.set_event_loop(loop)
    running = _Running()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals here
            loop.add_signal_handler(signum, _on_signal, running, signum)
    main_task = loop.create_task(_serve(running, settings))
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
        check_data_dir(settings)
        loop = new_event_loop()
        log.info("event loop", extra={"loop": f"{type(loop).__module__}.{type(loop).__name__}"})
        _run(loop, settings)
    except StartupError as exc:
        # The reason is the operator's to act on; a traceback would only bury it.
        log.critical(exc.paragraph)
        print(f"photo-edit-bot: {redacting.scrub(exc.paragraph)}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        log.critical("the service stopped on an error", exc_info=exc)
        print(
            f"photo-edit-bot: stopped on an error: {redacting.scrub(one_line(exc))}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
