"""`python -m bench.botproc`: `python -m bot` as the benchmark runs it.

One benchmark-only switch, read from the environment: ``BENCH_PROFILE``, a path prefix;
SIGUSR1 starts a profiler (pyinstrument, sampling main-thread CPU time) and an SQL
statement count, SIGUSR2 stops both and writes them under that prefix (py-spy cannot attach
to this machine's Python).

Everything else is the unmodified service: `bot.__main__.main()` with the environment's
settings.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any


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


def install_profiler(prefix: str) -> None:
    """SIGUSR1 starts profiling the main thread, SIGUSR2 stops and writes the profile.

    Writes ``<prefix>.txt``, ``.html`` and ``.pyisession`` (for `bench.profile_report`) and
    ``<prefix>-sql.json``, the SQL statements run meanwhile.
    """
    from pyinstrument import Profiler
    from pyinstrument.stack_sampler import get_stack_sampler

    state: dict[str, Any] = {}
    sql = install_sql_counter()

    def start(_signum: int, _frame: FrameType | None) -> None:
        if "profiler" in state:
            return
        state["sql_before"] = Counter(sql)
        # Samples spaced in main-thread CPU time: descheduled time (a busy machine) and idle
        # time are not sampled, so shares are shares of CPU.
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
        profiler.stop()
        Path(f"{prefix}.txt").write_text(
            profiler.output_text(unicode=True, color=False, show_all=False), encoding="utf-8"
        )
        Path(f"{prefix}.html").write_text(profiler.output_html(), encoding="utf-8")
        profiler.last_session.save(f"{prefix}.pyisession")

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


def main() -> int:
    prefix = os.environ.get("BENCH_PROFILE")
    if prefix:
        install_profiler(prefix)
    from bot.__main__ import main as bot_main

    return bot_main()


if __name__ == "__main__":
    sys.exit(main())
