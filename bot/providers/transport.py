"""The one HTTP transport every provider family uses: timeouts, retries, backoff."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from domain.errors import (
    ProtocolError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    SubmitUncertain,
)

log = logging.getLogger(__name__)

# (HTTP status, decoded JSON body or None) -> an error to raise, or None for success.
ErrorMapper = Callable[[int, Any], ProviderError | None]


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    backoff_base: float = 1.0
    backoff_max: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Exponential backoff with full jitter; a server's Retry-After wins when larger."""
        ceiling = min(self.backoff_max, self.backoff_base * (2**attempt))
        delay = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max * 4))
        return delay


class Transport:
    """Sends JSON requests for a provider family and maps failures onto typed errors."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        on_call: Callable[[str, str, float, str], None] | None = None,
    ) -> None:
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 10.0))
        self.retry = retry or RetryPolicy()
        self._on_call = on_call

    def retry_delay(self, attempt: int, error: ProviderError) -> float | None:
        """The back-off before retry number `attempt + 1` after `error`; None: give up."""
        if not error.retryable or attempt >= self.retry.max_retries:
            return None
        return self.retry.delay(attempt, error.retry_after)

    async def request(
        self,
        method: str,
        url: str,
        *,
        family: str,
        error_mapper: ErrorMapper,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        form: Callable[[], aiohttp.FormData] | None = None,
        idempotent: bool = True,
    ) -> Any:
        """Send a request, retrying what is retryable, and return the decoded JSON body.

        A non-idempotent request (task creation) is sent once: its caller decides about
        another attempt (`retry_delay`), which is safe only when the provider definitely
        did not act on it (an error answer, or a connection never made). A timeout after
        sending raises SubmitUncertain instead, never to be retried.
        """
        attempt = 0
        while True:
            started = time.monotonic()
            outcome = "ok"
            try:
                return await self._once(
                    method, url, error_mapper, headers, json_body, params, form() if form else None
                )
            except ProviderError as exc:
                outcome = exc.code
                error: ProviderError = exc
            except aiohttp.ClientConnectorError as exc:
                outcome = "connect_error"
                error = ProviderUnavailable(f"cannot connect: {exc.os_error}")
            except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                outcome = "timeout"
                if not idempotent:
                    raise SubmitUncertain("the provider did not answer in time") from exc
                error = ProviderUnavailable("timed out")
            except aiohttp.ClientError as exc:
                outcome = "client_error"
                if not idempotent and not isinstance(exc, aiohttp.ClientResponseError):
                    raise SubmitUncertain(f"connection lost: {exc!r}") from exc
                error = ProviderUnavailable(f"connection failed: {exc!r}")
            finally:
                if self._on_call is not None:
                    self._on_call(family, method, time.monotonic() - started, outcome)
            delay = self.retry_delay(attempt, error) if idempotent else None
            if delay is None:
                raise error
            log.warning(
                "provider call failed, retrying",
                extra={
                    "family": family,
                    "error": error.code,
                    "attempt": attempt + 1,
                    "delay": round(delay, 2),
                },
            )
            attempt += 1
            await asyncio.sleep(delay)

    async def _once(
        self,
        method: str,
        url: str,
        error_mapper: ErrorMapper,
        headers: Mapping[str, str] | None,
        json_body: Any,
        params: Mapping[str, str] | None,
        data: aiohttp.FormData | None,
    ) -> Any:
        async with self.session.request(
            method,
            url,
            headers=headers,
            json=json_body,
            params=params,
            data=data,
            timeout=self.timeout,
        ) as resp:
            raw = await resp.read()
            body: Any = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
            error = error_mapper(resp.status, body)
            if error is not None:
                if isinstance(error, RateLimited) and error.retry_after is None:
                    error.retry_after = _retry_after(resp.headers.get("Retry-After"))
                raise error
            if body is None:
                raise ProtocolError(f"not JSON (HTTP {resp.status}): {raw[:200]!r}")
            return body


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
