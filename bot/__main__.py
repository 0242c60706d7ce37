"""`python -m bot`: load settings and run the service until SIGTERM/SIGINT."""

from __future__ import annotations

import sys

from aiohttp import web

from bot.app import create_app
from bot.config import ConfigError, load_settings
from bot.logs import settings_secrets, setup_logging


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"photo-edit-bot: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings_secrets(settings))
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        shutdown_timeout=30.0,
        print=None,
        access_log=None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
