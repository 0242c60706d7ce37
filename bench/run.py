"""The service benchmark: `python -m bench.run [--quick] [--profile]`.

Runs the real service (`python -m bot`, through `bench.botproc`) as a separate process
against the fake Telegram Bot API and the fake KIE provider, which run in this process
(together with the load generator) and finish every task at once. Being a separate
process, the bot's CPU time and peak RSS are its own, read from /proc.

Phases, each with a fresh bot process and database:

1. webhook + callback mode: closed-loop users (N = 1, 10, 100), each sending a ~300 KB
   photo with a caption and waiting for the result before the next one. Edits/s, end-to-end
   latency, bot-added latency per hop (update -> createTask, callback -> sendPhoto; fake
   handler time subtracted), bot CPU ms per edit, provider calls per edit.
2. status-polling mode (no PUBLIC_BASE_URL: long polling, KIE upload storage, recordInfo
   polls): provider calls per edit.
3. 10,000 edits in flight: most are seeded as `submitted` rows with the bot's own storage
   layer before the bot starts, the rest go through the real path (webhook, download,
   createTask) while the fake provider holds every task; peak RSS (VmHWM) and memory per
   in-flight edit (RSS growth per real-path edit). Then callback ingestion: success
   callbacks for held edits sent to the bot's callback route and to a bare aiohttp server
   (`bench.bare`), same client (`bench.httpload`), same concurrency; the ratio of the rates.
   Result URLs in those callbacks point at a gate that answers only after the measurement,
   so the deliveries they trigger wait instead of competing with the route.

The bot runs with TELEGRAM_MAX_RATE=100000 and KIE_RATE_LIMIT=1000000/10: the fakes have no
flood or rate limits, and the production limits (30 Bot API calls/s, KIE's 20 createTask
per 10 s) would otherwise be what is measured.

Writes bench/results/latest.json, prints a markdown table and one summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import sqlalchemy as sa
from PIL import Image

from bench.fakes import GATE_PREFIX, BenchKie, BenchTelegram, Ledger, Trace, now
from bench.fakes import install_cheap_rendering as _install_cheap_rendering
from bench.httpload import BurstResult, burst, post_request
from tests.fakes._common import FakeTask, Outcome

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TOKEN = "123456:BENCH-token-for-the-fake-telegram-api-00"
KIE_KEY = "kie-bench-key"
TELEGRAM_MAX_RATE = 100_000
KIE_SUBMITS_PER_10S = 1_000_000
EDIT_TIMEOUT = 30.0
FILL_LIMIT = 30.0  # at most this long past the warmup for the pipeline to fill
INGEST_CONCURRENCY = 64
MB = 1024 * 1024
EXTRA_BOT_PATH: list[str] = []  # --bot-pythonpath: what-if experiments (e.g. an extra package)
EXTRA_BOT_ENV: dict[str, str] = {}  # --uvloop

Json = dict[str, Any]


# ------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Plan:
    """How long and how big each phase is."""

    mode: str
    users: tuple[int, ...]
    warmup: dict[int, float]
    window: dict[int, float]
    polling_users: int
    polling_warmup: float
    polling_window: float
    inflight: int  # edits in flight in total
    inflight_real: int  # of which sent through the real path (the rest seeded in the DB)
    inflight_warm: int  # real-path edits before the memory baseline
    inflight_users: int
    ingest_requests: int
    drain_largest: bool  # wait for the largest N's last edits (exact counts) or abandon them
    fill: float  # share of the users that must have a result before a window opens


QUICK = Plan(
    mode="quick",
    users=(1, 10, 100),
    warmup={1: 0.5, 10: 1.0, 100: 1.0},
    window={1: 1.5, 10: 2.5, 100: 2.5},
    polling_users=10,
    polling_warmup=0.5,
    polling_window=1.5,
    inflight=10_000,
    inflight_real=30,
    inflight_warm=15,
    inflight_users=20,
    ingest_requests=150,
    drain_largest=False,
    fill=0.5,
)
FULL = Plan(
    mode="full",
    users=(1, 10, 100),
    warmup={1: 2.0, 10: 3.0, 100: 3.0},
    window={1: 15.0, 10: 20.0, 100: 40.0},
    polling_users=10,
    polling_warmup=3.0,
    polling_window=15.0,
    inflight=10_000,
    inflight_real=2_000,
    inflight_warm=200,
    inflight_users=100,
    ingest_requests=3_000,
    drain_largest=True,
    fill=1.0,
)


# ---------------------------------------------------------------------------------- helpers
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pct(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) or None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return ordered[rank]


def ms_stats(seconds: Sequence[float]) -> Json:
    """Median, p99 and max of durations, in milliseconds."""

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    return {
        "n": len(seconds),
        "median_ms": ms(pct(seconds, 0.5)),
        "p99_ms": ms(pct(seconds, 0.99)),
        "max_ms": ms(max(seconds) if seconds else None),
    }


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


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def proc_memory(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process in bytes, from /proc/<pid>/status."""
    rss = hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024
    return rss, hwm


