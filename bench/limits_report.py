"""What `bench.run --limits` prints: the goals at Telegram's and KIE's limits, and one line."""

from __future__ import annotations

from bench.limits import total_429
from bench.measure import Json
from bench.report import Target, fmt, goal_rows

P99_GOAL_MS = 50.0
FRACTION_GOAL = 0.95
DETECTION_GOAL_S = 1.0
STATUS_CALLS_GOAL = 4.0


def _ceiling(name: str, row: Json) -> Target:
    fraction = row.get("fraction_of_ceiling")
    return Target(
        name,
        ">= 95% of the ceiling",
        f"{fmt(row.get('edits_per_s'))} of {fmt(row.get('ceiling_per_s'))} edits/s"
        + ("" if fraction is None else f" = {fraction:.0%}"),
        None if fraction is None else fraction >= FRACTION_GOAL,
        f"arrivals {fmt(row.get('arrivals_per_s'))}/s",
    )


def limits_targets(results: Json) -> list[Target]:
    limits: Json = results.get("limits") or {}
    if not limits:
        return []
    out: list[Target] = []
    for key, row in limits.get("kie_bound", {}).items():
        out.append(_ceiling(f"edits/s, KIE-bound, arrivals {key} the ceiling", row))
    for key, row in limits.get("telegram_bound", {}).items():
        out.append(_ceiling(f"edits/s, Telegram-bound, arrivals {key} the ceiling", row))
    telegram, kie = total_429(limits)
    out.append(
        Target(
            "429s the bot provoked (all scenarios)",
            "0",
            f"Telegram {telegram}, KIE {kie}",
            telegram + kie == 0,
        )
    )
    fair = limits.get("fairness", {})
    base = fair.get("light_unloaded", {}).get("p95_s")
    loaded = fair.get("light_during_burst", {}).get("p95_s")
    window = fair.get("rate_limit_window_s")
    met = None if None in (base, loaded, window) else loaded <= base + window
    out.append(
        Target(
            "light users' p95 wait during a heavy burst",
            "<= unloaded + one limiter window",
            f"{fmt(loaded)} s vs {fmt(base)} s + {fmt(window)} s",
            met,
            str(fair.get("heavy", "")),
        )
    )
    lat = limits.get("open_loop_10", {})
    p1 = lat.get("update_to_submit", {}).get("p99_ms")
    p2 = lat.get("callback_to_send", {}).get("p99_ms")
    out.append(
        Target(
            "p99 per hop, open loop at 10 edits/s",
            "< 50 ms",
            f"{fmt(p1)} / {fmt(p2)} ms",
            None if p1 is None or p2 is None else max(p1, p2) < P99_GOAL_MS,
            f"limits lifted, {fmt(lat.get('bot_cpu_ms_per_edit'))} CPU ms/edit, other "
            f"processes used {fmt(lat.get('other_processes_cores'))} cores",
        )
    )
    poll = limits.get("polling", {})
    detect = poll.get("detection_p50_s")
    out.append(
        Target(
            "polling: result seen after the task finished",
            "<= 1 s",
            f"p50 {fmt(detect)} s, p95 {fmt(poll.get('detection_p95_s'))} s",
            None if detect is None else poll.get("detection_p95_s", detect) <= DETECTION_GOAL_S,
            f"{fmt(poll.get('task_s'))} s tasks",
        )
    )
    calls = poll.get("status_calls_per_edit")
    out.append(
        Target(
            "polling: status calls per edit",
            "<= 4",
            f"{fmt(calls)} (max {fmt(poll.get('status_calls_max'))})",
            None if calls is None else poll.get("status_calls_max", calls) <= STATUS_CALLS_GOAL,
            f"{fmt(poll.get('task_s'))} s tasks",
        )
    )
    return out


def limits_markdown(results: Json, goals: list[Target]) -> str:
    limits: Json = results.get("limits") or {}
    if not limits:
        return ""
    kie = limits.get("kie_bound", {}).get("1.0x", {})
    poll = limits.get("polling", {})
    group = limits.get("group", {})
    fair = limits.get("fairness", {})
    scaled = (limits.get("scale") or 1.0) < 1.0
    lines = [
        f"At the limits (scale {limits.get('scale')}; Telegram {limits['telegram_limits']}, "
        f"KIE {limits['kie_limit'][0]} per {limits['kie_limit'][1]:g} s; "
        f"bot: {limits['bot_settings']}):",
        "",
        *goal_rows(goals),
    ]
    lines += [
        f"| Bot API calls per edit, 429'd attempts included (KIE-bound, webhook) | – | "
        f"{fmt(kie.get('bot_api_calls_per_edit'))} ({_methods(kie)}) | – |",
        f"| status-message edits per edit (KIE-bound / polling) | – | "
        f"{fmt(kie.get('status_edits_per_edit'))} / {fmt(poll.get('status_edits_per_edit'))} "
        "| – |",
        f"| heavy users' wait p50 / max | – | {fmt(fair.get('heavy_waits', {}).get('p50_s'))} / "
        f"{fmt(fair.get('heavy_waits', {}).get('max_s'))} s | – |",
        f"| group burst ({fmt(group.get('group_photos'))} photos): delivered, "
        f"p50 / max wait, messages in a minute | – | "
        f"{fmt(group.get('group_waits', {}).get('delivered'))}, "
        f"{fmt(group.get('group_waits', {}).get('p50_s'))} / "
        f"{fmt(group.get('group_waits', {}).get('max_s'))} s, "
        f"{fmt(group.get('group_messages_max_per_min'))} (429s: "
        f"{group.get('telegram_429_by_limit', {})})"
        + (" (scaled down: the group limit is not, so few arrive in time)" if scaled else "")
        + " | – |",
        f"| light users' p95 wait during the group burst | – | "
        f"{fmt(group.get('light_waits', {}).get('p95_s'))} s "
        f"({fmt(group.get('light_waits', {}).get('delivered'))} of "
        f"{fmt(group.get('light_waits', {}).get('n'))} delivered) | – |",
    ]
    return "\n".join(lines)


def _methods(row: Json) -> str:
    return ", ".join(f"{m} {n}" for m, n in row.get("by_method", {}).items())


def limits_summary(results: Json, goals: list[Target]) -> str:
    limits: Json = results.get("limits") or {}
    if not limits:
        return ""
    kie = limits.get("kie_bound", {}).get("1.5x", {})
    tg = limits.get("telegram_bound", {}).get("1.5x", {})
    telegram, kie429 = total_429(limits)
    met = sum(1 for g in goals if g.met)
    return (
        f"limits: {fmt(kie.get('fraction_of_ceiling'))} of KIE's and "
        f"{fmt(tg.get('fraction_of_ceiling'))} of Telegram's ceiling at 1.5x | 429s "
        f"Telegram {telegram}, KIE {kie429} | targets met {met}/{len(goals)}"
    )
