"""The listening side of the web server: how long a client may take and how many may connect.

aiohttp bounds request sizes but not time, and accepts any number of connections: a client
sending its headers or its body a byte at a time would hold a connection (and a handler)
for as long as it likes. Here:
- a request's headers must arrive within HTTP_READ_TIMEOUT of the connection opening or of
  the previous response (aiohttp's keep-alive timer, which also runs while headers are
  incomplete); an idle kept-alive connection is closed after it too;
- its body within HTTP_READ_TIMEOUT of its headers (`read_deadline`): else 408, and the
  connection closes;
- a listener holds at most HTTP_MAX_CONNECTIONS connections; one more is answered 503 and
  closed at once (`BoundedSite`).
A client that goes away in the middle of its body is logged once, as a warning.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from aiohttp import StreamReader, web

from bot.keys import SETTINGS
from bot.web.errors import Handler

log = logging.getLogger(__name__)

BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\nbusy\n"
)


class BodyTimeout(TimeoutError):
    """The request body did not arrive within HTTP_READ_TIMEOUT.

    A TimeoutError: aiohttp reads what is left of an unread body after the response, and
    treats a timeout there as "stop reading, close the connection" (anything else it logs
    as an unhandled error).
    """


def make_runner(app: web.Application, **kwargs: Any) -> web.AppRunner:
    """The runner for `app` (the bot's app or the metrics listener), with the header timeout."""
    return web.AppRunner(app, keepalive_timeout=app[SETTINGS].http_read_timeout, **kwargs)


def _expire(body: StreamReader) -> None:
    if not body.is_eof():
        body.set_exception(BodyTimeout())  # wakes the handler waiting for the rest


@web.middleware
async def read_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Cut off a body that has not arrived in time; log a client that left mid-request."""
    timeout = request.app[SETTINGS].http_read_timeout
    timer = asyncio.get_running_loop().call_later(timeout, _expire, request.content)
    try:
        return await handler(request)
    except BodyTimeout:
        log.warning("request body too slow: cut off", extra={"path": request.path})
        return web.Response(status=408, text="request timeout", headers={"Connection": "close"})
    except ConnectionResetError:
        if request.transport is not None and not request.transport.is_closing():
            raise  # not the client's connection: a real fault
        log.warning(
            "request aborted by the client", extra={"path": request.path, "method": request.method}
        )
        return web.Response(status=400)  # nobody reads it; aiohttp drops it quietly
    finally:
        timer.cancel()


class _Busy(asyncio.Protocol):
    """A connection over the cap: told so, and closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport (uvloop's is not registered as an asyncio.WriteTransport).
        tcp = cast(asyncio.Transport, transport)
        tcp.write(BUSY)
        tcp.close()


class BoundedSite(web.BaseSite):
    """A TCP listener of `runner` that holds at most `max_connections` connections."""

    __slots__ = ("_host", "_max_connections", "_opening", "_port")

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, max_connections: int):
        super().__init__(runner)
        self._host, self._port = host, port
        self._max_connections = max_connections
        # Accepted in this turn of the loop, not yet among the server's connections (asyncio
        # registers a connection one turn after accepting it, and accepts many per turn).
        self._opening = 0

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None  # the runner is set up
        loop = asyncio.get_running_loop()

        def opened() -> None:
            self._opening -= 1

        def protocol() -> asyncio.BaseProtocol:
            if len(server.connections) + self._opening >= self._max_connections:
                return _Busy()
            self._opening += 1
            loop.call_soon(opened)  # runs just before the connection registers
            return server()

        self._server = await loop.create_server(protocol, self._host, self._port)