def system_busy_seconds() -> float:
    """CPU seconds all processes of the machine spent busy (from /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def machine() -> Json:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions: Json = {}
    for name in ("aiohttp", "python-telegram-bot", "SQLAlchemy", "aiosqlite", "pillow"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[name] = version(name)
    commit = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "bot", "storage"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        if dirty:
            commit += "+dirty"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "packages": versions,
        "commit": commit,
    }


# ------------------------------------------------------------------------------- processes
class Proc:
    """A child process of the benchmark (the bot or the bare server)."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.name = name
        self.proc = proc
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)

    def memory(self) -> tuple[int, int]:
        return proc_memory(self.pid)

    def signal(self, signum: int) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signum)

    @classmethod
    async def start(
        cls, name: str, args: Sequence[str], env: dict[str, str], cwd: Path, port: int
    ) -> Proc:
        RESULTS.mkdir(parents=True, exist_ok=True)
        log = RESULTS / f"{name}.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, *args, env=env, cwd=str(cwd), stdout=out, stderr=out
            )
        self = cls(name, proc, port, log)
        await self._wait_ready()
        return self

    async def _wait_ready(self, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"{self.name} exited: see {self.log}\n{self.tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(f"{self.url}/healthz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {within}s: see {self.log}\n{self.tail()}")

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def stop(self, grace: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(grace):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode

    def log_levels(self) -> Counter[str]:
        """How many log lines of each level the process wrote."""
        levels: Counter[str] = Counter()
        with contextlib.suppress(OSError):
            for line in self.log.read_text(errors="replace").splitlines():
                try:
                    levels[str(json.loads(line).get("level"))] += 1
                except ValueError:
                    levels["other"] += 1
        return levels


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
    tg: BenchTelegram, kie: BenchKie, workdir: Path, port: int, *, webhook: bool, **extra: str
) -> dict[str, str]:
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TZ") if key in os.environ}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([*EXTRA_BOT_PATH, str(ROOT)]),
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
            "LOG_LEVEL": "INFO",
            "KIE_RATE_LIMIT": f"{KIE_SUBMITS_PER_10S}/10",
            "BENCH_KIE_SUBMITS_PER_10S": str(KIE_SUBMITS_PER_10S),
        }
    )
    if EXTRA_BOT_ENV:
        env.update(EXTRA_BOT_ENV)
    if webhook:
        env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
    env.update(extra)
    return env


@contextlib.asynccontextmanager
async def phase(
    name: str,
    *,
    webhook: bool,
    profile: bool,
    keep: bool,
    seed: int = 0,
    grace: float = 15.0,
    **settings: str,
) -> Any:
    """Fresh fakes, a fresh bot process and database; everything torn down after."""
    began = time.monotonic()
    ledger = Ledger()
    tg = BenchTelegram(TOKEN, ledger)
    kie = BenchKie(KIE_KEY, ledger)
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
        env = bot_env(tg, kie, workdir, port, webhook=webhook, **settings)
        if profile:
            env["BENCH_PROFILE"] = str(RESULTS / f"profile-{name}")
            env["BENCH_PROFILER"] = os.environ.get("BENCH_PROFILER", "pyinstrument-cpu")
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
        PHASE_SECONDS[name] = round(time.monotonic() - began, 1)


# ------------------------------------------------------------------------------ workloads
@dataclass
class Snapshot:
    at: float
    bot_cpu: float
    driver_cpu: float
    system_busy: float


def snapshot(ph: Phase) -> Snapshot:
    return Snapshot(now(), ph.bot.cpu(), time.process_time(), system_busy_seconds())


def other_cores(a: Snapshot, b: Snapshot) -> float | None:
    """Cores used by processes outside the benchmark between two snapshots."""
    seconds = b.at - a.at
    if seconds <= 0:
        return None
    ours = (b.bot_cpu - a.bot_cpu) + (b.driver_cpu - a.driver_cpu)
    return round(max(0.0, (b.system_busy - a.system_busy) - ours) / seconds, 2)


