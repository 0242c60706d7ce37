"""The service benchmark: `python -m bench.run [--quick] [--profile]`.

Runs the real service (`python -m bot`, through `bench.botproc`) as a separate process
against the fake Telegram Bot API and the fake KIE provider, which run in this process
(together with the load generator) and finish every task at once. Being a separate
process, the bot's CPU time and peak RSS are its own, read from /proc.

Phases (`bench.scenarios`), each with a fresh bot process and database:

1. webhook + callback mode: closed-loop users (N = 1, 10, 100), each sending a ~300 KB
   photo with a caption and waiting for the result before the next one. Edits/s, end-to-end
   latency, bot-added latency per hop (update -> createTask, callback -> sendPhoto; fake
   handler time subtracted), bot CPU ms per edit, provider calls per edit.
2. status-polling mode: provider calls per edit.
3. 10,000 edits in flight: peak RSS (VmHWM) and memory per in-flight edit (RSS growth per
   real-path edit); then callback ingestion, the bot's callback route against a bare
   aiohttp server (`bench.bare`): the ratio of the rates.
4. images: peak memory of normalizing one input photo, per kind of input (`bench.images`).

`--limits` runs instead the scenarios at Telegram's and KIE's real limits (`bench.limits`:
open-loop arrivals at and above the ceilings, a heavy user's burst, a group, status polling,
10 edits/s) and writes bench/results/limits.json; `--phases webhook,limits` mixes them.

Writes bench/results/latest.json, prints a markdown table and one summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path

from bench import RESULTS
from bench.fakes import install_cheap_rendering
from bench.images import image_phase
from bench.limits import SCENARIOS, LimitsPlan, limits_phase
from bench.limits_report import limits_markdown, limits_summary, limits_targets
from bench.measure import Json, machine, system_busy_seconds
from bench.phase import KIE_SUBMITS_PER_10S, TELEGRAM_MAX_RATE, make_photo
from bench.report import markdown, summary_line, targets
from bench.scenarios import FULL, QUICK, Plan, inflight_phase, polling_phase, webhook_phase

PHASES = ("webhook", "polling", "inflight", "images", "limits")
DEFAULT_PHASES = ("webhook", "polling", "inflight", "images")


async def run(
    plan: Plan, limits: LimitsPlan, *, phases: set[str], profile: bool, keep: bool
) -> Json:
    install_cheap_rendering()
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
        },
        "webhook_callback": {},
    }
    scenarios: dict[str, Callable[[], Awaitable[None]]] = {
        "webhook": lambda: webhook_phase(plan, photo, results, profile=profile, keep=keep),
        "polling": lambda: polling_phase(plan, photo, results, keep=keep),
        "inflight": lambda: inflight_phase(plan, photo, results, profile=profile, keep=keep),
        "images": lambda: image_phase(results),
        "limits": lambda: limits_phase(limits, photo, results, keep=keep),
    }
    phase_seconds: dict[str, float] = {}
    started = time.monotonic()
    busy0, cpu0 = system_busy_seconds(), time.process_time()
    for name in PHASES:
        if name in phases:
            began = time.monotonic()
            await scenarios[name]()
            phase_seconds[name] = round(time.monotonic() - began, 1)
    results["seconds"] = round(time.monotonic() - started, 1)
    results["phase_seconds"] = phase_seconds
    # Everything the machine did meanwhile, minus this process: the bot processes, the bare
    # server, and whatever else runs here (a busy machine slows every figure but CPU/edit).
    results["machine_busy_cores_besides_driver"] = round(
        (system_busy_seconds() - busy0 - (time.process_time() - cpu0)) / results["seconds"], 2
    )
    return results


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
        default="",
        help=f"comma-separated subset of {','.join(PHASES)} (default: {','.join(DEFAULT_PHASES)})",
    )
    parser.add_argument(
        "--limits",
        action="store_true",
        help="only the scenarios at Telegram's and KIE's limits (about 6 minutes)",
    )
    parser.add_argument(
        "--limits-scale",
        type=float,
        default=None,
        help="shorten the limits scenarios and KIE's window by this factor "
        "(default 1: real limits; 0.25 with --quick)",
    )
    parser.add_argument(
        "--users", default="", help="comma-separated N values for the webhook phase (e.g. 10)"
    )
    parser.add_argument(
        "--limits-scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.users:
        plan = replace(plan, users=tuple(int(n) for n in args.users.split(",")))
    default = ("limits",) if args.limits else DEFAULT_PHASES
    phases = {name.strip() for name in args.phases.split(",") if name.strip()} or set(default)
    if unknown := phases - set(PHASES):
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    scale = args.limits_scale if args.limits_scale is not None else (0.25 if args.quick else 1.0)
    if scale <= 0:
        parser.error("--limits-scale must be above 0")
    chosen = frozenset(n.strip() for n in args.limits_scenarios.split(",") if n.strip())
    if strange := chosen - set(SCENARIOS):
        parser.error(f"unknown limits scenarios: {', '.join(sorted(strange))}")
    output: Path = args.output or RESULTS / (
        "limits.json" if phases == {"limits"} else "latest.json"
    )
    results = asyncio.run(
        run(
            plan,
            LimitsPlan(scale=scale, scenarios=chosen),
            phases=phases,
            profile=args.profile,
            keep=args.keep,
        )
    )
    tables: list[str] = []
    lines: list[str] = []
    goals = []
    if phases - {"limits"}:
        base = targets(results)
        goals += base
        tables.append(markdown(results, base))
        lines.append(summary_line(results, base))
    if "limits" in phases:
        at_limits = limits_targets(results)
        goals += at_limits
        tables.append(limits_markdown(results, at_limits))
        lines.append(limits_summary(results, at_limits))
    results["targets"] = [goal.__dict__ for goal in goals]
    results["markdown"] = "\n\n".join(tables)
    results["summary"] = "\n".join(lines)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(results["markdown"])
    print()
    print(f"(details: {output}; {results['seconds']} s)")
    print(results["summary"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
