"""`python -m bench.botproc`: `python -m bot` as the benchmark runs it.

Two benchmark-only switches, both read from the environment:

* ``BENCH_KIE_SUBMITS_PER_10S``: the KIE provider's client-side limit on createTask calls
  (KIE documents 20 per 10 s per account). The fake provider has no such limit, and at
  20 per 10 s every run would measure the limiter (2 edits/s), not the bot. The benchmark
  sets ``KIE_RATE_LIMIT`` for that; this switch only matters for a bot version without that
  setting, where it replaces the hard-coded limiter.
* ``BENCH_PROFILE``: a path prefix; SIGUSR1 starts a profiler (``BENCH_PROFILER``:
  ``pyinstrument-cpu``, the default, ``pyinstrument`` or ``cprofile``) and an SQL statement
  count, SIGUSR2 stops both and writes them under that prefix (py-spy cannot attach to
  this machine's Python).

``BENCH_UVLOOP`` (what-if experiments only) runs the service on uvloop.

Everything else is the unmodified service: `bot.__main__.main()` with the environment's
settings.
"""

from __future__ import annotations

import cProfile
import importlib
import io
import json
import os
import pstats
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any


def lift_kie_limit(per_10s: int) -> None:
    """Make `build_providers` create KIE's sliding-window limiter with `per_10s` calls."""
    import bot.app
    from bot.providers.transport import SlidingWindowLimiter

    class BenchLimiter(SlidingWindowLimiter):
        def __init__(self, max_calls: int, period: float) -> None:
            super().__init__(max(max_calls, int(per_10s * period / 10.0)), period)

    vars(bot.app)["SlidingWindowLimiter"] = BenchLimiter


def install_sql_counter() -> Counter[str]:
    """Count the SQL statements every engine of this process runs, by verb and table."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    counts: Counter[str] = Counter()

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        words = statement.split()
        verb = words[0].upper() if words else "?"
        table = ""
        for marker in ("FROM", "INTO", "UPDATE"):
            if marker in (w.upper() for w in words):
                index = [w.upper() for w in words].index(marker)
                table = words[index + 1].strip('"') if index + 1 < len(words) else ""
                break
        counts[f"{verb} {table}".strip()] += 1

    def begin(_conn: Any) -> None:
        counts["(transaction)"] += 1

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "begin", begin)
    return counts


def install_profiler(prefix: str, kind: str) -> None:
    """SIGUSR1 starts profiling the main thread, SIGUSR2 stops and writes the profile.

    ``pyinstrument`` (wall-clock samples: idle time shows as ``epoll.poll``) and
    ``pyinstrument-cpu`` (samples every millisecond of main-thread CPU time) write
    ``<prefix>.txt``, ``.html`` and ``.pyisession``; ``cprofile`` (deterministic, charged in
    main-thread CPU time) writes ``<prefix>.prof`` and a ``<prefix>.txt`` summary.
    """
    state: dict[str, Any] = {}
    sql = install_sql_counter()

    def start(_signum: int, _frame: FrameType | None) -> None:
        if "profiler" in state:
            return
        state["sql_before"] = Counter(sql)
        if kind == "cprofile":
            profiler: Any = cProfile.Profile(time.thread_time)
            profiler.enable()
        else:
            from pyinstrument import Profiler
            from pyinstrument.stack_sampler import get_stack_sampler

            if kind == "pyinstrument-cpu":
                # Samples spaced in main-thread CPU time: descheduled time (a busy machine)
                # and idle time are not sampled, so shares are shares of CPU.
                get_stack_sampler().timer_func = time.thread_time
            profiler = Profiler(interval=0.001, async_mode="disabled")
            profiler.start()
        state["profiler"] = profiler

    def stop(_signum: int, _frame: FrameType | None) -> None:
        profiler = state.pop("profiler", None)
        if profiler is None:
            return
        statements = Counter(sql) - state.pop("sql_before", Counter())
        Path(f"{prefix}-sql.json").write_text(json.dumps(dict(statements.most_common())))
        if kind == "cprofile":
            profiler.disable()
            profiler.dump_stats(f"{prefix}.prof")
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("cumulative").print_stats(60)
            stats.sort_stats("tottime").print_stats(40)
            Path(f"{prefix}.txt").write_text(out.getvalue(), encoding="utf-8")
            return
        profiler.stop()
        Path(f"{prefix}.txt").write_text(
            profiler.output_text(unicode=True, color=False, show_all=False), encoding="utf-8"
        )
        Path(f"{prefix}.html").write_text(profiler.output_html(), encoding="utf-8")
        profiler.last_session.save(f"{prefix}.pyisession")

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


def main() -> int:
    from bot.config import Settings

    per_10s = os.environ.get("BENCH_KIE_SUBMITS_PER_10S")
    if per_10s and "kie_rate_limit" not in Settings.model_fields:
        lift_kie_limit(int(per_10s))
    if os.environ.get("BENCH_UVLOOP"):
        # what-if experiment only (--uvloop, with uvloop on the bot's PYTHONPATH)
        importlib.import_module("uvloop").install()
    prefix = os.environ.get("BENCH_PROFILE")
    if prefix:
        install_profiler(prefix, os.environ.get("BENCH_PROFILER", "pyinstrument-cpu"))
    from bot.__main__ import main as bot_main

    return bot_main()


if __name__ == "__main__":
    sys.exit(main())
