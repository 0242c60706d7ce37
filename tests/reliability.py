"""Helpers shared by the reliability tests (tests/test_reliability_*.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from aiohttp import web

from domain.edit import Edit
from tests.conftest import CHAT_ID, KIE_KEY, TOKEN, USER_ID, RunningBot
from tests.fakes._common import FakeServer
from tests.fakes.images import make_jpeg
from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram_server import ApiCall

Json = dict[str, Any]


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    within: float = 10.0,
    what: str = "condition",
) -> None:
    """Wait until `check()` is true, polling every 20 ms; AssertionError after `within` s."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


async def quiesce(bot: RunningBot, *, within: float = 10.0) -> None:
    """Wait until the bot has no background work (deliveries, notices) in flight and has
    finished every Telegram update it received (marking one done is a write of its own)."""

    async def idle() -> bool:
        if len(bot.services.tracker):
            return False
        return await bot.services.db.updates.count_pending() == 0

    await eventually(idle, within=within, what="idle bot")


async def send_edit(
    bot: RunningBot,
    tg: FakeTelegram,
    caption: str = "make it brighter",
    *,
    image: bytes | None = None,
    chat_id: int = CHAT_ID,
    user_id: int = USER_ID,
    lang: str = "en",
) -> Json:
    """A user sends a photo with a caption (through the webhook); returns the message."""
    update = tg.photo_update(
        chat_id,
        tg.user(user_id, language_code=lang),
        image or make_jpeg(320, 240),
        caption=caption,
    )
    assert await tg.post_webhook(update) == 200
    return tg.message_of(update)


def replies_to(message: Json) -> Callable[[ApiCall], bool]:
    def check(call: ApiCall) -> bool:
        reply = call.params.get("reply_parameters") or {}
        return bool(
            call.params.get("chat_id") == message["chat"]["id"]
            and reply.get("message_id") == message["message_id"]
        )

    return check


def sent_ok(tg: FakeTelegram, method: str, message: Json | None = None) -> list[ApiCall]:
    """Successful calls of `method` (answering `message`, when given)."""
    check = replies_to(message) if message is not None else None
    return [call for call in tg.calls_of(method) if call.ok and (check is None or check(call))]


def to_chat(tg: FakeTelegram, chat_id: int, *methods: str) -> list[ApiCall]:
    """Every call of `methods` addressed to `chat_id` (answered or refused)."""
    return [
        call
        for method in methods
        for call in tg.calls_of(method)
        if str(call.params.get("chat_id")) == str(chat_id)
    ]


