"""Shared fixtures: fake Telegram and fake providers on loopback, and the real bot between."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.app import create_app, start_serving
from bot.config import Settings, load_settings
from bot.keys import SERVICES
from bot.services import Services
from bot.web import make_runner
from domain.edit import Edit, EditState
from tests.fakes.kie import FakeKie
from tests.fakes.s3 import MotoS3
from tests.fakes.telegram import FakeTelegram
from tests.pg import PostgresServer, start_postgres

TOKEN = "123456:TEST-token-for-the-fake-telegram-api-0"
KIE_KEY = "kie-test-key"
USER_ID = 1001
CHAT_ID = 1001


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningBot:
    """The real service, started with `create_app` on a loopback port."""

    app: web.Application
    runner: web.AppRunner
    url: str
    settings: Settings

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    async def edits(self) -> list[Edit]:
        return [
            edit
            for edit in [await self.services.db.edits.get(i) for i in range(1, 200)]
            if edit is not None
        ]

    async def edit(self, edit_id: int = 1) -> Edit:
        edit = await self.services.db.edits.get(edit_id)
        assert edit is not None, f"no edit {edit_id}"
        return edit

    async def wait_state(self, state: EditState, edit_id: int = 1, within: float = 10.0) -> Edit:
        import asyncio
        import time

        deadline = time.monotonic() + within
        edit = await self.services.db.edits.get(edit_id)
        while time.monotonic() < deadline:
            edit = await self.services.db.edits.get(edit_id)
            if edit is not None and edit.state is state:
                return edit
            await asyncio.sleep(0.02)
        raise AssertionError(f"edit {edit_id} never reached {state}: {edit}")

    async def wait_edit(
        self, check: Callable[[Edit], bool], edit_id: int = 1, within: float = 10.0
    ) -> Edit:
        """Wait until the stored edit satisfies `check`."""
        import asyncio
        import time

        deadline = time.monotonic() + within
        edit = await self.services.db.edits.get(edit_id)
        while time.monotonic() < deadline:
            edit = await self.services.db.edits.get(edit_id)
            if edit is not None and check(edit):
                return edit
            await asyncio.sleep(0.02)
        raise AssertionError(f"edit {edit_id} never satisfied the check: {edit}")

    async def stop(self) -> None:
        await self.runner.cleanup()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session; tests create their own databases."""
    yield from start_postgres()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoS3]:
    """One real S3-compatible server (moto) on 127.0.0.1; tests create their own buckets."""
    server = MotoS3.start()
    yield server
    server.stop()


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram(TOKEN)
    await fake.start()
    yield fake
    await fake.stop()
    # A Bot API use the fake does not model (or a fault in the fake) must fail the test, not
    # pass as a 500 the bot happened to tolerate.
    assert fake.server_errors == []


@pytest.fixture
async def kie() -> AsyncIterator[FakeKie]:
    fake = FakeKie(KIE_KEY)
    await fake.start()
    yield fake
    await fake.stop()


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path, tg: FakeTelegram, kie: FakeKie) -> SettingsFactory:
    """Settings for a bot wired to the fakes; `webhook=True` gives it a public URL."""

    def factory(*, webhook: bool = True, port: int | None = None, **overrides: Any) -> Settings:
        port = port or free_port()
        values: dict[str, Any] = {
            "_env_file": None,
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": tg.url,
            "KIE_API_KEY": KIE_KEY,
            "KIE_API_URL": kie.url,
            "KIE_UPLOAD_URL": kie.url,
            "DATA_DIR": str(tmp_path / "data"),
            "HOST": "127.0.0.1",
            "PORT": port,
            "POLL_INTERVAL": 0.05,
            "POLL_MAX_INTERVAL": 0.2,
            "POLL_MIN_INTERVAL": 0.02,
            "SWEEP_INTERVAL": 0.05,
            "METRICS_REFRESH_INTERVAL": 0.1,
            "CALLBACK_GRACE": 30,
            "PROVIDER_BACKOFF_BASE": 0.01,
            "PROVIDER_TIMEOUT": 5,
            "TELEGRAM_POLL_TIMEOUT": 1,
            "TELEGRAM_MAX_RATE": 1000,
            # Telegram's flood limits have their own tests (tests/test_telegram_limits.py).
            "TELEGRAM_CHAT_RATE": "1000/1",
            "TELEGRAM_GROUP_RATE": "1000/1",
            "ADMIN_IDS": "9001",
            # Per-user limits off, so tests may send bursts as one user; the limits' own
            # tests (tests/test_e2e_limits.py) set them.
            "USER_MAX_IN_FLIGHT": 0,
            "USER_DAILY_EDITS": 0,
            # Every fake listens on 127.0.0.1; the refusal of private result addresses has
            # its own tests (tests/test_result_addresses.py).
            "RESULT_ALLOW_PRIVATE": True,
        }
        if webhook:
            values["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
        values.update(overrides)
        return load_settings(**values)

    return factory


BotStarter = Callable[[Settings], Awaitable[RunningBot]]


@pytest.fixture
async def start_bot() -> AsyncIterator[BotStarter]:
    """Start the real service (create_app) for given settings; stopped after the test."""
    running: list[RunningBot] = []

    async def start(settings: Settings) -> RunningBot:
        app = create_app(settings)
        runner = make_runner(app, handle_signals=False)
        bot = RunningBot(app, runner, f"http://127.0.0.1:{settings.port}", settings)
        running.append(bot)
        await start_serving(runner, settings.host, settings.port)
        return bot

    yield start
    for bot in running:
        await bot.stop()


@pytest.fixture
async def webhook_bot(make_settings: SettingsFactory, start_bot: BotStarter) -> RunningBot:
    return await start_bot(make_settings(webhook=True))


@pytest.fixture
async def polling_bot(make_settings: SettingsFactory, start_bot: BotStarter) -> RunningBot:
    return await start_bot(make_settings(webhook=False))
