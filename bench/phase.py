"""One phase of a benchmark: the bot under test in its own process, with fresh fakes.

The fake Telegram and the fake KIE provider run in the benchmark process and finish every
task at once; the bot (`python -m bench.botproc`) gets a fresh temp directory and database.
It runs with TELEGRAM_MAX_RATE and KIE_RATE_LIMIT far above anything reached: the fakes have
no flood or rate limits, and the production limits (30 Bot API calls/s, KIE's 20 createTask
per 10 s) would otherwise be what is measured.
"""

from __future__ import annotations

import contextlib
import io
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from PIL import Image

from bench import RESULTS
from bench.childproc import Proc, child_env, free_port
from bench.fakes import BenchKie, BenchTelegram, Ledger
from bench.measure import Json
from bench.seeding import CallbackTarget, seed_in_flight

TOKEN = "123456:BENCH-token-for-the-fake-telegram-api-00"
KIE_KEY = "kie-bench-key"
TELEGRAM_MAX_RATE = 100_000
KIE_SUBMITS_PER_10S = 1_000_000


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def make_photo(target_bytes: int = 300 * 1024) -> bytes:
    """A deterministic 1280x960 photo-like JPEG of about `target_bytes` (no metadata)."""
    rnd = random.Random(8)
    width, height = 1280, 960
    base = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    noise = Image.frombytes(
        "RGB", (width // 4, height // 4), rnd.randbytes(width // 4 * height // 4 * 3)
    ).resize((width, height), Image.Resampling.BILINEAR)
    image = Image.blend(base, noise, 0.5)
    best = b""
    for quality in range(95, 40, -3):
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=quality)
        best = buf.getvalue()
        if len(best) <= target_bytes:
            break
    return best


@dataclass
class Phase:
    """One bot process with its own fakes, database and temp directory."""

    name: str
    bot: Proc
    tg: BenchTelegram
    kie: BenchKie
    ledger: Ledger
    workdir: Path
    webhook: bool
    session: aiohttp.ClientSession
    seeded: list[CallbackTarget]

    @property
    def database(self) -> Path:
        return self.workdir / "data" / "bot.sqlite3"

    async def send(self, update: Json) -> None:
        """Hand an update to the bot the way Telegram does in this mode."""
        if not self.webhook:
            self.tg.push_update(update)
            return
        assert self.tg.webhook_url is not None and self.tg.webhook_secret is not None
        headers = {"X-Telegram-Bot-Api-Secret-Token": self.tg.webhook_secret}
        async with self.session.post(self.tg.webhook_url, json=update, headers=headers) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"webhook answered {resp.status}")

    def count_states(self, states: Sequence[str]) -> int:
        marks = ",".join("?" for _ in states)
        with contextlib.closing(sqlite3.connect(self.database, timeout=10)) as conn:
            row = conn.execute(
                f"SELECT count(*) FROM edits WHERE state IN ({marks})", tuple(states)
            ).fetchone()
        return int(row[0])


def bot_env(
    tg: BenchTelegram,
    kie: BenchKie,
    workdir: Path,
    port: int,
    *,
    webhook: bool,
    settings: Mapping[str, str],
) -> dict[str, str]:
    """The bot's environment: the fakes' URLs, its own data directory and port, `settings`."""
    env = child_env()
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": tg.url,
            "KIE_API_KEY": KIE_KEY,
            "KIE_API_URL": kie.url,
            "KIE_UPLOAD_URL": kie.url,
            "DATA_DIR": str(workdir / "data"),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "TELEGRAM_MAX_RATE": str(TELEGRAM_MAX_RATE),
            "TELEGRAM_CHAT_RATE": f"{TELEGRAM_MAX_RATE}/1",
            "TELEGRAM_GROUP_RATE": f"{TELEGRAM_MAX_RATE}/1",
            "LOG_LEVEL": "INFO",
            "KIE_RATE_LIMIT": f"{KIE_SUBMITS_PER_10S}/10",
            # The load is a few users' bursts: per-user limits would refuse most of it.
            "USER_MAX_IN_FLIGHT": "0",
            "USER_DAILY_EDITS": "0",
            "RESULT_ALLOW_PRIVATE": "true",  # the fakes' results are on 127.0.0.1
        }
    )
    if webhook:
        env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
    env.update(settings)
    return env


@contextlib.asynccontextmanager
async def phase(
    name: str,
    *,
    webhook: bool,
    settings: Mapping[str, str] | None = None,
    profile: bool = False,
    keep: bool = False,
    seed: int = 0,
    grace: float = 15.0,
    make_tg: Callable[[str, Ledger], BenchTelegram] = BenchTelegram,
    make_kie: Callable[[str, Ledger], BenchKie] = BenchKie,
) -> AsyncIterator[Phase]:
    """Fresh fakes, a fresh bot process and database; everything torn down after.

    `settings` are the bot's, on top of `bot_env`'s; `seed` edits are put in the database
    as `submitted` before the bot starts; with
    `profile` the bot profiles between SIGUSR1 and SIGUSR2 (`bench.botproc`); `make_tg` and
    `make_kie` build the fakes (`bench.limited`'s for fakes with limits).
    """
    began = time.monotonic()
    ledger = Ledger()
    tg = make_tg(TOKEN, ledger)
    kie = make_kie(KIE_KEY, ledger)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    await tg.start()
    await kie.start()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100), timeout=aiohttp.ClientTimeout(total=30)
    )
    bot: Proc | None = None
    try:
        port = free_port()
        seeded = await seed_in_flight(workdir, port, kie, seed) if seed else []
        if seed:
            progress(f"  seeded {len(seeded)} submitted edits ({time.monotonic() - began:.1f} s)")
        env = bot_env(tg, kie, workdir, port, webhook=webhook, settings=settings or {})
        if profile:
            env["BENCH_PROFILE"] = str(RESULTS / f"profile-{name}")
        bot = await Proc.start(f"bot-{name}", ["-m", "bench.botproc"], env, workdir, port)
        if webhook and tg.webhook_url is None:
            raise RuntimeError("the bot did not set its webhook")
        progress(f"  bot ready ({time.monotonic() - began:.1f} s)")
        yield Phase(name, bot, tg, kie, ledger, workdir, webhook, session, seeded)
    finally:
        if bot is not None:
            kie.open_gate(404)
            await bot.stop(grace=grace)
        await session.close()
        await kie.stop()
        await tg.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
