"""A round-robin load balancer on loopback, in front of several `python -m bot` replicas.

Used by the scale-out tests (tests/test_scaleout.py) and the scale-out benchmark
(bench/scaleout.py): it is the one public URL, so Telegram updates and provider callbacks
land on alternating replicas; a replica that refuses connections is skipped.
"""

from __future__ import annotations

import itertools
from collections import Counter

import aiohttp
from aiohttp import web

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


class RoundRobin:
    """A load balancer on loopback: spreads requests over replicas, skips dead ones.

    `connections` caps the open upstream connections (aiohttp's connector limit; 0 means
    no cap).
    """

    def __init__(self, port: int, *, connections: int = 100) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.upstreams: list[str] = []
        self.hits: Counter[tuple[str, str]] = Counter()
        self.connections = connections
        self._next = itertools.count()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.connections),
            timeout=aiohttp.ClientTimeout(total=30),
        )

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        for _ in range(len(self.upstreams)):
            upstream = self.upstreams[next(self._next) % len(self.upstreams)]
            try:
                async with self._session.request(
                    request.method, upstream + request.path_qs, data=body, headers=headers
                ) as answer:
                    payload = await answer.read()
                    kind = request.path.split("/")[1]
                    self.hits[(upstream, kind)] += 1
                    return web.Response(
                        status=answer.status,
                        body=payload,
                        content_type=answer.content_type,
                    )
            except aiohttp.ClientConnectionError:
                continue  # a dead replica: the next one takes the request
        return web.Response(status=502, text="no replica answered")