async def closed_loop(
    ph: Phase,
    photo: bytes,
    users: int,
    warmup: float,
    window: float,
    *,
    first_chat: int,
    drain: bool = True,
    fill: float = 1.0,
    profile: bool = False,
) -> Json:
    """`users` users each sending one edit after another, measured over `window` seconds.

    The window opens once `fill` of the users got a result (1.0: the start-up wave is over)
    and at least `warmup` seconds passed. At its end the users stop; with `drain` they first
    wait for the edit they have in flight (so call counts cover whole edits), without it
    they abandon it.
    """
    done: list[Trace] = []
    failures = 0
    abandoned = 0
    started = now()
    snaps: dict[str, Snapshot] = {}
    closed = asyncio.Event()
    calls_before = ph.kie.api_calls()
    tg_before = Counter(ph.tg.method_counts)
    created: list[Trace] = []

    async def user(chat_id: int) -> None:
        nonlocal failures, abandoned
        ph.tg.user(chat_id)
        seq = 0
        while not closed.is_set():
            seq += 1
            trace = ph.ledger.new(chat_id, seq)
            update = ph.tg.photo_update_for(trace, photo)
            trace.sent = now()
            try:
                await ph.send(update)
                async with asyncio.timeout(EDIT_TIMEOUT):
                    await trace.done_event.wait()
            except (TimeoutError, RuntimeError, aiohttp.ClientError):
                failures += 1
            else:
                if trace.delivered is None:
                    abandoned += 1
                else:
                    done.append(trace)
            if trace.created is not None:
                created.append(trace)
            ph.kie.trim(trace)
            ph.ledger.forget(trace)

    async def window_keeper() -> None:
        for _ in range(int((warmup + FILL_LIMIT) / 0.05)):
            if now() >= started + warmup and len(done) >= max(1, int(users * fill)):
                break
            await asyncio.sleep(0.05)
        if profile:
            ph.bot.signal(signal.SIGUSR1)
        snaps["w0"] = snapshot(ph)
        await asyncio.sleep(window)
        snaps["w1"] = snapshot(ph)
        if profile:
            ph.bot.signal(signal.SIGUSR2)
        closed.set()
        if not drain:
            for trace in list(ph.ledger.current.values()):
                trace.done_event.set()  # stop waiting: counted as abandoned, not failed

    async with asyncio.timeout(warmup + FILL_LIMIT + window + EDIT_TIMEOUT + 30):
        await asyncio.gather(*(user(first_chat + i) for i in range(users)), window_keeper())
    w0, w1 = snaps["w0"].at, snaps["w1"].at
    calls = ph.kie.api_calls() - calls_before
    tg_calls = Counter(ph.tg.method_counts) - tg_before
    a, b = snaps["w0"], snaps["w1"]
    measured = [t for t in done if t.delivered is not None and w0 <= t.delivered < w1]
    seconds = b.at - a.at
    count = len(measured)
    e2e = [t.delivered - t.sent for t in measured if t.delivered is not None]
    hop1_raw = [t.created - t.sent for t in measured if t.created is not None]
    hop1 = [t.created - t.sent - t.fake_submit for t in measured if t.created is not None]
    hop2_raw = [
        t.delivered - t.callback for t in measured if t.callback and t.delivered is not None
    ]
    hop2 = [
        t.delivered - t.callback - t.fake_deliver
        for t in measured
        if t.callback and t.delivered is not None
    ]
    total = len(done)
    reached = len(created)
    return {
        "users": users,
        "window_s": round(seconds, 2),
        "edits": count,
        "edits_total": total,
        "failures": failures,
        "abandoned_at_end": abandoned,
        "warmup_s": round(w0 - started, 2),
        "edits_per_s": round(count / seconds, 2) if seconds else None,
        "end_to_end": ms_stats(e2e),
        "hop_update_to_submit": ms_stats(hop1),
        "hop_update_to_submit_raw": ms_stats(hop1_raw),
        "hop_callback_to_send": ms_stats(hop2),
        "hop_callback_to_send_raw": ms_stats(hop2_raw),
        "bot_cpu_ms_per_edit": round((b.bot_cpu - a.bot_cpu) * 1000 / count, 2) if count else None,
        "bot_cpu_cores": round((b.bot_cpu - a.bot_cpu) / seconds, 2) if seconds else None,
        "driver_cpu_cores": round((b.driver_cpu - a.driver_cpu) / seconds, 2) if seconds else None,
        "other_processes_cores": other_cores(a, b),
        # Per edit that reached the provider (equals completed edits when drained).
        "provider_calls_per_edit": round(sum(calls.values()) / reached, 3) if reached else None,
        "provider_calls": dict(calls),
        "telegram_calls_per_edit": {
            method: round(n / total, 3) for method, n in sorted(tg_calls.items()) if total
        },
    }


@dataclass(frozen=True)
class CallbackTarget:
    """An edit waiting for its callback: where to POST it and the task to describe."""

    path: str  # /callbacks/kie/<id>?token=...
    edit_id: int
    task: FakeTask


