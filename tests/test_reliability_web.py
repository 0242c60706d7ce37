"""The web server under hostile or careless clients: scrapers, probes, slow and vanishing
clients, too many connections. Through the real bot's listener, with raw sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from bot.config import Settings, load_settings
from domain import steps
from domain.edit import InputPhoto, NewEdit
from storage.db import Database
from storage.dbconn import DbConn
from storage.schema import edits
from tests.conftest import BotStarter, RunningBot, SettingsFactory, free_port
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.reliability import Service, eventually, post, service_env
from tests.test_reliability_ops import samples, value

SEEDED = 3000
SCRAPE_TOKEN = "scrape-token-for-tests"
BEARER = {"Authorization": f"Bearer {SCRAPE_TOKEN}"}


async def seed_edits(settings: Settings, count: int) -> None:
    """`count` submitted edits (waiting for a callback an hour away) in the bot's database."""
    db = Database(settings.resolved_database_url)
    try:
        await db.migrate()
        template = await db.edits.create(
            NewEdit(
                dedupe_key="seed:0",
                chat_id=500_000,
                chat_type="private",
                user_id=500_000,
                message_id=1,
                lang="en",
                provider="kie",
                model="qwen/image-edit",
                prompt="seeded",
                callback_token=secrets.token_urlsafe(24),
                inputs=[InputPhoto(file_id="seeded", width=640, height=480)],
            )
        )
        assert template is not None
        await db.edits.transition(template.id, steps.BEGIN_SUBMIT)
        await db.edits.transition(
            template.id,
            steps.RECORD_TASK,
            task_id=uuid.uuid4().hex,
            submitted_at=time.time(),
            next_check_at=time.time() + 3600,
        )
        row = dict((await db.execute(sa.select(edits))).mappings().one())
        del row["id"]
        clones = [
            {
                **row,
                "dedupe_key": f"seed:{i}",
                "message_id": 1 + i,
                "callback_token": secrets.token_urlsafe(24),
                "task_id": uuid.uuid4().hex,
            }
            for i in range(1, count)
        ]

        async def insert(conn: DbConn) -> None:
            await conn.execute(edits.insert(), clones)

        await db.transaction(insert)
    finally:
        await db.close()


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """Every SQL statement the bot's database runs meanwhile."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    sa.event.listen(db.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(db.sync_engine, "before_cursor_execute", record)


async def scrape(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    status, body = await post(f"{url}/metrics", method="GET", headers=headers)
    return status, body.decode()


async def test_scrapes_read_a_snapshot_and_count_nothing_in_the_database(
    make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    settings = make_settings(METRICS_REFRESH_INTERVAL=3600, METRICS_TOKEN=SCRAPE_TOKEN)
    await seed_edits(settings, SEEDED)
    bot = await start_bot(settings)

    async def snapshot_taken() -> bool:
        found = samples((await scrape(bot.url, BEARER))[1])
        return value(found, "bot_edits", state="submitted") == SEEDED

    await eventually(snapshot_taken, what="the startup snapshot")
    with statements(bot.services.db) as seen:
        answers = await asyncio.gather(*(scrape(bot.url, BEARER) for _ in range(16)))
    for status, text in answers:
        found = samples(text)
        assert status == 200
        assert value(found, "bot_edits", state="submitted", provider="kie") == SEEDED
        assert value(found, "bot_queue_depth", queue="provider") == SEEDED
    assert [sql for sql in seen if "count(" in sql.lower()] == []


async def test_metrics_token_is_required_when_set(
    make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(METRICS_TOKEN=SCRAPE_TOKEN))
    assert (await scrape(bot.url))[0] == 401
    assert (await scrape(bot.url, {"Authorization": "Bearer wrong"}))[0] == 401
    assert (await scrape(bot.url, {"Authorization": SCRAPE_TOKEN}))[0] == 401
    status, text = await scrape(bot.url, BEARER)
    assert status == 200 and "bot_queue_depth" in text


async def test_metrics_port_serves_metrics_alone(
    make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    port = free_port()
    bot = await start_bot(make_settings(METRICS_PORT=port, METRICS_TOKEN=SCRAPE_TOKEN))
    separate = f"http://127.0.0.1:{port}"
    assert (await scrape(bot.url, BEARER))[0] == 404
    assert (await scrape(separate))[0] == 401
    status, text = await scrape(separate, BEARER)
    assert status == 200 and "bot_edits" in text
    assert (await post(f"{separate}/healthz", method="GET"))[0] == 404
    assert (await post(f"{bot.url}/healthz", method="GET"))[0] == 200


async def test_healthz_asks_telegram_once_for_many_probes(
    tg: FakeTelegram, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(WEBHOOK_CHECK_TTL=3600))
    await tg.wait_for("setWebhook")
    probes = [post(f"{bot.url}/healthz", method="GET") for _ in range(12)]
    answers = await asyncio.gather(*probes)
    answers += [await post(f"{bot.url}/healthz", method="GET") for _ in range(4)]
    assert {status for status, _ in answers} == {200}
    assert len(tg.calls_of("getWebhookInfo")) == 1


# Slow and vanishing clients ---------------------------------------------------------------


async def open_raw(bot: RunningBot) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", bot.settings.port)


async def dribble(
    writer: asyncio.StreamWriter, reader: asyncio.StreamReader, piece: bytes, *, within: float
) -> bytes:
    """Send `piece` every 50 ms until the server answers or closes; what it sent (b"" for a
    close without an answer). AssertionError if the server is still waiting after `within`."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            writer.write(piece)
            await writer.drain()
        except ConnectionError:
            return b""
        try:
            return await asyncio.wait_for(reader.read(), 0.05)  # reads up to the close
        except TimeoutError:
            continue
        except ConnectionError:
            return b""
    raise AssertionError(f"the server still waits for the request after {within}s")


