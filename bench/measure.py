"""Measurement utilities: the clock, CPU and memory from /proc, percentiles, the machine."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import ROOT

Json = dict[str, Any]
MB = 1024 * 1024


def now() -> float:
    """The benchmark's clock (monotonic, shared by every process of this machine)."""
    return time.monotonic()


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


@dataclass
class Snapshot:
    """CPU seconds so far of the bot, this process and the machine, read at one instant."""

    at: float
    bot_cpu: float
    driver_cpu: float
    system_busy: float


def snapshot(bot_cpu: Callable[[], float]) -> Snapshot:
    return Snapshot(now(), bot_cpu(), time.process_time(), system_busy_seconds())


def other_cores(a: Snapshot, b: Snapshot) -> float | None:
    """Cores used by processes outside the benchmark between two snapshots."""
    seconds = b.at - a.at
    if seconds <= 0:
        return None
    ours = (b.bot_cpu - a.bot_cpu) + (b.driver_cpu - a.driver_cpu)
    return round(max(0.0, (b.system_busy - a.system_busy) - ours) / seconds, 2)


def machine() -> Json:
    """What the figures were measured on: CPU, Python, kernel, package versions, commit."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions: Json = {}
    for name in ("aiohttp", "python-telegram-bot", "SQLAlchemy", "aiosqlite", "pillow"):
        with contextlib.suppress(Exception):
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