async def seed_in_flight(
    workdir: Path, port: int, kie: BenchKie, count: int
) -> list[CallbackTarget]:
    """Put `count` submitted edits into a fresh database with the bot's own storage layer.

    One edit is made with `Database.edits.create` + `transition` (so every column the schema
    has is filled as the bot fills it); the rest are copies of its row with their own ids,
    dedupe keys, chats, tokens and task ids, inserted in bulk.
    """
    from domain import steps
    from domain.edit import InputPhoto, NewEdit
    from storage.db import Database
    from storage.dbconn import DbConn
    from storage.schema import edits

    database = workdir / "data" / "bot.sqlite3"
    database.parent.mkdir(parents=True, exist_ok=True)
    db = Database(f"sqlite+aiosqlite:///{database}")
    try:
        await db.migrate()
        stamp = time.time()
        template = await db.edits.create(
            NewEdit(
                dedupe_key="seed:0",
                chat_id=900_000,
                chat_type="private",
                user_id=900_000,
                message_id=1,
                lang="en",
                provider="kie",
                model="qwen/image-edit",
                prompt="make the sky purple (seeded)",
                callback_token=secrets.token_urlsafe(24),
                inputs=[InputPhoto(file_id="seeded", width=1280, height=960)],
            )
        )
        assert template is not None
        await db.edits.transition(template.id, steps.BEGIN_SUBMIT)
        await db.edits.transition(
            template.id,
            steps.RECORD_TASK,
            task_id=uuid.uuid4().hex,
            submitted_at=stamp,
            next_check_at=stamp + 3600,
        )
        row = dict((await db.execute(sa.select(edits))).mappings().one())
        rows: list[Json] = []
        for i in range(1, count):
            clone = dict(row)
            del clone["id"]
            clone.update(
                dedupe_key=f"seed:{i}",
                chat_id=900_000 + i // 4,
                user_id=900_000 + i // 4,
                message_id=1 + i,
                callback_token=secrets.token_urlsafe(24),
                task_id=uuid.uuid4().hex,
            )
            rows.append(clone)

        async def insert(conn: DbConn) -> None:
            for chunk in range(0, len(rows), 2000):
                await conn.execute(edits.insert(), rows[chunk : chunk + 2000])

        await db.transaction(insert)
        seeded = (
            await db.execute(
                sa.select(edits.c.id, edits.c.callback_token, edits.c.task_id, edits.c.prompt)
            )
        ).all()
    finally:
        await db.close()
    base = f"http://127.0.0.1:{port}"
    targets = []
    for edit_id, token, task_id, prompt in seeded:
        url = f"{base}/callbacks/kie/{edit_id}?token={token}"
        task = FakeTask(
            task_id=task_id,
            api="jobs",
            model="qwen/image-edit",
            request={
                "model": "qwen/image-edit",
                "input": {"prompt": prompt, "image_url": f"{base}/files/seeded.jpg"},
                "callBackUrl": url,
            },
            callback_url=url,
            input_urls=[],
            outcome=Outcome(),
        )
        kie.set_phase(task, "generating")
        targets.append(CallbackTarget(_path_of(url), int(edit_id), task))
    return targets


def _path_of(url: str) -> str:
    target = urlsplit(url)
    return f"{target.path}?{target.query}"


async def fill_in_flight(
    ph: Phase, photo: bytes, count: int, users: int, first_seq: int
) -> list[Trace]:
    """Send `count` edits through the real path with the provider holding every task."""
    traces: list[Trace] = []
    issued = iter(range(first_seq, first_seq + count))
    before = ph.count_states(["submitted"])

    async def user(chat_id: int) -> None:
        ph.tg.user(chat_id)
        for seq in issued:
            trace = ph.ledger.new(chat_id, seq)
            update = ph.tg.photo_update_for(trace, photo)
            trace.sent = now()
            with contextlib.suppress(TimeoutError, RuntimeError, aiohttp.ClientError):
                await ph.send(update)
                async with asyncio.timeout(EDIT_TIMEOUT):
                    await trace.created_event.wait()
                traces.append(trace)

    await asyncio.gather(*(user(1 + i) for i in range(users)))
    for _ in range(150):  # the database, not an event, says when all are submitted
        if ph.count_states(["submitted"]) >= before + len(traces):
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # let the bot settle (a sweeper pass, freed buffers)
    return traces


