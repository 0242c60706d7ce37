"""The limits scenarios of `bench.run --limits`: the bot at Telegram's and KIE's real limits.

Each scenario is a fresh bot process (production rate settings: `TELEGRAM_MAX_RATE=30`,
`KIE_RATE_LIMIT=20/10`) against `bench.limited`'s fakes, which answer 429 past Telegram's
flood limits and KIE's 20 createTask per 10 s, with photos arriving open loop
(`bench.open_loop`): on a schedule, whatever the bot answers.

1. KIE-bound: new users' photos at 1.0x and 1.5x of KIE's ceiling (2 edits/s), 10 s tasks.
2. Telegram-bound: KIE's limit lifted (as with several accounts), photos at 1.0x and 1.5x
   of Telegram's ceiling: 30 messages/s / 2 messages per edit (status + result) = 15 edits/s.
3. Fairness: light users at a quarter of KIE's ceiling, then two heavy users send 20 photos
   each at once (per-user limits off, as for an operator): the light users' wait before and
   during the burst.
4. Group: one member of a group sends 12 photos at once (24 messages against 20 per
   minute) while light users keep arriving in private chats.
5. Status polling (no public URL, POLL_* at their defaults), 10 s tasks: how long after the
   provider finished the bot saw it, status calls per edit.
6. Open loop at 10 edits/s with every limit lifted: bot-added latency per hop.

`--limits-scenarios` picks some of them (kie, telegram, fairness, group, polling, latency);
`scale` (`--limits-scale`) shortens every duration and KIE's window alike (20 per 10*scale s,
tasks of 10*scale s); Telegram's limits stay real, as the bot's own limiter has them fixed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from bench.fakes import BenchKie, BenchTelegram, Ledger
from bench.limited import LimitedKie, LimitedTelegram, OpenTrace, TelegramLimits
from bench.measure import Json, now, other_cores, pct, snapshot
from bench.open_loop import Arrival, burst, costs, hops, open_loop, steady, wait_stats
from bench.phase import Phase, phase, progress

REAL = TelegramLimits()
MESSAGES_PER_EDIT = 2  # the fewest an edit needs: the status message and the result
PRODUCTION = {
    "TELEGRAM_MAX_RATE": "30",
    "TELEGRAM_CHAT_RATE": "1/1",
    "TELEGRAM_GROUP_RATE": "20/60",
}
SCENARIOS = ("kie", "telegram", "fairness", "group", "polling", "latency")


@dataclass(frozen=True)
class LimitsPlan:
    scale: float = 1.0
    window: float = 25.0  # KIE-bound measurement window (s, before scaling)
    tg_window: float = 15.0  # Telegram-bound window
    heavy_users: int = 2
    heavy_photos: int = 20
    group_photos: int = 12
    scenarios: frozenset[str] = frozenset(SCENARIOS)

    def s(self, seconds: float) -> float:
        return seconds * self.scale

    @property
    def kie_window(self) -> float:
        return self.s(10.0)

    @property
    def kie_ceiling(self) -> float:
        return 20 / self.kie_window

    @property
    def tg_ceiling(self) -> float:
        return REAL.per_bot[0] / REAL.per_bot[1] / MESSAGES_PER_EDIT

    def settings(self, *, kie_limited: bool = True) -> dict[str, str]:
        out = dict(PRODUCTION)
        if kie_limited:
            out["KIE_RATE_LIMIT"] = f"20/{self.kie_window:g}"
        return out


def fakes(
    limits: TelegramLimits | None, kie_limit: tuple[int, float] | None, task_delay: float
) -> tuple[Callable[[str, Ledger], BenchTelegram], Callable[[str, Ledger], BenchKie]]:
    def make_tg(token: str, ledger: Ledger) -> BenchTelegram:
        return LimitedTelegram(token, ledger, limits)

    def make_kie(key: str, ledger: Ledger) -> BenchKie:
        return LimitedKie(key, ledger, rate_limit=kie_limit, task_delay=task_delay)

    return make_tg, make_kie


def limited_phase(
    name: str,
    makers: tuple[Callable[[str, Ledger], BenchTelegram], Callable[[str, Ledger], BenchKie]],
    *,
    keep: bool,
    webhook: bool = True,
    settings: Mapping[str, str] | None = None,
) -> AbstractAsyncContextManager[Phase]:
    """A scenario's phase: a fresh bot against the fakes `makers` builds (see `fakes`)."""
    make_tg, make_kie = makers
    return phase(
        name,
        webhook=webhook,
        settings=settings,
        keep=keep,
        grace=5.0,
        make_tg=make_tg,
        make_kie=make_kie,
    )