def webhook_head(settings: Settings, length: int) -> bytes:
    return (
        f"POST /telegram HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Telegram-Bot-Api-Secret-Token: {settings.resolved_webhook_secret}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


async def nothing_recorded(bot: RunningBot) -> None:
    assert await bot.services.db.updates.count_pending() == 0
    assert await bot.edits() == []


async def test_a_body_sent_too_slowly_is_cut_off(
    make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(HTTP_READ_TIMEOUT=0.5))
    reader, writer = await open_raw(bot)
    writer.write(webhook_head(bot.settings, 100_000) + b'{"update_id": 1, ')
    answer = await dribble(writer, reader, b" ", within=10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    await nothing_recorded(bot)


async def test_headers_sent_too_slowly_are_cut_off(
    make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(HTTP_READ_TIMEOUT=0.5))
    reader, writer = await open_raw(bot)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ")
    assert await dribble(writer, reader, b"a", within=10) == b""
    writer.close()


async def test_connections_over_the_cap_are_refused_with_503(
    make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(HTTP_MAX_CONNECTIONS=3))
    server = bot.runner.server
    assert server is not None
    held = [await open_raw(bot) for _ in range(3)]
    await eventually(lambda: len(server.connections) == 3, what="three open connections")
    reader, writer = await open_raw(bot)
    refused = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert refused.startswith(b"HTTP/1.1 503 ")
    held.pop()[1].close()

    async def served() -> bool:
        try:
            status, _ = await post(f"{bot.url}/healthz", method="GET")
        except aiohttp.ClientError:  # refused (the slot is not free yet)
            return False
        return status == 200

    await eventually(served, what="a free slot")
    for _, held_writer in held:
        held_writer.close()


async def test_an_aborted_upload_is_one_warning_and_changes_nothing(
    make_settings: SettingsFactory, start_bot: BotStarter, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await start_bot(make_settings())
    server = bot.runner.server
    assert server is not None
    caplog.set_level(logging.INFO)
    heads = [
        webhook_head(bot.settings, 5000),
        b"POST /callbacks/kie/1?token=x HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Length: 5000\r\n\r\n",
    ]
    for taken, head in enumerate(heads, start=server.requests_count + 1):
        _, writer = await open_raw(bot)
        writer.write(head + b'{"update_id": 7, "message": {"text": "')
        await writer.drain()
        await eventually(lambda n=taken: server.requests_count >= n, what="the request taken")
        await asyncio.sleep(0.05)  # its handler waits for the rest of the body
        writer.close()

    def aborted() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage() == "request aborted by the client"]

    await eventually(lambda: len(aborted()) == 2, what="two aborted requests logged")
    await asyncio.sleep(0.1)  # anything else logged about them comes right after
    assert [r.levelno for r in aborted()] == [logging.WARNING] * 2
    assert all(r.exc_info is None for r in aborted())
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    await nothing_recorded(bot)


async def test_metrics_port_must_differ_from_port(make_settings: SettingsFactory) -> None:
    with pytest.raises(ValueError, match="METRICS_PORT must differ"):
        make_settings(PORT=18080, METRICS_PORT=18080)


# The service process (`python -m bot`: uvloop, JSON logs) -----------------------------------


async def keep_alive_probe(port: int) -> tuple[asyncio.StreamWriter, bytes]:
    """A connection that asked for /healthz and stays open; the status line it got."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return writer, head.split(b"\r\n", 1)[0]


async def test_the_service_process_caps_connections_and_logs_aborts_once(
    tg: FakeTelegram, kie: FakeKie, tmp_path: Path
) -> None:
    port, metrics_port = free_port(), free_port()
    env = service_env(tg, kie, tmp_path / "data", port) | {
        "HTTP_MAX_CONNECTIONS": "2",
        "METRICS_PORT": str(metrics_port),
        "METRICS_TOKEN": SCRAPE_TOKEN,
    }
    service = Service(env, tmp_path)
    try:
        await service.start(tg)
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        settings = load_settings(_env_file=None, **env)
        writer.write(webhook_head(settings, 5000) + b'{"update_id": 7, ')
        await writer.drain()
        await asyncio.sleep(0.5)  # the handler waits for the rest of the body
        writer.close()
        await eventually(lambda: "request aborted by the client" in service.stderr())

        held: list[asyncio.StreamWriter] = []

        async def hold_one() -> bool:
            writer, status = await keep_alive_probe(port)
            if status.endswith(b" 200 OK"):
                held.append(writer)
                return True
            writer.close()  # a slot still taken by a connection closing
            return False

        await eventually(hold_one, what="a first connection")
        await eventually(hold_one, what="a second connection")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        refused = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert refused.startswith(b"HTTP/1.1 503 ")
        for writer in held:
            writer.close()

        status, text = await scrape(f"http://127.0.0.1:{metrics_port}", BEARER)
        assert status == 200 and "bot_edits" in text
    finally:
        await service.close()
    records = [json.loads(line) for line in service.stderr().splitlines() if line.startswith("{")]
    aborted = [r for r in records if r["msg"] == "request aborted by the client"]
    assert [(r["level"], r.get("exc")) for r in aborted] == [("WARNING", None)]
    assert [r["msg"] for r in records if r["level"] in ("ERROR", "CRITICAL")] == []