async def post(
    url: str,
    *,
    data: bytes | None = None,
    json_body: Any = None,
    headers: Mapping[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, bytes]:
    """One HTTP request to the bot; returns (status, body)."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
        session.request(method, url, data=data, json=json_body, headers=headers) as resp,
    ):
        return resp.status, await resp.read()


def callback_url(bot: RunningBot, edit: Edit, *, token: str | None = None) -> str:
    token = edit.callback_token if token is None else token
    return f"{bot.url}/callbacks/{edit.provider}/{edit.id}?token={token}"


class ContentServer:
    """A tiny HTTP server on 127.0.0.1 answering fixed bodies by path (for result URLs)."""

    def __init__(
        self, routes: Mapping[str, tuple[bytes, str]], redirects: Mapping[str, str] | None = None
    ) -> None:
        self.routes = dict(routes)
        self.redirects = dict(redirects or {})  # path -> Location answered with a 302
        self.url = ""
        self.hits: list[str] = []
        self._runner: web.AppRunner | None = None

    async def _serve(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        if request.path in self.redirects:
            raise web.HTTPFound(self.redirects[request.path])
        found = self.routes.get(request.path)
        if found is None:
            return web.Response(status=404)
        body, content_type = found
        return web.Response(body=body, content_type=content_type)

    async def __aenter__(self) -> ContentServer:
        app = web.Application()
        app.router.add_get("/{path:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def success_body(task_id: str, *urls: str) -> Json:
    """A well-formed jobs-API success callback for `task_id` with result `urls`."""
    return {
        "code": 200,
        "msg": "Playground task completed successfully.",
        "data": {
            "taskId": task_id,
            "model": "qwen/image-edit",
            "state": "success",
            "resultJson": json.dumps({"resultUrls": list(urls)}),
            "failCode": None,
            "failMsg": None,
        },
    }


class Service:
    """The real service as a separate process (`python -m bot`), configured by environment."""

    def __init__(
        self,
        env: Mapping[str, str],
        workdir: Path,
        name: str = "bot",
        *,
        public_url: str | None = None,
    ) -> None:
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            # The code under test: a worktree's, not the one the venv has installed.
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            "HOME": str(workdir),
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.workdir = workdir
        self.name = name
        self.port = int(env["PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.public_url = public_url or self.url  # behind a load balancer: the balancer's URL
        self.runs = 0
        self.process: asyncio.subprocess.Process | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}-{self.runs}.stderr"

    async def start(self, tg: FakeTelegram, *, within: float = 30.0) -> None:
        """Start the process and wait until it is healthy (and set its webhook, in webhook
        mode)."""
        assert self.process is None or self.process.returncode is not None
        self.runs += 1
        tg.webhook_url = None
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                cwd=self.workdir,  # no stray .env is read
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )

        async def healthy() -> bool:
            if self.process is not None and self.process.returncode is not None:
                raise AssertionError(f"the service exited early:\n{self.stderr()[-3000:]}")
            try:
                status, _ = await post(f"{self.url}/healthz", method="GET")
            except aiohttp.ClientError:
                return False
            if "PUBLIC_BASE_URL" not in self.env:  # long polling
                return status == 200
            return status == 200 and tg.webhook_url == f"{self.public_url}/telegram"

        await eventually(healthy, within=within, what="the service to become healthy")

    async def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def terminate(self, *, within: float = 40.0) -> int:
        """SIGTERM and wait for the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), within)

    def stderr(self, run: int | None = None) -> str:
        runs = [run] if run is not None else range(1, self.runs + 1)
        return "".join(
            (self.workdir / f"{self.name}-{n}.stderr").read_text(errors="replace") for n in runs
        )

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def read_rows(database_url: str) -> list[dict[str, Any]]:
    """Every edit row (leases included), read through a separate connection."""
    from storage.db import Database
    from storage.schema import edits

    db = Database(database_url)
    try:
        result = await db.execute(sa.select(edits).order_by(edits.c.id))
        return [dict(row) for row in result.mappings().all()]
    finally:
        await db.close()


async def let_leases_run_out(database_url: str) -> None:
    """What waiting out the dead process's leases and retry timers would do, at once: its
    leases (up to SUBMIT_LEASE = 5 min) and backoff timers expire. Nothing else changes."""
    from storage.db import Database
    from storage.schema import edits

    db = Database(database_url)
    try:
        await db.execute(
            edits.update()
            .where(edits.c.lease_until.is_not(None) | edits.c.next_check_at.is_not(None))
            .values(
                lease_owner=None,
                lease_until=None,
                next_check_at=sa.case((edits.c.next_check_at.is_(None), None), else_=0.0),
                updated_at=edits.c.updated_at - 600,
            )
        )
    finally:
        await db.close()


def service_env(tg: FakeTelegram, kie: FakeServer, data_dir: Path, port: int) -> dict[str, str]:
    """Environment for `python -m bot` in webhook mode, wired to the fakes."""
    return {
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": tg.url,
        "KIE_API_KEY": KIE_KEY,
        "KIE_API_URL": kie.url,
        "KIE_UPLOAD_URL": kie.url,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATA_DIR": str(data_dir),
        "SWEEP_INTERVAL": "0.1",
        "CALLBACK_GRACE": "2",
        "POLL_INTERVAL": "0.2",
        "POLL_MAX_INTERVAL": "1",
        "POLL_MIN_INTERVAL": "0.05",
        "PROVIDER_BACKOFF_BASE": "0.05",
        "TELEGRAM_MAX_RATE": "1000",
        "TELEGRAM_CHAT_RATE": "1000/1",
        "TELEGRAM_GROUP_RATE": "1000/1",
        "ADMIN_IDS": "9001",
        "LOG_LEVEL": "INFO",
        # Per-user limits off: these tests send bursts as one user (see tests/conftest.py).
        "USER_MAX_IN_FLIGHT": "0",
        "USER_DAILY_EDITS": "0",
        "RESULT_ALLOW_PRIVATE": "true",  # the fakes' results are on 127.0.0.1
    }