async def in_flight(ph: Phase, photo: bytes, plan: Plan) -> tuple[Json, list[CallbackTarget]]:
    """Peak RSS with `plan.inflight` edits in flight, and memory per in-flight edit."""
    ph.kie.hold_all = True
    ph.kie.discard_inputs = True
    rss_start, _ = ph.bot.memory()
    samples: list[int] = []
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            samples.append(ph.bot.memory()[0])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)

    sampler = asyncio.create_task(sample())
    started = now()
    cpu0 = ph.bot.cpu()
    try:
        warm = await fill_in_flight(ph, photo, plan.inflight_warm, plan.inflight_users, 0)
        rss_base, _ = ph.bot.memory()
        rest = await fill_in_flight(
            ph, photo, plan.inflight_real - len(warm), plan.inflight_users, len(warm)
        )
    finally:
        stop.set()
        await sampler
    seconds = now() - started
    cpu = ph.bot.cpu() - cpu0
    rss_end, hwm = ph.bot.memory()
    real = warm + rest
    submitted = ph.count_states(["submitted"])
    added = len(rest)
    per_edit = (rss_end - rss_base) / added if added else None
    targets = []
    for trace in real:
        task = ph.kie.tasks.get(trace.task_id or "")
        if task is not None and task.callback_url is not None:
            edit_id = int(urlsplit(task.callback_url).path.rsplit("/", 1)[1])
            targets.append(CallbackTarget(_path_of(task.callback_url), edit_id, task))
    flight = {
        "edits_in_flight": submitted,
        "seeded_in_db": len(ph.seeded),
        "through_real_path": len(real),
        "rss_after_start_mb": round(rss_start / MB, 1),
        "rss_baseline_mb": round(rss_base / MB, 1),
        "rss_in_flight_mb": round(rss_end / MB, 1),
        # VmHWM, or a sampled VmRSS if higher (the kernel updates RSS counters lazily).
        "peak_rss_mb": round(max(hwm, rss_end, *samples) / MB, 1),
        "peak_rss_vmhwm_mb": round(hwm / MB, 1),
        "peak_rss_sampled_mb": round(max(samples, default=0) / MB, 1),
        "kb_per_in_flight_edit": None if per_edit is None else round(per_edit / 1024, 2),
        "projected_rss_10k_real_path_mb": None
        if per_edit is None
        else round((rss_base + max(0.0, per_edit) * (10_000 - len(warm))) / MB, 1),
        "fill_seconds": round(seconds, 1),
        "submit_only_edits_per_s": round(len(real) / seconds, 1) if seconds else None,
        "bot_cpu_ms_per_submit": round(cpu * 1000 / len(real), 2) if real else None,
    }
    return flight, targets + ph.seeded


async def ingestion(ph: Phase, targets: Sequence[CallbackTarget], count: int) -> Json:
    """Callback route vs a bare aiohttp JSON handler: same requests, client, concurrency."""
    bare_port = free_port()
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env["PYTHONPATH"] = str(ROOT)
    args = ["-m", "bench.bare", str(bare_port)]
    bare = await Proc.start("bare", args, env, ph.workdir, bare_port)
    try:
        bot_requests: list[bytes] = []
        bare_requests: list[bytes] = []
        for target in targets[:count]:
            gate = f"{ph.kie.url}{GATE_PREFIX}{target.task.task_id}.jpg"
            body = json.dumps(ph.kie.success_body(target.task, [gate]), ensure_ascii=False)
            data = body.encode()
            bot_requests.append(post_request("127.0.0.1", ph.bot.port, target.path, data))
            bare_requests.append(post_request("127.0.0.1", bare_port, target.path, data))
        if not bot_requests:
            raise RuntimeError("no held edits to call back")
        limit = 240.0
        await burst("127.0.0.1", bare_port, bare_requests[:200], concurrency=8, time_limit=30)
        recorded_before = ph.count_states(["succeeded", "delivered"])
        bare_cpu0, a = bare.cpu(), snapshot(ph)
        # The bare server is ~50x faster: three passes over the same requests make its bursts
        # long enough not to be a blip.
        bare_requests = bare_requests * 3
        bare1 = await burst(
            "127.0.0.1", bare_port, bare_requests, concurrency=INGEST_CONCURRENCY, time_limit=limit
        )
        bare_cpu1, b = bare.cpu(), snapshot(ph)
        bot_run = await burst(
            "127.0.0.1",
            ph.bot.port,
            bot_requests,
            concurrency=INGEST_CONCURRENCY,
            time_limit=limit,
        )
        c = snapshot(ph)
        bare2 = await burst(
            "127.0.0.1", bare_port, bare_requests, concurrency=INGEST_CONCURRENCY, time_limit=limit
        )
        recorded = ph.count_states(["succeeded", "delivered"]) - recorded_before
        parked = ph.kie.gate_waiting
    finally:
        await bare.stop(grace=10.0)
    bare_rate = max(bare1.rate, bare2.rate)  # the ceiling: the better of the two bursts
    return {
        "requests": len(bot_requests),
        "concurrency": INGEST_CONCURRENCY,
        "body_bytes": len(bot_requests[0]) if bot_requests else 0,
        "bot": burst_json(bot_run),
        "bare": [burst_json(bare1), burst_json(bare2)],
        "bare_rate": round(bare_rate, 1),
        "ratio": round(bot_run.rate / bare_rate, 3) if bare_rate else None,
        "recorded_in_db": recorded,
        "bot_cpu_cores": round((c.bot_cpu - b.bot_cpu) / bot_run.seconds, 2),
        "bot_cpu_ms_per_callback": round((c.bot_cpu - b.bot_cpu) * 1000 / max(1, bot_run.ok), 2),
        "bare_cpu_cores": round((bare_cpu1 - bare_cpu0) / bare1.seconds, 2),
        "other_processes_cores_bare": other_cores(a, b),
        "other_processes_cores_bot": other_cores(b, c),
        "deliveries_parked_at_gate": parked,
    }


