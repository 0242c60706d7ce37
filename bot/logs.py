"""Structured (JSON) logs with edit and task ids; secrets are scrubbed from every record."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr
from pydantic_settings import BaseSettings

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Replaces any configured secret (bot token, API keys) in messages and arguments."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first: a secret that contains another is replaced whole.
        self.secrets = sorted(
            {secret for secret in secrets if secret and len(secret) >= 6}, key=len, reverse=True
        )

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = self.scrub(record.getMessage())
            record.args = None
            if record.exc_info and not record.exc_text:
                # Tracebacks quote URLs and arguments (an HTTP error names the bot URL, and
                # with it the token): render them now, scrubbed, for every formatter to reuse.
                record.exc_text = _TRACEBACKS.formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self.scrub(record.exc_text)
            if record.stack_info:
                record.stack_info = self.scrub(record.stack_info)
            for key, value in list(vars(record).items()):
                if key in _STANDARD:
                    continue
                if isinstance(value, str):
                    setattr(record, key, self.scrub(value))
                elif not isinstance(value, int | float | bool | None):
                    text = str(value)
                    scrubbed = self.scrub(text)
                    if scrubbed != text:
                        setattr(record, key, scrubbed)
        return True


_TRACEBACKS = logging.Formatter()


def settings_secrets(settings: BaseSettings) -> list[str]:
    """Every secret the service knows: each SecretStr setting and the secrets derived from
    them (the webhook secret and the file-signing key default to values derived from the
    bot token)."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
            if name == "bot_token":
                # "<bot id>:<secret>": the secret part alone is as good as the token (the
                # bot id is public), and a URL-quoted token ("%3A") still carries it whole.
                found.append(value.get_secret_value().partition(":")[2])
    # A database URL is a plain setting (it names a host too), but its password is a secret.
    database_url = getattr(settings, "database_url", None)
    if isinstance(database_url, str):
        password = urlsplit(database_url).password
        if password:
            found.extend({password, unquote(password)})
    for derived in ("resolved_webhook_secret", "resolved_signing_key"):
        value = getattr(settings, derived, None)
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        if isinstance(value, str):
            found.append(value)
    return found


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_text:
            payload["exc"] = record.exc_text
        elif record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack"] = record.stack_info
        return json.dumps(payload, default=str, ensure_ascii=False)


def setup_logging(level: str, secrets: Iterable[str]) -> RedactingFilter:
    """JSON records on stderr, scrubbed of `secrets`; returns the scrubbing filter (for text
    the service prints itself)."""
    redacting = RedactingFilter(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(redacting)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL, which contains the bot token: keep it quiet.
    for noisy in ("httpx", "httpcore", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return redacting


def log_uncaught_exceptions() -> None:
    """Uncaught exceptions (main thread and other threads) become log records, so the
    redacting filter sees their tracebacks: Python's own hooks print them raw to stderr, and
    an exception from the Bot API quotes its URL, and with it the token. (asyncio's
    "exception was never retrieved" reports already go through the `asyncio` logger.)"""
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(
    kind: type[BaseException], value: BaseException, traceback: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    logging.getLogger("bot").critical("uncaught exception", exc_info=(kind, value, traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:  # as threading's own hook: a thread's quiet exit
        return
    logging.getLogger("bot").critical(
        "uncaught exception in a thread",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]
        extra={"thread_name": args.thread.name if args.thread else None},
    )