class Refusals:
    """The 429s the fakes answered during one scenario."""

    def __init__(self, ph: Phase) -> None:
        assert isinstance(ph.tg, LimitedTelegram) and isinstance(ph.kie, LimitedKie)
        self.tg, self.kie = ph.tg, ph.kie
        self.tg0, self.kie0 = Counter(ph.tg.refusals), ph.kie.refused

    def result(self) -> Json:
        telegram = Counter(self.tg.refusals) - self.tg0
        return {
            "telegram_429": sum(telegram.values()),
            "telegram_429_by_limit": dict(telegram),
            "kie_429": self.kie.refused - self.kie0,
        }


def delivered_between(traces: Sequence[OpenTrace], a: float, b: float) -> int:
    return sum(1 for t in traces if t.delivered is not None and a <= t.delivered < b)


async def ceiling_run(
    plan: LimitsPlan,
    name: str,
    factor: float,
    ceiling: float,
    task_delay: float,
    window: float,
    *,
    kie_limited: bool,
    photo: bytes,
    keep: bool,
) -> Json:
    """Photos at `factor` x `ceiling` edits/s; edits/s delivered over `window` once warm."""
    kie_limit = (20, plan.kie_window) if kie_limited else None
    makers = fakes(REAL, kie_limit, task_delay)
    settings = plan.settings(kie_limited=kie_limited)
    async with limited_phase(name, makers, keep=keep, settings=settings) as ph:
        warm = task_delay + plan.s(2.0) + 1.0
        rate = factor * ceiling
        arrivals = steady(rate, 0.0, warm + window, first_user=10_000)
        refusals = Refusals(ph)
        began = now()
        traces = await open_loop(ph, photo, arrivals, deadline=warm + window + 0.5)
        done = delivered_between(traces, began + warm, began + warm + window)
        achieved = done / window
        row: Json = {
            "arrivals_per_s": round(rate, 2),
            "ceiling_per_s": round(ceiling, 2),
            "window_s": round(window, 1),
            "edits_per_s": round(achieved, 2),
            "fraction_of_ceiling": round(achieved / ceiling, 3),
            "task_s": task_delay,
            "waits": wait_stats(traces),
            **refusals.result(),
            **costs(traces),
        }
    progress(
        f"  {name}: {row['edits_per_s']} of {row['ceiling_per_s']} edits/s "
        f"({row['fraction_of_ceiling']:.0%}), 429s telegram {row['telegram_429']} "
        f"kie {row['kie_429']}"
    )
    return row


async def fairness_run(plan: LimitsPlan, photo: bytes, *, keep: bool) -> Json:
    """Light users' waits before and during two heavy users' bursts."""
    task_delay = plan.kie_window
    makers = fakes(REAL, (20, plan.kie_window), task_delay)
    light_rate = plan.kie_ceiling / 4
    burst_at = plan.s(25.0)
    heavy = plan.heavy_users * plan.heavy_photos
    busy = heavy / plan.kie_ceiling  # how long the heavy photos alone fill KIE's limit
    arrivals: list[Arrival] = steady(light_rate, 0.0, burst_at + busy, first_user=20_000)
    for n in range(plan.heavy_users):
        arrivals += burst(burst_at, 900 + n, plan.heavy_photos)
    async with limited_phase("limits-fairness", makers, keep=keep, settings=plan.settings()) as ph:
        refusals = Refusals(ph)
        began = now()
        deadline = burst_at + busy * 2 + task_delay + plan.s(20.0)
        traces = await open_loop(ph, photo, arrivals, deadline=deadline)
        light = [t for t in traces if t.kind == "light"]
        before = [t for t in light if t.sent < began + burst_at]
        during = [t for t in light if began + burst_at <= t.sent < began + burst_at + busy]
        row: Json = {
            "light_per_s": round(light_rate, 2),
            "heavy": f"{plan.heavy_users} users x {plan.heavy_photos} photos at once",
            "burst_busy_s": round(busy, 1),
            "rate_limit_window_s": plan.kie_window,
            "light_unloaded": wait_stats(before),
            "light_during_burst": wait_stats(during),
            "heavy_waits": wait_stats([t for t in traces if t.kind == "heavy"]),
            **refusals.result(),
            **costs(traces),
        }
    base, loaded = row["light_unloaded"]["p95_s"], row["light_during_burst"]["p95_s"]
    progress(f"  fairness: light p95 {base} s unloaded, {loaded} s during the burst")
    return row


