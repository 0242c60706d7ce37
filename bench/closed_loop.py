"""Closed-loop users: each sends an edit, waits for its result and sends the next at once.

The workload of phases 1 and 2 of `bench.run` and of every setup of `bench.scaleout`.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

import aiohttp

from bench.fakes import Trace
from bench.measure import Json, Snapshot, ms_stats, now, other_cores, snapshot
from bench.phase import Phase

EDIT_TIMEOUT = 30.0
FILL_LIMIT = 30.0  # at most this long past the warmup for the pipeline to fill


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
    they abandon it. With `profile` the bot is profiled over the window.
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
        snaps["w0"] = snapshot(ph.bot.cpu)
        await asyncio.sleep(window)
        snaps["w1"] = snapshot(ph.bot.cpu)
        if profile:
            ph.bot.signal(signal.SIGUSR2)
        closed.set()
        if not drain:
            for trace in list(ph.ledger.current.values()):
                trace.done_event.set()  # stop waiting: counted as abandoned, not failed

    async with asyncio.timeout(warmup + FILL_LIMIT + window + EDIT_TIMEOUT + 30):
        await asyncio.gather(*(user(first_chat + i) for i in range(users)), window_keeper())
    calls = ph.kie.api_calls() - calls_before
    tg_calls = Counter(ph.tg.method_counts) - tg_before
    a, b = snaps["w0"], snaps["w1"]
    measured = [t for t in done if t.delivered is not None and a.at <= t.delivered < b.at]
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
        "warmup_s": round(a.at - started, 2),
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