def burst_json(result: BurstResult) -> Json:
    return {
        "ok": result.ok,
        "errors": result.errors,
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
        "seconds": round(result.seconds, 3),
        "rate": round(result.rate, 1),
        "latency": ms_stats(result.latencies),
        "client_cpu_cores": round(result.client_cpu / result.seconds, 2) if result.seconds else 0,
    }


# --------------------------------------------------------------------------------- report
@dataclass
class Target:
    name: str
    goal: str
    value: str
    met: bool | None
    note: str = ""


def targets(results: Json, plan: Plan) -> list[Target]:
    out: list[Target] = []
    hook = results["webhook_callback"]
    n100 = hook.get("100", {})
    rate = n100.get("edits_per_s")
    out.append(Target("edits/s at N=100", ">= 50", f"{rate}", None if rate is None else rate >= 50))
    n10 = hook.get("10", {})
    p1 = n10.get("hop_update_to_submit", {}).get("p99_ms")
    p2 = n10.get("hop_callback_to_send", {}).get("p99_ms")
    out.append(
        Target(
            "p99 update -> createTask, N=10", "< 50 ms", f"{p1} ms", None if p1 is None else p1 < 50
        )
    )
    out.append(
        Target(
            "p99 callback -> sendPhoto, N=10",
            "< 50 ms",
            f"{p2} ms",
            None if p2 is None else p2 < 50,
        )
    )
    ratio = results.get("ingestion", {}).get("ratio")
    out.append(
        Target(
            "callback ingestion vs bare aiohttp",
            ">= 50%",
            "n/a" if ratio is None else f"{ratio:.0%}",
            None if ratio is None else ratio >= 0.5,
        )
    )
    flight = results.get("in_flight", {})
    peak = flight.get("peak_rss_mb")
    count = flight.get("edits_in_flight")
    out.append(
        Target(
            "peak RSS, 10,000 edits in flight",
            "< 250 MB",
            f"{peak} MB at {count}",
            None if peak is None else peak < 250,
            "" if count and count >= 10_000 else "quick mode: fewer edits in flight",
        )
    )
    calls = hook.get("10", {}).get("provider_calls_per_edit")
    out.append(
        Target(
            "provider calls/edit, callback mode",
            "<= 2",
            f"{calls}",
            None if calls is None else calls <= 2,
        )
    )
    return out


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value}{unit}"