async def group_run(plan: LimitsPlan, photo: bytes, *, keep: bool) -> Json:
    """A group member's burst against 20 messages per minute, light users alongside."""
    task_delay = plan.kie_window
    makers = fakes(REAL, (20, plan.kie_window), task_delay)
    group = -100_777
    light_rate = plan.kie_ceiling / 4
    span = plan.s(60.0)
    arrivals = steady(light_rate, 0.0, span, first_user=30_000)
    arrivals += burst(plan.s(5.0), 31_000, plan.group_photos, chat=group)
    async with limited_phase("limits-group", makers, keep=keep, settings=plan.settings()) as ph:
        tg = ph.tg
        assert isinstance(tg, LimitedTelegram)
        tg.register_chat(group, chat_type="supergroup", title="Bench group")
        refusals = Refusals(ph)
        began = now()
        traces = await open_loop(ph, photo, arrivals, deadline=span + task_delay + plan.s(15.0))
        in_group = [at for at, chat, _ in tg.accepted if chat == group and at >= began]
        per_minute = max(
            (sum(1 for b in in_group if a <= b < a + 60.0) for a in in_group), default=0
        )
        row: Json = {
            "group_photos": plan.group_photos,
            "group_ceiling_edits_per_min": REAL.per_group[0] / MESSAGES_PER_EDIT,
            "group_messages_max_per_min": per_minute,
            "group_waits": wait_stats([t for t in traces if t.kind == "group"]),
            "light_waits": wait_stats([t for t in traces if t.kind == "light"]),
            **refusals.result(),
        }
    progress(
        f"  group: {row['group_waits']['delivered']}/{plan.group_photos} delivered, "
        f"light p95 {row['light_waits']['p95_s']} s, 429s telegram {row['telegram_429']}"
    )
    return row


async def polling_run(plan: LimitsPlan, photo: bytes, *, keep: bool) -> Json:
    """Status polling with the default POLL_* settings and 10 s tasks."""
    task_delay = plan.s(10.0)
    makers = fakes(REAL, (20, plan.kie_window), task_delay)
    span = plan.s(20.0)
    arrivals = steady(plan.kie_ceiling / 4, 0.0, span, first_user=40_000)
    settings = {**plan.settings(), "TELEGRAM_POLL_TIMEOUT": "5"}
    async with limited_phase(
        "limits-polling", makers, keep=keep, webhook=False, settings=settings
    ) as ph:
        kie = ph.kie
        assert isinstance(kie, LimitedKie)
        refusals = Refusals(ph)
        traces = await open_loop(ph, photo, arrivals, deadline=span + task_delay + 45.0)
        tasks = [t.task_id for t in traces if t.delivered is not None and t.task_id]
        detection = [kie.detection_ms[t] / 1000 for t in tasks if t in kie.detection_ms]
        queries = [kie.status_queries[t] for t in tasks]
        row: Json = {
            "task_s": task_delay,
            "edits": len(tasks),
            "detection_p50_s": _round(pct(detection, 0.5)),
            "detection_p95_s": _round(pct(detection, 0.95)),
            "detection_max_s": _round(max(detection) if detection else None),
            "status_calls_per_edit": round(sum(queries) / len(queries), 2) if queries else None,
            "status_calls_max": max(queries, default=None),
            "waits": wait_stats(traces),
            **refusals.result(),
            **costs(traces),
        }
    progress(
        f"  polling: seen {row['detection_p50_s']} s (p50) after the task finished, "
        f"{row['status_calls_per_edit']} status calls/edit"
    )
    return row


