"""The scale-out benchmark: `python -m bench.scaleout [--quick]`.

Sustained end-to-end edits/s, end-to-end latency (p50 / p99) and CPU per edit with N = 10
and N = 100 concurrent users, for three setups measured in the same session:

* ``sqlite-1``: one replica on SQLite with local storage (the defaults);
* ``pg-1``: one replica on PostgreSQL + S3 (``DATABASE_URL=postgresql://...``,
  ``STORAGE=s3``);
* ``pg-2``: two replicas on PostgreSQL + S3 behind the round-robin load balancer of the
  scale-out tests (`tests.fakes.balancer.RoundRobin`): it is the public URL, so webhook
  updates and provider callbacks alternate between the replicas.

The workload is bench.run's webhook + callback phase (`bench.closed_loop`): users
each send a ~300 KB photo with a caption and wait for the result before sending the next;
the fake provider finishes at once. Each setup gets fresh fakes, a fresh database and bucket.

Everything shares this machine: the bot replicas (`python -m bench.botproc`), PostgreSQL
(tests/pg.py `start_postgres()`: a real server on 127.0.0.1), moto's S3 server (started in
its own process by `bench.s3proc`) and the benchmark process, which runs the fake Telegram,
the fake provider, the load generator and, for ``pg-2``, the balancer (so the balancer's
CPU is counted in the benchmark process, not in the bots'). CPU is read from /proc at the
edges of each measured window: every replica, the PostgreSQL server (postmaster and its
backends), moto, the benchmark process, and the whole machine (/proc/stat); the machine's
busy time that none of them accounts for (kernel network work, other processes) is
reported too.

Writes bench/results/scaleout.json, prints a markdown table and one summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import RESULTS, ROOT
from bench.childproc import Proc, child_env, free_port
from bench.closed_loop import closed_loop
from bench.fakes import install_cheap_rendering
from bench.measure import MB, Json, machine, now, proc_cpu_seconds, system_busy_seconds
from bench.phase import Phase, bot_env, make_photo, phase, progress
from bench.report import fmt
from tests.fakes.balancer import RoundRobin
from tests.fakes.s3 import ACCESS_KEY, REGION, SECRET_KEY
from tests.pg import PostgresServer, start_postgres

# More unattributed machine time than this (cores) means something else ran meanwhile.
DISTURBED_CORES = 0.4


# ------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Plan:
    mode: str
    users: tuple[int, ...]
    warmup: dict[int, float]
    window: dict[int, float]
    fill: float  # share of the users with a result before a window opens
    drain_largest: bool  # the largest N waits for its last edits (else abandons them)
    grace: float  # SIGTERM grace for the bots at the end of a setup


QUICK = Plan(
    mode="quick",
    users=(10, 100),
    warmup={10: 1.0, 100: 1.0},
    window={10: 2.5, 100: 3.0},
    fill=0.5,
    drain_largest=False,
    grace=3.0,
)
FULL = Plan(
    mode="full",
    users=(10, 100),
    warmup={10: 3.0, 100: 3.0},
    window={10: 20.0, 100: 40.0},
    fill=1.0,
    drain_largest=True,
    grace=15.0,
)


@dataclass(frozen=True)
class Setup:
    key: str
    label: str
    replicas: int
    postgres: bool


SETUPS = (
    Setup("sqlite-1", "SQLite, 1 replica", 1, postgres=False),
    Setup("pg-1", "PostgreSQL + S3, 1 replica", 1, postgres=True),
    Setup("pg-2", "PostgreSQL + S3, 2 replicas + balancer", 2, postgres=True),
)


# -------------------------------------------------------------------------- shared services
def pg_cpu_seconds(server: PostgresServer) -> float:
    """CPU time of a PostgreSQL server: postmaster, its live children, its reaped children."""
    postmaster = int((server.data_dir / "postmaster.pid").read_text().split()[0])
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(entry.name) == postmaster:
            ticks += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
        elif int(fields[1]) == postmaster:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Services:
    """PostgreSQL and moto S3, started once for the PostgreSQL setups."""

    postgres: PostgresServer
    s3_url: str
    buckets: list[str]
    s3_pid: int

    def cpu(self) -> dict[str, float]:
        return {"postgresql": pg_cpu_seconds(self.postgres), "s3": proc_cpu_seconds(self.s3_pid)}

    def settings(self, bucket: str) -> dict[str, str]:
        """The bot's settings for PostgreSQL (a new database) + S3 (`bucket`)."""
        return {
            "DATABASE_URL": self.postgres.new_database(),
            "STORAGE": "s3",
            "S3_BUCKET": bucket,
            "S3_ENDPOINT_URL": self.s3_url,
            "S3_REGION": REGION,
            "S3_ACCESS_KEY_ID": ACCESS_KEY,
            "S3_SECRET_ACCESS_KEY": SECRET_KEY,
        }


