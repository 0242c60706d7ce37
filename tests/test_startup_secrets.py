"""The bot token never reaches stdout or stderr, even when startup fails on it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import TOKEN, free_port
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.reliability import service_env


async def spawn_bot(env: dict[str, str], workdir: Path) -> asyncio.subprocess.Process:
    """`python -m bot` with only `env` (and PATH, PYTHONPATH, HOME); output on stdout."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=workdir,  # no stray .env is read
        env={
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            "HOME": str(workdir),
            **env,
        },
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def run_bot(env: dict[str, str], workdir: Path) -> tuple[int, str]:
    """`python -m bot` until it exits by itself; its exit code and its stdout + stderr."""
    process = await spawn_bot(env, workdir)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


@pytest.mark.parametrize(
    ("status", "description", "path"),
    [
        (401, "Unauthorized", ""),  # a revoked token
        (404, "Not Found", ""),
        (None, None, "/typo"),  # a mistyped self-hosted Bot API URL: its own 404
    ],
)
async def test_a_refused_get_me_at_startup_exits_with_a_clear_message_and_no_token(
    tg: FakeTelegram,
    kie: FakeKie,
    tmp_path: Path,
    status: int | None,
    description: str | None,
    path: str,
) -> None:
    if status is not None and description is not None:
        tg.fail("getMe", status, description)
    env = service_env(tg, kie, tmp_path / "data", free_port())
    env["TELEGRAM_API_URL"] = tg.url + path
    code, output = await run_bot(env, tmp_path)

    assert code == 2, output
    for secret in (TOKEN, TOKEN.split(":")[1]):
        assert secret not in output, f"the token leaked at startup:\n{output}"
    assert "photo-edit-bot: " in output, output
    assert "BOT_TOKEN" in output or "TELEGRAM_API_URL" in output, output