def markdown(results: Json, goals: list[Target]) -> str:
    m = results["machine"]
    lines = [
        f"Benchmark ({results['mode']} mode, {results['date']}): {m['cpus']} cores "
        f"({m['cpu_model']}), Python {m['python']}, commit {m['commit']}; other processes "
        f"on the machine used {fmt(other_load(results))} cores meanwhile.",
        "",
        "| N users | edits/s | end-to-end p50 / p99 | update→createTask p50 / p99 "
        "| callback→sendPhoto p50 / p99 | bot CPU ms/edit | provider calls/edit |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, row in results["webhook_callback"].items():
        e2e, h1, h2 = row["end_to_end"], row["hop_update_to_submit"], row["hop_callback_to_send"]
        lines.append(
            f"| {key} | {fmt(row['edits_per_s'])} "
            f"| {fmt(e2e['median_ms'])} / {fmt(e2e['p99_ms'])} ms "
            f"| {fmt(h1['median_ms'])} / {fmt(h1['p99_ms'])} ms "
            f"| {fmt(h2['median_ms'])} / {fmt(h2['p99_ms'])} ms "
            f"| {fmt(row['bot_cpu_ms_per_edit'])} | {fmt(row['provider_calls_per_edit'])} |"
        )
    poll = results.get("polling", {})
    flight = results.get("in_flight", {})
    ingest = results.get("ingestion", {})
    lines += [
        "",
        "| Metric | Target | Result | Met |",
        "|---|---|---|:-:|",
    ]
    for goal in goals:
        met = "–" if goal.met is None else ("yes" if goal.met else "**no**")
        note = f" ({goal.note})" if goal.note else ""
        lines.append(f"| {goal.name} | {goal.goal} | {goal.value}{note} | {met} |")
    lines += [
        f"| provider calls/edit, status-polling mode | – | "
        f"{fmt(poll.get('provider_calls_per_edit'))} "
        f"({', '.join(f'{k} {v}' for k, v in poll.get('provider_calls_by_path', {}).items())}) "
        "| – |",
        f"| memory per in-flight edit | – | {fmt(flight.get('kb_per_in_flight_edit'), ' KB')} "
        f"(RSS {fmt(flight.get('rss_baseline_mb'))} → {fmt(flight.get('rss_in_flight_mb'))} MB)"
        " | – |",
        f"| callback route / bare aiohttp | – | {fmt(ingest.get('bot', {}).get('rate'))} / "
        f"{fmt(ingest.get('bare_rate'))} req/s ({ingest.get('concurrency')} connections) | – |",
    ]
    return "\n".join(lines)


def other_load(results: Json) -> float | None:
    """Mean cores used by processes outside the benchmark during the measured windows."""
    values = [
        row.get("other_processes_cores")
        for row in [*results.get("webhook_callback", {}).values(), results.get("polling", {})]
    ]
    found = [v for v in values if isinstance(v, int | float)]
    return round(sum(found) / len(found), 2) if found else None


def summary_line(results: Json, goals: list[Target]) -> str:
    hook = results["webhook_callback"]
    n10, n100 = hook.get("10", {}), hook.get("100", {})
    flight = results.get("in_flight", {})
    ingest = results.get("ingestion", {})
    met = sum(1 for g in goals if g.met)
    ratio = ingest.get("ratio")
    return (
        f"bench[{results['mode']}]: {fmt(n100.get('edits_per_s'))} edits/s @N=100 | "
        f"p99 hop update→task {fmt(n10.get('hop_update_to_submit', {}).get('p99_ms'))} ms, "
        f"callback→send {fmt(n10.get('hop_callback_to_send', {}).get('p99_ms'))} ms @N=10 | "
        f"ingestion {'n/a' if ratio is None else f'{ratio:.0%}'} of bare aiohttp | "
        f"peak RSS {fmt(flight.get('peak_rss_mb'))} MB @{fmt(flight.get('edits_in_flight'))} "
        f"in flight ({fmt(flight.get('kb_per_in_flight_edit'))} KB/edit) | "
        f"{fmt(n100.get('bot_cpu_ms_per_edit'))} CPU ms/edit | provider calls/edit "
        f"callback {fmt(n10.get('provider_calls_per_edit'))}, "
        f"polling {fmt(results.get('polling', {}).get('provider_calls_per_edit'))} | "
        f"targets met {met}/{len(goals)}"
        + (
            f" | NOTE: other processes used {busy} of {results['machine']['cpus']} cores"
            if (busy := other_load(results)) is not None and busy > 0.2
            else ""
        )
    )


# ----------------------------------------------------------------------------------- main
PHASE_SECONDS: dict[str, float] = {}


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def run(plan: Plan, *, phases: set[str], profile: bool, keep: bool) -> Json:
    _install_cheap_rendering()
    photo = make_photo()
    results: Json = {
        "mode": plan.mode,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join([Path(sys.executable).name, "-m", "bench.run", *sys.argv[1:]]),
        "machine": machine(),
        "config": {
            "photo_bytes": len(photo),
            "photo_size": "1280x960 JPEG",
            "telegram_max_rate": TELEGRAM_MAX_RATE,
            "kie_submits_per_10s": KIE_SUBMITS_PER_10S,
            "layout": "bot = separate process (python -m bench.botproc -> bot.__main__); "
            "fake Telegram + fake KIE + load generator = the benchmark process",
            "provider": "fake KIE, task_delay=0, result = the input photo",
            "bot_extra_pythonpath": EXTRA_BOT_PATH,
            "bot_extra_env": EXTRA_BOT_ENV,
        },
        "webhook_callback": {},
    }
    started = time.monotonic()

    busy0, cpu0 = system_busy_seconds(), time.process_time()
    if "webhook" in phases:
        await webhook_phase(plan, photo, results, profile=profile, keep=keep)
    if "polling" in phases:
        await polling_phase(plan, photo, results, keep=keep)
    if "inflight" in phases:
        await inflight_phase(plan, photo, results, profile=profile, keep=keep)
    results["seconds"] = round(time.monotonic() - started, 1)
    results["phase_seconds"] = PHASE_SECONDS
    # Everything the machine did meanwhile, minus this process: the bot processes, the bare
    # server, and whatever else runs here (a busy machine slows every figure but CPU/edit).
    results["machine_busy_cores_besides_driver"] = round(
        (system_busy_seconds() - busy0 - (time.process_time() - cpu0)) / results["seconds"], 2
    )
    return results


async def webhook_phase(
    plan: Plan, photo: bytes, results: Json, *, profile: bool, keep: bool
) -> None:
    progress("phase 1: webhook + callback mode")
    grace = 15.0 if plan.drain_largest else 3.0
    async with phase("webhook", webhook=True, profile=profile, keep=keep, grace=grace) as ph:
        for users in plan.users:
            row = await closed_loop(
                ph,
                photo,
                users,
                plan.warmup.get(users, 3.0),
                plan.window.get(users, 10.0),
                first_chat=users * 1000,
                drain=plan.drain_largest or users != max(plan.users),
                fill=plan.fill,
                profile=profile and users == max(plan.users),
            )
            results["webhook_callback"][str(users)] = row
            progress(
                f"  N={users}: {row['edits_per_s']} edits/s, "
                f"p99 hops {row['hop_update_to_submit']['p99_ms']} / "
                f"{row['hop_callback_to_send']['p99_ms']} ms, "
                f"{row['bot_cpu_ms_per_edit']} CPU ms/edit"
            )
        results["webhook_callback_log_levels"] = dict(ph.bot.log_levels())


async def polling_phase(plan: Plan, photo: bytes, results: Json, *, keep: bool) -> None:
    progress("phase 2: status-polling mode")
    async with phase(
        "polling",
        webhook=False,
        profile=False,
        keep=keep,
        POLL_INTERVAL="0.25",
        POLL_MAX_INTERVAL="2",
        SWEEP_INTERVAL="0.1",
        TELEGRAM_POLL_TIMEOUT="1",
    ) as ph:
        row = await closed_loop(
            ph,
            photo,
            plan.polling_users,
            plan.polling_warmup,
            plan.polling_window,
            first_chat=50_000,
        )
        total = row["edits_total"] or 1
        row["provider_calls_by_path"] = {
            path.rsplit("/", 1)[-1]: round(n / total, 3)
            for path, n in sorted(row["provider_calls"].items())
        }
        row["settings"] = "POLL_INTERVAL=0.25 SWEEP_INTERVAL=0.1 (no PUBLIC_BASE_URL)"
        results["polling"] = row
        progress(f"  {row['provider_calls_per_edit']} provider calls/edit")


async def inflight_phase(
    plan: Plan, photo: bytes, results: Json, *, profile: bool, keep: bool
) -> None:
    seed = plan.inflight - plan.inflight_real
    progress(
        f"phase 3: {plan.inflight} edits in flight ({seed} seeded, {plan.inflight_real} sent), "
        "then callback ingestion"
    )
    async with phase(
        "inflight", webhook=True, profile=profile, keep=keep, seed=seed, CALLBACK_GRACE="3600"
    ) as ph:
        flight, targets = await in_flight(ph, photo, plan)
        results["in_flight"] = flight
        progress(
            f"  peak RSS {flight['peak_rss_mb']} MB with {flight['edits_in_flight']} in flight, "
            f"{flight['kb_per_in_flight_edit']} KB per edit"
        )
        if profile:
            ph.bot.signal(signal.SIGUSR1)
        results["ingestion"] = await ingestion(ph, targets, plan.ingest_requests)
        if profile:
            ph.bot.signal(signal.SIGUSR2)
            await asyncio.sleep(1.0)
        progress(
            f"  callback route {results['ingestion']['bot']['rate']} req/s, bare "
            f"{results['ingestion']['bare_rate']} req/s: ratio {results['ingestion']['ratio']}"
        )
        results["inflight_log_levels"] = dict(ph.bot.log_levels())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 60 s)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="pyinstrument the bot during N=100 and ingestion (slower; figures not comparable)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp directories")
    parser.add_argument(
        "--phases",
        default="webhook,polling,inflight",
        help="comma-separated subset of webhook,polling,inflight (default: all)",
    )
    parser.add_argument(
        "--users", default="", help="comma-separated N values for the webhook phase (e.g. 10)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    parser.add_argument(
        "--bot-pythonpath",
        default="",
        help="directories put first on the bot process's PYTHONPATH (what-if experiments)",
    )
    parser.add_argument(
        "--uvloop", action="store_true", help="what-if: run the bot on uvloop (needs uvloop)"
    )
    args = parser.parse_args(argv)
    if args.uvloop:
        EXTRA_BOT_ENV["BENCH_UVLOOP"] = "1"
    EXTRA_BOT_PATH.extend(p for p in args.bot_pythonpath.split(os.pathsep) if p)
    plan = QUICK if args.quick else FULL
    if args.users:
        plan = replace(plan, users=tuple(int(n) for n in args.users.split(",")))
    phases = {name.strip() for name in args.phases.split(",") if name.strip()}
    results = asyncio.run(run(plan, phases=phases, profile=args.profile, keep=args.keep))
    goals = targets(results, plan)
    results["targets"] = [goal.__dict__ for goal in goals]
    table = markdown(results, goals)
    results["markdown"] = table
    line = summary_line(results, goals)
    results["summary"] = line
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(table)
    print()
    print(f"(details: {args.output}; {results['seconds']} s)")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
