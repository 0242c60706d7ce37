"""A child process of the benchmark (a bot replica, the bare server): start, stop, figures.

Each child writes its output to `bench/results/<name>.log`; its CPU time and memory are
read from /proc, so they are its own and not the benchmark process's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from bench import RESULTS, ROOT
from bench.measure import proc_cpu_seconds, proc_memory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env() -> dict[str, str]:
    """The environment a child starts from: none of this shell's settings reach the bot."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TZ") if key in os.environ}
    env["PYTHONPATH"] = str(ROOT)
    return env


class Proc:
    """A child Python process serving HTTP on 127.0.0.1:`port`, ready once /healthz is 200."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.name = name
        self.proc = proc
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)

    def memory(self) -> tuple[int, int]:
        return proc_memory(self.pid)

    def signal(self, signum: int) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signum)

    @classmethod
    async def start(
        cls, name: str, args: Sequence[str], env: dict[str, str], cwd: Path, port: int
    ) -> Proc:
        RESULTS.mkdir(parents=True, exist_ok=True)
        log = RESULTS / f"{name}.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, *args, env=env, cwd=str(cwd), stdout=out, stderr=out
            )
        self = cls(name, proc, port, log)
        await self._wait_ready()
        return self

    async def _wait_ready(self, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"{self.name} exited: see {self.log}\n{self.tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(f"{self.url}/healthz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {within}s: see {self.log}\n{self.tail()}")

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def stop(self, grace: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(grace):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode

    def log_levels(self) -> Counter[str]:
        """How many log lines of each level the process wrote."""
        levels: Counter[str] = Counter()
        with contextlib.suppress(OSError):
            for line in self.log.read_text(errors="replace").splitlines():
                try:
                    levels[str(json.loads(line).get("level"))] += 1
                except ValueError:
                    levels["other"] += 1
        return levels