async def latency_run(plan: LimitsPlan, photo: bytes, *, keep: bool) -> Json:
    """Open loop at 10 edits/s, every limit lifted: bot-added latency per hop."""
    makers = fakes(None, None, 0.0)
    span = max(plan.s(20.0), 5.0)
    warm = 2.0
    arrivals = steady(10.0, 0.0, span, first_user=50_000)
    async with limited_phase("limits-latency", makers, keep=keep) as ph:
        began = now()
        a = snapshot(ph.bot.cpu)
        traces = await open_loop(ph, photo, arrivals, deadline=span + 15.0)
        b = snapshot(ph.bot.cpu)
        measured = [t for t in traces if t.sent >= began + warm]
        done = sum(1 for t in traces if t.delivered is not None)
        row: Json = {
            "arrivals_per_s": 10.0,
            "edits": len(measured),
            "bot_cpu_ms_per_edit": round((b.bot_cpu - a.bot_cpu) * 1000 / done, 2)
            if done
            else None,
            "other_processes_cores": other_cores(a, b),
            "waits": wait_stats(measured),
            **hops(measured),
            **costs(measured),
        }
    progress(
        f"  10 edits/s open loop: p99 hops {row['update_to_submit']['p99_ms']} / "
        f"{row['callback_to_send']['p99_ms']} ms"
    )
    return row


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


async def limits_phase(plan: LimitsPlan, photo: bytes, results: Json, *, keep: bool) -> None:
    """Every limits scenario, in one run; figures under results["limits"]."""
    progress(f"limits scenarios (scale {plan.scale:g})")
    out: Json = {
        "scale": plan.scale,
        "telegram_limits": {
            "per_bot": list(REAL.per_bot),
            "per_chat": list(REAL.per_chat),
            "per_group": list(REAL.per_group),
        },
        "kie_limit": [20, plan.kie_window],
        "bot_settings": plan.settings(),
        "kie_bound": {},
        "telegram_bound": {},
    }
    results["limits"] = out
    chosen = plan.scenarios
    for factor in (1.0, 1.5) if "kie" in chosen else ():
        out["kie_bound"][f"{factor}x"] = await ceiling_run(
            plan,
            f"limits-kie-{factor}x",
            factor,
            plan.kie_ceiling,
            plan.kie_window,
            plan.s(plan.window),
            kie_limited=True,
            photo=photo,
            keep=keep,
        )
    for factor in (1.0, 1.5) if "telegram" in chosen else ():
        out["telegram_bound"][f"{factor}x"] = await ceiling_run(
            plan,
            f"limits-telegram-{factor}x",
            factor,
            plan.tg_ceiling,
            max(2.0, plan.s(2.0)),
            max(plan.s(plan.tg_window), 5.0),
            kie_limited=False,
            photo=photo,
            keep=keep,
        )
    if "fairness" in chosen:
        out["fairness"] = await fairness_run(plan, photo, keep=keep)
    if "group" in chosen:
        out["group"] = await group_run(plan, photo, keep=keep)
    if "polling" in chosen:
        out["polling"] = await polling_run(plan, photo, keep=keep)
    if "latency" in chosen:
        out["open_loop_10"] = await latency_run(plan, photo, keep=keep)


def total_429(limits: Mapping[str, Json]) -> tuple[int, int]:
    """(Telegram, KIE) 429s over every scenario of a limits run."""
    rows: list[Json] = [
        *limits.get("kie_bound", {}).values(),
        *limits.get("telegram_bound", {}).values(),
        *(limits[k] for k in ("fairness", "group", "polling") if k in limits),
    ]
    return (
        sum(int(r.get("telegram_429", 0)) for r in rows),
        sum(int(r.get("kie_429", 0)) for r in rows),
    )
