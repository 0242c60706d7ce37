"""Callback ingestion: the bot's callback route against a bare aiohttp JSON handler.

Success callbacks for held edits go to the bot's route and to `bench.bare` with the same
client (`bench.httpload`) and concurrency; the ratio of the rates is the figure. The result
URLs in those callbacks point at the fake provider's gate, which answers only after the
measurement, so the deliveries they trigger wait instead of competing with the route.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from bench.childproc import Proc, child_env, free_port
from bench.fakes import GATE_PREFIX
from bench.httpload import BurstResult, burst, post_request
from bench.measure import Json, ms_stats, other_cores, snapshot
from bench.phase import Phase
from bench.seeding import CallbackTarget

INGEST_CONCURRENCY = 64


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


async def ingestion(ph: Phase, targets: Sequence[CallbackTarget], count: int) -> Json:
    """Callback route vs a bare aiohttp JSON handler: same requests, client, concurrency."""
    bare_port = free_port()
    args = ["-m", "bench.bare", str(bare_port)]
    bare = await Proc.start("bare", args, child_env(), ph.workdir, bare_port)
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
        bare_cpu0, a = bare.cpu(), snapshot(ph.bot.cpu)
        # The bare server is ~50x faster: three passes over the same requests make its bursts
        # long enough not to be a blip.
        bare_requests = bare_requests * 3
        bare1 = await burst(
            "127.0.0.1", bare_port, bare_requests, concurrency=INGEST_CONCURRENCY, time_limit=limit
        )
        bare_cpu1, b = bare.cpu(), snapshot(ph.bot.cpu)
        bot_run = await burst(
            "127.0.0.1",
            ph.bot.port,
            bot_requests,
            concurrency=INGEST_CONCURRENCY,
            time_limit=limit,
        )
        c = snapshot(ph.bot.cpu)
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
        "body_bytes": len(bot_requests[0]),
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
