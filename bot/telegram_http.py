"""PTB's HTTP layer on aiohttp: the Bot API client the service runs on.

python-telegram-bot talks to the Bot API through a `telegram.request.BaseRequest`; its
default, `HTTPXRequest`, costs about four times the CPU per call of aiohttp (httpx, httpcore
and anyio layers, plus a failed `import sniffio` per request), and the service already runs on
aiohttp. `AiohttpRequest` keeps HTTPXRequest's contract:

* the four timeouts with PTB's meaning, each overridable per call:
  ``pool_timeout`` - waiting for a free connection slot (the request was *not* sent);
  ``connect_timeout`` - opening a connection (TCP and TLS);
  ``write_timeout`` - sending the request (``media_write_timeout`` for uploads);
  ``read_timeout`` - waiting for each piece of the answer once the request is sent.
  aiohttp has no write timeout of its own: the time until the answer's headers is bounded by
  connect + write + read, and since connecting and waiting are bounded separately, running
  out of that budget means the write took too long;
* every timeout is `telegram.error.TimedOut`, every other transport failure
  `telegram.error.NetworkError` (a subclass of which TimedOut is), so callers map one family;
  HTTP statuses and the Bot API's error JSON (400/403/409/429 ``retry_after``, migrations)
  are mapped by `BaseRequest` itself from the answer, as for HTTPXRequest;
* uploads (`RequestData.multipart_data`: bytes or file objects) go as multipart/form-data
  with the other parameters as form fields; requests without files are form-urlencoded;
* HTTP/1.1 keep-alive connections, at most ``connection_pool_size`` at a time, reused for
  ``keepalive_timeout`` seconds;
* the environment's proxies (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``) apply, as in httpx,
  looked up once per host (aiohttp's ``trust_env`` would read them, and ``~/.netrc``, on
  every request: a millisecond of CPU each);
* `initialize` opens the session and `shutdown` closes it (PTB calls both; a request before
  `initialize` or after `shutdown` is a RuntimeError, as for HTTPXRequest).
"""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

log = logging.getLogger(__name__)

POOL_TIMEOUT_MESSAGE = (
    "Pool timeout: all connections in the connection pool are occupied. The request was "
    "*not* sent to Telegram. Consider a larger connection pool or a longer pool timeout."
)


def _seconds(value: ODVInput[float], default: float | None) -> float | None:
    return default if isinstance(value, DefaultValue) else value


def _sum(*parts: float | None) -> float | None:
    """The sum of timeouts, None (no limit) if any of them is unlimited."""
    total = 0.0
    for part in parts:
        if part is None:
            return None
        total += part
    return total


class AiohttpRequest(BaseRequest):
    """A `telegram.request.BaseRequest` on an aiohttp client session (see the module doc)."""

    __slots__ = (
        "_connect_timeout",
        "_keepalive_timeout",
        "_media_write_timeout",
        "_pool_size",
        "_pool_timeout",
        "_proxies",
        "_read_timeout",
        "_session",
        "_slots",
        "_write_timeout",
    )

    def __init__(
        self,
        *,
        connection_pool_size: int = 256,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
        keepalive_timeout: float = 15.0,
    ) -> None:
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._keepalive_timeout = keepalive_timeout
        self._session: aiohttp.ClientSession | None = None
        # The pool limit is enforced here rather than by the connector, so that waiting for a
        # free connection is told apart from connecting (PTB's pool vs connect timeout).
        self._slots: asyncio.Semaphore | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    @property
    def read_timeout(self) -> float | None:
        """The default read timeout (PTB adds getUpdates' long-poll timeout to it)."""
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is not None and not self._session.closed:
            return
        connector = aiohttp.TCPConnector(
            limit=self._pool_size, limit_per_host=0, keepalive_timeout=self._keepalive_timeout
        )
        self._slots = asyncio.Semaphore(self._pool_size)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": self.USER_AGENT},
            timeout=aiohttp.ClientTimeout(total=None),
        )

    async def shutdown(self) -> None:
        session, self._session = self._session, None
        if session is None or session.closed:
            log.debug("AiohttpRequest already shut down")
            return
        await session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        session, slots = self._session, self._slots
        if session is None or session.closed or slots is None:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        uploads = request_data is not None and request_data.contains_files
        read = _seconds(read_timeout, self._read_timeout)
        connect = _seconds(connect_timeout, self._connect_timeout)
        pool = _seconds(pool_timeout, self._pool_timeout)
        write = _seconds(
            write_timeout, self._media_write_timeout if uploads else self._write_timeout
        )
        data = _body(request_data)
        try:
            async with asyncio.timeout(pool):
                await slots.acquire()
        except TimeoutError:
            raise TimedOut(POOL_TIMEOUT_MESSAGE) from None
        try:
            return await self._send(session, method, url, data, read, write, connect)
        finally:
            slots.release()

    async def _send(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        data: Any,
        read: float | None,
        write: float | None,
        connect: float | None,
    ) -> tuple[int, bytes]:
        timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=connect, sock_read=read
        )
        try:
            # Until the headers: connect + write + wait, each bounded (see the module doc).
            async with asyncio.timeout(_sum(connect, write, read)):
                response = await session.request(
                    method,
                    url,
                    data=data,
                    timeout=timeout,
                    allow_redirects=False,
                    proxy=self._proxy_for(url),
                )
            async with response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise TimedOut(f"Timed out ({_timeout_kind(exc)})") from exc
        except (aiohttp.ClientError, OSError) as exc:
            text = str(exc)
            safe = _without_token(text, url)
            if safe != text:  # the error names the URL: not chained, its text has the token
                raise NetworkError(f"aiohttp.{type(exc).__name__}: {safe}") from None
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {text}") from exc

    def _proxy_for(self, url: str) -> str | None:
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "")
        if key not in self._proxies:
            self._proxies[key] = _environment_proxy(*key)
        return self._proxies[key]


def _without_token(text: str, url: str) -> str:
    """`text` with the token in Bot API URLs (``.../bot<token>/method``,
    ``.../file/bot<token>/path``) masked: transport errors are logged and printed."""
    for segment in urlsplit(url).path.split("/"):
        if segment.startswith("bot") and len(segment) > 3:
            token = segment[3:]
            text = text.replace(token, "***").replace(quote(token, safe=""), "***")
    return text


def _environment_proxy(scheme: str, host: str) -> str | None:
    """The proxy the environment names for `scheme` URLs, unless NO_PROXY exempts `host`."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy


def _timeout_kind(exc: TimeoutError) -> str:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connect"
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return "read"
    return "write"


def _body(request_data: RequestData | None) -> Any:
    """The request body aiohttp should send: multipart with files, form fields without."""
    if request_data is None:
        return None
    fields = request_data.json_parameters
    if not request_data.contains_files:
        return fields or None
    form = aiohttp.FormData(quote_fields=False)
    for name, value in fields.items():
        form.add_field(name, value)
    for name, (filename, content, mime_type) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=mime_type)
    return form