@contextlib.contextmanager
def services(buckets: int) -> Iterator[Services]:
    """Start moto (its own process, booting meanwhile) and PostgreSQL; stop both after."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    info = Path(tempfile.mkdtemp(prefix="bench-s3-")) / "s3.json"
    with (RESULTS / "s3-moto.log").open("wb") as log:
        moto = subprocess.Popen(
            [sys.executable, "-m", "bench.s3proc", str(info), str(buckets)],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=log,
            cwd=ROOT,
            env=child_env(),
        )
    try:
        with contextlib.contextmanager(start_postgres)() as postgres:
            deadline = time.monotonic() + 60
            while not info.exists():
                if moto.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto did not start: see {RESULTS / 's3-moto.log'}")
                time.sleep(0.1)
            data = json.loads(info.read_text())
            yield Services(postgres, data["url"], list(data["buckets"]), moto.pid)
    finally:
        if moto.stdin is not None:
            moto.stdin.close()  # bench.s3proc stops when its stdin closes
        try:
            moto.wait(timeout=10)
        except subprocess.TimeoutExpired:
            moto.kill()
            moto.wait()
        shutil.rmtree(info.parent, ignore_errors=True)


def busy_elsewhere(seconds: float = 1.0, floor: float = 0.05) -> list[Json]:
    """Other processes using CPU right now (cores over `seconds`): they would skew the run."""

    def sample() -> dict[int, tuple[int, str]]:
        found: dict[int, tuple[int, str]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                head, _, rest = (entry / "stat").read_text().rpartition(")")
                fields = rest.split()
                found[int(entry.name)] = (int(fields[11]) + int(fields[12]), head.split("(", 1)[1])
            except (OSError, IndexError, ValueError):
                continue
        return found

    before = sample()
    time.sleep(seconds)
    after = sample()
    ticks = os.sysconf("SC_CLK_TCK")
    busy = []
    for pid, (cpu, name) in after.items():
        cores = (cpu - before.get(pid, (cpu, name))[0]) / ticks / seconds
        if cores >= floor:
            busy.append({"pid": pid, "name": name, "cores": round(cores, 2)})
    return sorted(busy, key=lambda proc: -float(proc["cores"]))


# -------------------------------------------------------------------------------- replicas
@dataclass
class Reading:
    """CPU seconds so far of everything on the machine, read at one instant."""

    at: float
    replicas: list[float]
    services: dict[str, float]
    driver: float
    machine_busy: float


class Replicas(Proc):
    """The bot replicas of one setup, seen by `closed_loop` as its one bot process.

    `cpu()` is the sum over the replicas. `closed_loop` reads it at the two edges of its
    measured window (`snapshot`), so each call also records a `Reading` of every replica,
    the shared services and the machine at that instant: the window's CPU breakdown.
    """

    def __init__(self, procs: Sequence[Proc], services: Callable[[], dict[str, float]]) -> None:
        first = procs[0]
        super().__init__(f"{len(procs)} replica(s)", first.proc, first.port, first.log)
        self.procs = list(procs)
        self.services = services
        self.readings: list[Reading] = []

    def read(self) -> Reading:
        reading = Reading(
            now(),
            [proc.cpu() for proc in self.procs],
            self.services(),
            time.process_time(),
            system_busy_seconds(),
        )
        self.readings.append(reading)
        return reading

    def cpu(self) -> float:
        return sum(self.read().replicas)

    def memory(self) -> tuple[int, int]:
        pairs = [proc.memory() for proc in self.procs]
        return sum(rss for rss, _ in pairs), sum(hwm for _, hwm in pairs)

    def signal(self, signum: int) -> None:
        for proc in self.procs:
            proc.signal(signum)

    def log_levels(self) -> Counter[str]:
        levels: Counter[str] = Counter()
        for proc in self.procs:
            levels.update(proc.log_levels())
        return levels


def no_services() -> dict[str, float]:
    return {}


@dataclass
class Running:
    """One setup, up: the `Phase` that `closed_loop` drives, and what it is made of."""

    ph: Phase
    replicas: Replicas
    balancer: RoundRobin | None = None
    settings: dict[str, str] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def start_setup(
    setup: Setup, shared: Services | None, plan: Plan, *, keep: bool, profile: bool = False
) -> AsyncIterator[Running]:
    """Fresh fakes, database, bucket and replicas (`bench.phase.phase` starts the first)."""
    settings: dict[str, str] = {}
    if setup.postgres:
        assert shared is not None
        settings = shared.settings(shared.buckets.pop(0))
    balancer: RoundRobin | None = None
    if setup.replicas > 1:
        balancer = RoundRobin(free_port(), connections=0)
        settings["PUBLIC_BASE_URL"] = balancer.url  # the bots' webhook and callback URLs
        await balancer.start()
    extra: list[Proc] = []
    try:
        name = f"scaleout-{setup.key}"
        async with phase(
            name, webhook=True, settings=settings, keep=keep, grace=plan.grace, profile=profile
        ) as first:
            ph: Phase = first
            try:
                for n in range(2, setup.replicas + 1):
                    port = free_port()
                    workdir = ph.workdir / f"replica{n}"
                    workdir.mkdir()
                    env = bot_env(ph.tg, ph.kie, workdir, port, webhook=True, settings=settings)
                    proc = await Proc.start(
                        f"bot-{name}-r{n}", ["-m", "bench.botproc"], env, workdir, port
                    )
                    extra.append(proc)
                if balancer is not None:
                    balancer.upstreams = [proc.url for proc in [ph.bot, *extra]]
                    if ph.tg.webhook_url is None or not ph.tg.webhook_url.startswith(balancer.url):
                        raise RuntimeError(f"webhook not behind the balancer: {ph.tg.webhook_url}")
                group = Replicas([ph.bot, *extra], shared.cpu if shared else no_services)
                yield Running(replace(ph, bot=group), group, balancer, settings)
            finally:
                for proc in extra:
                    await proc.stop(grace=plan.grace)
    finally:
        if balancer is not None:
            await balancer.stop()


# ------------------------------------------------------------------------------ measuring
def breakdown(a: Reading, b: Reading, edits: int, cpus: int) -> Json:
    """CPU over a window: per edit (ms) and in cores, by process."""
    seconds = b.at - a.at
    replicas = [y - x for x, y in zip(a.replicas, b.replicas, strict=True)]
    parts = {"bot": sum(replicas)}
    for name in b.services:
        parts[name] = b.services[name] - a.services[name]
    parts["benchmark_process"] = b.driver - a.driver
    busy = b.machine_busy - a.machine_busy
    parts["unattributed"] = max(0.0, busy - sum(parts.values()))

    def per_edit(value: float) -> float | None:
        return round(value * 1000 / edits, 2) if edits else None

    return {
        "seconds": round(seconds, 2),
        "cpu_ms_per_edit": {name: per_edit(value) for name, value in parts.items()},
        "cores": {name: round(value / seconds, 2) for name, value in parts.items()},
        "bot_cores_per_replica": [round(value / seconds, 2) for value in replicas],
        "machine_busy_cores": round(busy / seconds, 2),
        "machine_cpus": cpus,
    }


async def measure(
    plan: Plan, photo: bytes, setup: Setup, run: Running, cpus: int, *, profile: bool = False
) -> Json:
    rows: Json = {}
    largest = max(plan.users)
    for users in plan.users:
        mark = len(run.replicas.readings)
        hits_before = Counter(run.balancer.hits) if run.balancer is not None else Counter()
        row = await closed_loop(
            run.ph,
            photo,
            users,
            plan.warmup.get(users, 3.0),
            plan.window.get(users, 10.0),
            first_chat=users * 1000,
            drain=plan.drain_largest or users != largest,
            fill=plan.fill,
            profile=profile,
        )
        edges = run.replicas.readings[mark:]
        if len(edges) >= 2:  # closed_loop's snapshots at the window's edges
            row["cpu"] = breakdown(edges[0], edges[-1], row["edits"], cpus)
        if run.balancer is not None:
            hits = Counter(run.balancer.hits) - hits_before
            names = {proc.url: f"replica{n}" for n, proc in enumerate(run.replicas.procs, 1)}
            row["requests_per_replica"] = {
                f"{names.get(upstream, upstream)} {kind}": count
                for (upstream, kind), count in sorted(hits.items())
            }
        row["rss_mb_per_replica"] = [round(proc.memory()[0] / MB, 1) for proc in run.replicas.procs]
        rows[str(users)] = row
        cpu = row.get("cpu", {})
        progress(
            f"  {setup.key} N={users}: {row['edits_per_s']} edits/s, e2e p50/p99 "
            f"{row['end_to_end']['median_ms']} / {row['end_to_end']['p99_ms']} ms, "
            f"bot {row['bot_cpu_ms_per_edit']} CPU ms/edit, machine busy "
            f"{cpu.get('machine_busy_cores')} of {cpus} cores"
        )
    return rows


async def run(plan: Plan, setups: Sequence[Setup], *, keep: bool, profile: bool = False) -> Json:
    install_cheap_rendering()
    photo = make_photo()
    info = machine()
    cpus = int(info["cpus"] or 1)
    results: Json = {
        "mode": plan.mode,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join([Path(sys.executable).name, "-m", "bench.scaleout", *sys.argv[1:]]),
        "machine": info,
        "config": {
            "photo_bytes": len(photo),
            "users": list(plan.users),
            "warmup_s": {str(k): v for k, v in plan.warmup.items()},
            "window_s": {str(k): v for k, v in plan.window.items()},
            "workload": "bench.closed_loop: webhook + callback mode, each user waits for "
            "its result before sending the next photo; fake KIE finishes at once",
            "layout": "bot replicas = python -m bench.botproc processes; PostgreSQL = its own "
            "processes (tests/pg.py); moto S3 = its own process (bench.s3proc); benchmark "
            "process = fake Telegram + fake KIE + load generator + (pg-2) the round-robin "
            "balancer, so the balancer's CPU is in benchmark_process",
            "sqlite_storage": "local (PUBLIC_BASE_URL set, STORAGE unset: the default)",
        },
        "setups": {},
    }
    elsewhere = busy_elsewhere()
    results["busy_elsewhere_at_start"] = elsewhere
    if elsewhere:
        progress(
            "WARNING: other processes are using CPU, the figures will be disturbed: "
            + ", ".join(f"{p['name']} ({p['pid']}) {p['cores']} cores" for p in elsewhere)
        )
    started = time.monotonic()
    needs_pg = [setup for setup in setups if setup.postgres]
    with contextlib.ExitStack() as stack:
        shared: Services | None = None
        if needs_pg:
            progress("starting PostgreSQL and moto S3")
            shared = stack.enter_context(services(len(needs_pg)))
            progress(f"  PostgreSQL on port {shared.postgres.port}, S3 at {shared.s3_url}")
        for setup in setups:
            progress(f"setup {setup.key}: {setup.label}")
            began = time.monotonic()
            # Only a lone replica is profiled (SIGUSR1 would stop one without a profiler).
            profiled = profile and setup.replicas == 1
            async with start_setup(setup, shared, plan, keep=keep, profile=profiled) as running:
                rows = await measure(plan, photo, setup, running, cpus, profile=profiled)
                levels = running.replicas.log_levels()
            results["setups"][setup.key] = {
                "label": setup.label,
                "replicas": setup.replicas,
                "settings": {
                    key: value
                    for key, value in running.settings.items()
                    if "SECRET" not in key and "ACCESS_KEY" not in key
                },
                "users": rows,
                "log_levels": dict(levels),
                "seconds": round(time.monotonic() - began, 1),
            }
    results["seconds"] = round(time.monotonic() - started, 1)
    return results


# --------------------------------------------------------------------------------- report
def _row(results: Json, key: str, users: int) -> Json:
    row: Json = results["setups"].get(key, {}).get("users", {}).get(str(users), {})
    return row


def _ms(row: Json, name: str) -> Any:
    return row.get("cpu", {}).get("cpu_ms_per_edit", {}).get(name)


def balancer_estimate(results: Json, users: int) -> float | None:
    """Benchmark-process CPU ms per edit with the balancer minus without (pg-2 - pg-1)."""
    two, one = (
        _ms(_row(results, "pg-2", users), "benchmark_process"),
        _ms(_row(results, "pg-1", users), "benchmark_process"),
    )
    if two is None or one is None:
        return None
    return round(float(two) - float(one), 2)


def markdown(results: Json) -> str:
    m = results["machine"]
    lines = [
        f"Scale-out benchmark ({results['mode']} mode, {results['date']}): {m['cpus']} cores "
        f"({m['cpu_model']}), Python {m['python']}, commit {m['commit']}. Everything on this "
        "one machine: the bot replica(s), PostgreSQL, moto S3 and the benchmark process "
        "(fake Telegram + fake KIE + load generator + the balancer of the 2-replica setup).",
        "",
        "| setup | N | edits/s | end-to-end p50 / p99 | bot CPU ms/edit (Σ replicas) "
        "| bot cores per replica | PostgreSQL ms/edit | S3 (moto) ms/edit "
        "| benchmark process ms/edit | machine busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, entry in results["setups"].items():
        for users, row in entry["users"].items():
            e2e = row["end_to_end"]
            cpu = row.get("cpu", {})
            per = cpu.get("cpu_ms_per_edit", {})
            cores = " + ".join(str(c) for c in cpu.get("bot_cores_per_replica", [])) or "n/a"
            lines.append(
                f"| {entry['label']} | {users} | {fmt(row['edits_per_s'])} "
                f"| {fmt(e2e['median_ms'])} / {fmt(e2e['p99_ms'])} ms "
                f"| {fmt(per.get('bot'))} | {cores} "
                f"| {fmt(per.get('postgresql')) if key != 'sqlite-1' else '–'} "
                f"| {fmt(per.get('s3')) if key != 'sqlite-1' else '–'} "
                f"| {fmt(per.get('benchmark_process'))} "
                f"| {fmt(cpu.get('machine_busy_cores'))} of {cpu.get('machine_cpus', '?')} |"
            )
    lines += ["", *notes(results)]
    return "\n".join(lines)


def notes(results: Json) -> list[str]:
    """What the figures mean on this machine, from the figures themselves."""
    out: list[str] = []
    cpus = results["machine"]["cpus"] or 1
    largest = max((int(n) for e in results["setups"].values() for n in e["users"]), default=0)
    one, two = _row(results, "pg-1", largest), _row(results, "pg-2", largest)
    lb = balancer_estimate(results, largest)
    if lb is not None:
        size = (
            f"about {lb} ms per edit" if lb > 0 else f"no measurable difference, {lb} ms per edit"
        )
        out.append(
            "- The balancer runs in the benchmark process: its CPU (forwarding the webhook "
            "update and the provider callback of each edit) is in the 'benchmark process' "
            f"column, not the bots' (pg-2 minus pg-1 at N={largest}: {size})."
        )
    if one and two and one.get("edits_per_s") and two.get("edits_per_s"):
        busy = two.get("cpu", {}).get("machine_busy_cores")
        bot1 = one.get("cpu", {}).get("cores", {}).get("bot")
        bot2 = two.get("cpu", {}).get("bot_cores_per_replica", [])
        ratio = two["edits_per_s"] / one["edits_per_s"]
        text = (
            f"- 2 replicas vs 1 at N={largest}: {ratio:.2f}x the edits/s. The one replica "
            f"used {fmt(bot1)} cores (one Python process tops out near 1); the two used "
            f"{' + '.join(str(c) for c in bot2)}."
        )
        if isinstance(busy, int | float) and busy >= 0.85 * cpus:
            text += (
                f" The machine was busy {busy} of {cpus} cores: the {cpus} cores are shared by "
                "both replicas, PostgreSQL, moto, the fakes, the load generator and the "
                "balancer, so this figure is what one saturated machine gives, not what a "
                "second replica on its own machine would add. On separate machines the "
                "replicas' share (bot cores) is what scales; PostgreSQL and S3 are then "
                "the shared parts."
            )
        else:
            text += f" The machine was busy {fmt(busy)} of {cpus} cores."
        out.append(text)
    unattributed = [
        row.get("cpu", {}).get("cores", {}).get("unattributed")
        for entry in results["setups"].values()
        for row in entry["users"].values()
    ]
    found = [u for u in unattributed if isinstance(u, int | float)]
    if found:
        out.append(
            f"- Busy time none of these processes accounts for (kernel loopback networking, "
            f"anything else running): {min(found)}–{max(found)} cores."
        )
    if max(found, default=0.0) > DISTURBED_CORES or results.get("busy_elsewhere_at_start"):
        out.append(
            "- **Disturbed run**: other work used this machine's CPU during the run "
            f"(unattributed above {DISTURBED_CORES} cores, or busy processes at the start): "
            "rerun on an idle machine before quoting these figures."
        )
    return out


def summary_line(results: Json) -> str:
    largest = max((int(n) for e in results["setups"].values() for n in e["users"]), default=0)
    parts = []
    for key, entry in results["setups"].items():
        row = entry["users"].get(str(largest), {})
        parts.append(
            f"{key} {fmt(row.get('edits_per_s'))} edits/s "
            f"p50/p99 {fmt(row.get('end_to_end', {}).get('median_ms'))}/"
            f"{fmt(row.get('end_to_end', {}).get('p99_ms'))} ms "
            f"{fmt(row.get('bot_cpu_ms_per_edit'))} bot CPU ms/edit"
        )
    busy = _row(results, "pg-2", largest).get("cpu", {}).get("machine_busy_cores")
    cpus = results["machine"]["cpus"]
    return (
        f"scaleout[{results['mode']}] N={largest}: "
        + " | ".join(parts)
        + (f" | machine busy {busy}/{cpus} cores during pg-2" if busy is not None else "")
    )


# ----------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 90 s)")
    parser.add_argument("--keep", action="store_true", help="keep the temp directories")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile one-replica setups over each window (bench/results/profile-scaleout-*)",
    )
    parser.add_argument(
        "--setups",
        default=",".join(setup.key for setup in SETUPS),
        help="comma-separated subset of " + ",".join(setup.key for setup in SETUPS),
    )
    parser.add_argument("--users", default="", help="comma-separated N values (e.g. 10)")
    parser.add_argument("--output", type=Path, default=RESULTS / "scaleout.json")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.users:
        plan = replace(plan, users=tuple(int(n) for n in args.users.split(",")))
    wanted = {key.strip() for key in args.setups.split(",") if key.strip()}
    unknown = wanted - {setup.key for setup in SETUPS}
    if unknown:
        parser.error(f"unknown setups: {', '.join(sorted(unknown))}")
    setups = [setup for setup in SETUPS if setup.key in wanted]
    results = asyncio.run(run(plan, setups, keep=args.keep, profile=args.profile))
    table = markdown(results)
    results["markdown"] = table
    line = summary_line(results)
    results["summary"] = line
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(table)
    print()
    print(f"(details: {args.output}; {results['seconds']} s)")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
