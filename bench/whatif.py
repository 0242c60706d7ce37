"""`python -m bench.whatif db|http`: the micro-measurements behind the fix proposals.

``db``: CPU per state-change transaction the way `storage.db.Database` runs it (a prepared
SQLAlchemy Core statement on the database thread, one hop) against the previous design
(SQLAlchemy's asyncio engine over aiosqlite, a statement built per call; needs
``pip install ".[bench]"``), plain sqlite3 on a thread, and group commit.

``http``: CPU of the five Bot API calls of one edit (getFile, file download, sendMessage,
sendPhoto with a 300 KB photo, deleteMessage) through PTB's default `HTTPXRequest` against
the service's aiohttp-based `bot.telegram_http.AiohttpRequest`, 10 edits at a time, against
the benchmark's fake Telegram in this process (its time is in both figures alike).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine
from telegram import Bot, InputFile
from telegram.request import BaseRequest, HTTPXRequest

from bench.fakes import BenchTelegram, Ledger
from bench.phase import TOKEN, make_photo
from bot.telegram_http import AiohttpRequest
from domain import steps
from domain.edit import InputPhoto, NewEdit
from storage.db import Database
from storage.schema import edits

ROWS = 400
SQL = (
    "UPDATE edits SET state = ?, updated_at = ?, lease_owner = ? "
    "WHERE id = ? AND state IN (?) RETURNING *"
)


async def _cpu_per_call(
    label: str, call: Callable[[int], Awaitable[Any]], count: int, concurrency: int = 10
) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            await call(i)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    cpu_ms = 1000 * (time.process_time() - cpu) / count
    wall_ms = 1000 * (time.perf_counter() - wall) / count
    print(f"{label:62s} {cpu_ms:6.3f} ms CPU  ({wall_ms:.3f} ms wall)")


async def db() -> None:
    folder = tempfile.mkdtemp(prefix="bench-whatif-")
    path = f"{folder}/bot.sqlite3"
    database = Database(f"sqlite+aiosqlite:///{path}")
    await database.migrate()
    ids: list[int] = []
    for i in range(ROWS):
        edit = await database.edits.create(
            NewEdit(
                dedupe_key=f"whatif:{i}",
                chat_id=i,
                chat_type="private",
                user_id=i,
                message_id=i,
                lang="en",
                provider="kie",
                model="qwen/image-edit",
                prompt="p",
                callback_token=secrets.token_urlsafe(24),
                inputs=[InputPhoto("file")],
            )
        )
        assert edit is not None
        ids.append(edit.id)

    await _cpu_per_call(
        "Database.edits.transition (prepared statement, database thread)",
        lambda i: database.edits.transition(ids[i], steps.BEGIN_SUBMIT, lease_owner="x"),
        ROWS,
    )
    await database.close()

    engine = create_async_engine(f"sqlite+aiosqlite:///{path}", pool_size=1, max_overflow=0)

    async def before(i: int) -> Any:
        stmt = (
            edits.update()
            .where(edits.c.id == ids[i], edits.c.state.in_(["submitting"]))
            .values(state="queued", updated_at=time.time(), lease_owner=None)
            .returning(edits)
        )
        async with engine.begin() as conn:
            return (await conn.execute(stmt)).mappings().first()

    await _cpu_per_call(
        "previous: SQLAlchemy asyncio + aiosqlite, statement per call", before, ROWS
    )
    await engine.dispose()
    loop = asyncio.get_running_loop()
    writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")

    raw = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")

    def raw_tx(i: int) -> Any:
        raw.execute("BEGIN IMMEDIATE")
        try:
            row = raw.execute(SQL, ("submitting", time.time(), "x", ids[i], "queued")).fetchone()
        except BaseException:
            raw.execute("ROLLBACK")
            raise
        raw.execute("COMMIT")
        return row

    await _cpu_per_call(
        "sqlite3, whole transaction in one writer-thread hop",
        lambda i: loop.run_in_executor(writer, raw_tx, i),
        ROWS,
    )

    def batch(first: int) -> None:
        raw.execute("BEGIN IMMEDIATE")
        for i in range(first, first + 10):
            raw.execute(SQL, ("queued", time.time(), None, ids[i], "submitting")).fetchone()
        raw.execute("COMMIT")

    cpu = time.process_time()
    for first in range(0, ROWS, 10):
        await loop.run_in_executor(writer, batch, first)
    per_update = 1000 * (time.process_time() - cpu) / ROWS
    print(f"{'sqlite3, group commit of 10 updates per transaction':62s} {per_update:6.3f} ms CPU")
    raw.close()
    writer.shutdown()


async def _http_round(kind: str, photo: bytes) -> None:
    tg = BenchTelegram(TOKEN, Ledger())
    await tg.start()
    info = tg.add_file(photo)
    tg.user(7)
    request: BaseRequest = (
        HTTPXRequest(connection_pool_size=128) if kind == "httpx" else AiohttpRequest()
    )
    bot = Bot(TOKEN, base_url=f"{tg.url}/bot", base_file_url=f"{tg.url}/file/bot", request=request)
    await bot.initialize()

    async def edit_calls(_: int) -> None:
        file = await bot.get_file(info.file_id)
        await file.download_as_bytearray()
        status = await bot.send_message(7, "⏳ Got it! Editing your photo…")
        await bot.send_photo(7, InputFile(photo, filename="edit.jpg"), caption="✨ Done!")
        await bot.delete_message(7, status.message_id)

    try:
        for i in range(20):
            await edit_calls(i)
        await _cpu_per_call(f"5 Bot API calls of one edit via {kind} (bot + fake)", edit_calls, 300)
    finally:
        await bot.shutdown()
        await tg.stop()


async def http() -> None:
    photo = make_photo()
    for kind in ("httpx", "aiohttp", "httpx", "aiohttp"):
        await _http_round(kind, photo)


def main() -> int:
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "db":
        asyncio.run(db())
    elif what == "http":
        asyncio.run(http())
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
