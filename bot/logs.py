"""Structured (JSON) logs with edit and task ids; secrets are scrubbed from every record."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Replaces any configured secret (bot token, API keys) in messages and arguments."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [secret for secret in secrets if secret and len(secret) >= 6]

    def _scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = self._scrub(record.getMessage())
            record.args = None
            if record.exc_info and not record.exc_text:
                # Tracebacks quote URLs and arguments (an HTTP error names the bot URL, and
                # with it the token): render them now, scrubbed, for every formatter to reuse.
                record.exc_text = _TRACEBACKS.formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self._scrub(record.exc_text)
            if record.stack_info:
                record.stack_info = self._scrub(record.stack_info)
            for key, value in list(vars(record).items()):
                if key in _STANDARD:
                    continue
                if isinstance(value, str):
                    setattr(record, key, self._scrub(value))
                elif not isinstance(value, int | float | bool | None):
                    text = str(value)
                    scrubbed = self._scrub(text)
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


def setup_logging(level: str, secrets: Iterable[str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL, which contains the bot token: keep it quiet.
    for noisy in ("httpx", "httpcore", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
