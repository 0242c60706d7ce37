"""Memory with edits in flight: the fake provider holds every task while edits pile up."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from bench.closed_loop import EDIT_TIMEOUT
from bench.fakes import Trace
from bench.measure import MB, Json, now
from bench.phase import Phase
from bench.seeding import CallbackTarget


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


async def in_flight(
    ph: Phase, photo: bytes, *, real: int, warm: int, users: int
) -> tuple[Json, list[CallbackTarget]]:
    """Peak RSS with the seeded edits plus `real` sent ones in flight, memory per edit.

    The first `warm` real-path edits come before the memory baseline; the RSS growth over
    the rest is the memory per in-flight edit. Returns the figures and every held edit.
    """
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
        warmed = await fill_in_flight(ph, photo, warm, users, 0)
        rss_base, _ = ph.bot.memory()
        rest = await fill_in_flight(ph, photo, real - len(warmed), users, len(warmed))
    finally:
        stop.set()
        await sampler
    seconds = now() - started
    cpu = ph.bot.cpu() - cpu0
    rss_end, hwm = ph.bot.memory()
    sent = warmed + rest
    submitted = ph.count_states(["submitted"])
    added = len(rest)
    per_edit = (rss_end - rss_base) / added if added else None
    targets = []
    for trace in sent:
        task = ph.kie.tasks.get(trace.task_id or "")
        if task is not None and task.callback_url is not None:
            targets.append(CallbackTarget.of(task))
    flight = {
        "edits_in_flight": submitted,
        "seeded_in_db": len(ph.seeded),
        "through_real_path": len(sent),
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
        else round((rss_base + max(0.0, per_edit) * (10_000 - len(warmed))) / MB, 1),
        "fill_seconds": round(seconds, 1),
        "submit_only_edits_per_s": round(len(sent) / seconds, 1) if seconds else None,
        "bot_cpu_ms_per_submit": round(cpu * 1000 / len(sent), 2) if sent else None,
    }
    return flight, targets + ph.seeded
