"""A lean HTTP/1.1 keep-alive load client on raw asyncio streams.

aiohttp's client costs more CPU per request than a small aiohttp server does, so it would
measure itself when pointed at a bare server. This client sends pre-built requests over
`concurrency` persistent connections and reads each answer (Content-Length or chunked).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field


def post_request(host: str, port: int, path: str, body: bytes) -> bytes:
    """The bytes of one `POST path` with a JSON body."""
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "User-Agent: bench\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


@dataclass
class BurstResult:
    """How a burst went: statuses, wall time, per-request latencies (seconds)."""

    requests: int
    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    client_cpu: float = 0.0

    @property
    def ok(self) -> int:
        return sum(count for status, count in self.statuses.items() if 200 <= status < 300)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; return its status and whether the server closes the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection", "").lower() == "close"


async def burst(
    host: str,
    port: int,
    payloads: Sequence[bytes],
    *,
    concurrency: int,
    time_limit: float,
) -> BurstResult:
    """Send every payload once over `concurrency` connections; stop after `time_limit` s."""
    result = BurstResult(requests=len(payloads), seconds=0.0)
    indexes = iter(range(len(payloads)))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for index in indexes:
                started = time.perf_counter()
                writer.write(payloads[index])
                try:
                    status, closing = await _read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                    result.errors += 1
                    closing, status = True, 0
                else:
                    result.statuses[status] += 1
                    result.latencies.append(time.perf_counter() - started)
                if closing:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    cpu = time.process_time()
    started = time.perf_counter()
    workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(payloads)))]
    try:
        async with asyncio.timeout(time_limit):
            await asyncio.gather(*workers)
    except TimeoutError:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    result.seconds = time.perf_counter() - started
    result.client_cpu = time.process_time() - cpu
    return result
