"""Open-loop arrivals: photos arrive on a fixed schedule whatever the bot answers.

A schedule is a list of `Arrival`s (`steady` spreads new users evenly at a rate, `burst` is
one user's photos at one instant); `open_loop` sends each at its time through the phase's
mode (webhook POST or getUpdates queue) and waits until every edit was delivered or the
deadline passed. The fakes (`bench.limited`) fill in each `OpenTrace`: createTask, callback,
result, status message and its edits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from bench.limited import LimitedTelegram, OpenTrace
from bench.measure import Json, ms_stats, now, pct
from bench.phase import Phase


@dataclass(frozen=True)
class Arrival:
    at: float  # seconds after the schedule starts
    user: int
    chat: int  # the user's id for a private chat, negative for a group
    kind: str  # "light" | "heavy" | "group"


def steady(rate: float, start: float, seconds: float, first_user: int) -> list[Arrival]:
    """`rate` photos per second for `seconds`, each from a new user in a private chat."""
    count = round(rate * seconds)
    return [
        Arrival(start + i / rate, first_user + i, first_user + i, "light") for i in range(count)
    ]


def burst(at: float, user: int, count: int, chat: int | None = None) -> list[Arrival]:
    """`count` photos of one user at the same instant (in a group when `chat` is negative)."""
    chat_id = user if chat is None else chat
    kind = "group" if chat_id < 0 else "heavy"
    return [Arrival(at, user, chat_id, kind) for _ in range(count)]


async def open_loop(
    ph: Phase, photo: bytes, arrivals: Sequence[Arrival], *, deadline: float
) -> list[OpenTrace]:
    """Send every arrival at its time; return when all are delivered or after `deadline` s."""
    tg = ph.tg
    assert isinstance(tg, LimitedTelegram)
    seqs: dict[int, int] = {}
    traces: list[OpenTrace] = []
    started = now()
    all_sent = asyncio.Event()

    def build(arrival: Arrival) -> tuple[OpenTrace, Json]:
        seq = seqs[arrival.chat] = seqs.get(arrival.chat, 0) + 1
        prompt = f"make the sky purple #{arrival.chat}-{arrival.user}-{seq}"
        trace = OpenTrace(arrival.chat, seq, prompt, kind=arrival.kind)
        ph.ledger.by_prompt[trace.prompt] = trace
        user = tg.user(arrival.user, first_name=f"U{arrival.user}")
        caption = trace.prompt if arrival.chat > 0 else f"/edit {trace.prompt}"
        update = tg.photo_update(arrival.chat, user, photo, caption=caption)
        for size in update["message"]["photo"]:
            trace.file_ids.append(size["file_id"])
            ph.ledger.by_file[size["file_id"]] = trace
        trace.message_id = int(update["message"]["message_id"])
        tg.track(trace)
        return trace, update

    async def send(trace: OpenTrace, update: Json) -> None:
        trace.sent = now()
        with contextlib.suppress(RuntimeError, aiohttp.ClientError, TimeoutError):
            await ph.send(update)

    async def schedule() -> None:
        pending: set[asyncio.Task[None]] = set()
        for arrival in sorted(arrivals, key=lambda a: a.at):
            delay = started + arrival.at - now()
            if delay > 0:
                await asyncio.sleep(delay)
            trace, update = build(arrival)
            traces.append(trace)
            task = asyncio.create_task(send(trace, update))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        all_sent.set()

    sender = asyncio.create_task(schedule())
    try:
        while now() < started + deadline:
            if all_sent.is_set() and all(t.delivered is not None for t in traces):
                break
            await asyncio.sleep(0.1)
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
    for trace in traces:
        if trace.delivered is not None:
            ph.kie.trim(trace)
    return traces


def waits(traces: Sequence[OpenTrace]) -> list[float]:
    """Seconds from the photo to its result, of the delivered edits."""
    return [t.delivered - t.sent for t in traces if t.delivered is not None]


def wait_stats(traces: Sequence[OpenTrace]) -> Json:
    """How long the edits waited for their result (seconds), and how many never got one."""
    values = waits(traces)
    return {
        "n": len(traces),
        "delivered": len(values),
        "p50_s": _s(pct(values, 0.5)),
        "p95_s": _s(pct(values, 0.95)),
        "max_s": _s(max(values) if values else None),
    }


def _s(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def hops(traces: Sequence[OpenTrace]) -> Json:
    """Bot-added latency per hop (fake handler time subtracted), as in `bench.closed_loop`."""
    done = [t for t in traces if t.delivered is not None and t.created is not None]
    submit = [t.created - t.sent - t.fake_submit for t in done if t.created is not None]
    deliver = [
        t.delivered - t.callback - t.fake_deliver
        for t in done
        if t.callback is not None and t.delivered is not None
    ]
    return {"update_to_submit": ms_stats(submit), "callback_to_send": ms_stats(deliver)}


def costs(traces: Sequence[OpenTrace]) -> Json:
    """Bot API calls and status-message edits per delivered edit (the calls charged to it)."""
    done = [t for t in traces if t.delivered is not None]
    if not done:
        return {"bot_api_calls_per_edit": None, "status_edits_per_edit": None, "by_method": {}}
    methods: dict[str, int] = {}
    for trace in done:
        for method, n in trace.calls.items():
            methods[method] = methods.get(method, 0) + n
    total = sum(methods.values())
    return {
        "bot_api_calls_per_edit": round(total / len(done), 2),
        "status_edits_per_edit": round(sum(t.status_edits for t in done) / len(done), 2),
        "by_method": {m: round(n / len(done), 2) for m, n in sorted(methods.items())},
    }
