"""What `bench.run` prints: the targets, the markdown tables and the one summary line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.measure import Json


@dataclass
class Target:
    name: str
    goal: str
    value: str
    met: bool | None
    note: str = ""


def targets(results: Json) -> list[Target]:
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
    images = results.get("image_memory", [])
    worst = max((row["peak_mb"] for row in images if not row.get("at_once")), default=None)
    out.append(
        Target(
            "peak memory normalizing one image, any input",
            "< 300 MB",
            f"{worst} MB",
            None if worst is None else worst < 300,
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


def goal_rows(goals: list[Target]) -> list[str]:
    """The targets as a markdown table: header and one row each."""
    lines = ["| Metric | Target | Result | Met |", "|---|---|---|:-:|"]
    for goal in goals:
        met = "–" if goal.met is None else ("yes" if goal.met else "**no**")
        note = f" ({goal.note})" if goal.note else ""
        lines.append(f"| {goal.name} | {goal.goal} | {goal.value}{note} | {met} |")
    return lines


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
    lines += ["", *goal_rows(goals)]
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
    if images := results.get("image_memory"):
        lines += [
            "",
            "| input (normalized to 4096 px sides) | file | peak memory | time | outcome |",
            "|---|---:|---:|---:|---|",
        ]
        lines += [
            f"| {row['input']} | {row['file_kb']} KB | {row['peak_mb']} MB "
            f"| {row['seconds']} s | {row['outcome']} |"
            for row in images
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
