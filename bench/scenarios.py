"""The three phases of `bench.run`, each with a fresh bot process and database.

1. webhook + callback mode: closed-loop users (N = 1, 10, 100).
2. status-polling mode (no PUBLIC_BASE_URL: long polling, KIE upload storage, recordInfo
   polls): provider calls per edit.
3. 10,000 edits in flight (most seeded in the database, the rest sent through the real
   path while the fake provider holds every task), then callback ingestion.

Each writes its figures into the run's results.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass

from bench.closed_loop import closed_loop
from bench.in_flight import in_flight
from bench.ingestion import ingestion
from bench.measure import Json
from bench.phase import phase, progress


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


async def webhook_phase(
    plan: Plan, photo: bytes, results: Json, *, profile: bool, keep: bool
) -> None:
    """Phase 1; with `profile` the bot is profiled during the largest N."""
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
    """Phase 2: provider calls per edit when the bot polls for task status."""
    progress("phase 2: status-polling mode")
    async with phase(
        "polling",
        webhook=False,
        keep=keep,
        settings={
            "POLL_INTERVAL": "0.25",
            "POLL_MAX_INTERVAL": "2",
            "POLL_MIN_INTERVAL": "0.1",
            "SWEEP_INTERVAL": "0.1",
            "TELEGRAM_POLL_TIMEOUT": "1",
        },
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
    """Phase 3: memory with edits in flight, then callback ingestion (profiled with `profile`)."""
    seed = plan.inflight - plan.inflight_real
    progress(
        f"phase 3: {plan.inflight} edits in flight ({seed} seeded, {plan.inflight_real} sent), "
        "then callback ingestion"
    )
    async with phase(
        "inflight",
        webhook=True,
        settings={"CALLBACK_GRACE": "3600"},
        profile=profile,
        keep=keep,
        seed=seed,
    ) as ph:
        flight, targets = await in_flight(
            ph,
            photo,
            real=plan.inflight_real,
            warm=plan.inflight_warm,
            users=plan.inflight_users,
        )
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
            await asyncio.sleep(1.0)  # the bot writes the profile before it is stopped
        progress(
            f"  callback route {results['ingestion']['bot']['rate']} req/s, bare "
            f"{results['ingestion']['bare_rate']} req/s: ratio {results['ingestion']['ratio']}"
        )
        results["inflight_log_levels"] = dict(ph.bot.log_levels())
