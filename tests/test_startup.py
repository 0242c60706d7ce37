"""Start-up failures end in one paragraph naming the setting, no traceback, no warnings;
Telegram or the database not answering is retried for STARTUP_RETRY_TIMEOUT seconds."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import TOKEN, free_port
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.reliability import service_env
from tests.test_startup_secrets import run_bot, spawn_bot

ROOT = Path(__file__).resolve().parents[1]


def assert_clean(output: str) -> None:
    """What an operator reads: no call stack, no resource warnings, no secret."""
    assert "Traceback" not in output, output
    assert "Unclosed" not in output, output
    assert TOKEN.split(":")[1] not in output, output


async def test_telegram_unreachable_is_retried_then_gives_up_with_one_paragraph(
    tg: FakeTelegram, kie: FakeKie, tmp_path: Path
) -> None:
    env = service_env(tg, kie, tmp_path / "data", free_port())
    env["TELEGRAM_API_URL"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env["STARTUP_RETRY_TIMEOUT"] = "2.5"

    code, output = await run_bot(env, tmp_path)

    assert code == 1, output
    attempts = [line for line in output.splitlines() if "start-up attempt" in line]
    assert len(attempts) >= 2, output  # one line per attempt, saying what failed
    assert all("the Telegram Bot API" in line for line in attempts), attempts
    final = output.splitlines()[-1]
    assert final.startswith("photo-edit-bot: could not start: the Telegram Bot API"), final
    assert "TELEGRAM_API_URL" in final and "STARTUP_RETRY_TIMEOUT" in final, final
    assert_clean(output)


async def test_a_silent_telegram_times_out_and_gives_up_with_one_paragraph(
    tg: FakeTelegram, kie: FakeKie, tmp_path: Path
) -> None:
    tg.delay("getMe", 60)  # accepts the connection, never answers in time
    env = service_env(tg, kie, tmp_path / "data", free_port())
    env["STARTUP_RETRY_TIMEOUT"] = "1"

    code, output = await run_bot(env, tmp_path)

    assert code == 1, output
    final = output.splitlines()[-1]
    assert "could not start: the Telegram Bot API" in final and "TimedOut" in final, final
    assert_clean(output)


async def test_telegram_briefly_failing_at_start_then_the_bot_serves(
    tg: FakeTelegram, kie: FakeKie, tmp_path: Path
) -> None:
    tg.fail("getMe", 502, "Bad Gateway", times=2)
    port = free_port()
    env = service_env(tg, kie, tmp_path / "data", port)
    env["STARTUP_RETRY_TIMEOUT"] = "30"
    process = await spawn_bot(env, tmp_path)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                if tg.calls_of("setWebhook"):
                    break
                await asyncio.sleep(0.05)
            async with http.get(f"http://127.0.0.1:{port}/healthz") as answer:
                assert answer.status == 200
        assert len(tg.calls_of("getMe")) >= 3  # two refused, then the one that worked
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert text.count("start-up attempt") == 2, text
    assert_clean(text)


async def test_a_refused_token_exits_2_without_retrying(
    tg: FakeTelegram, kie: FakeKie, tmp_path: Path
) -> None:
    tg.fail("getMe", 401, "Unauthorized")
    code, output = await run_bot(service_env(tg, kie, tmp_path / "data", free_port()), tmp_path)

    assert code == 2, output
    assert "start-up attempt" not in output
    assert "BOT_TOKEN" in output.splitlines()[-1]
    assert len(tg.calls_of("getMe")) == 1
    assert_clean(output)


async def test_a_webhook_url_telegram_refuses_exits_2_naming_public_base_url(
    tg: FakeTelegram, kie: FakeKie, tmp_path: Path
) -> None:
    tg.fail("setWebhook", 400, "Bad Request: bad webhook: An HTTPS URL must be provided")
    code, output = await run_bot(service_env(tg, kie, tmp_path / "data", free_port()), tmp_path)

    assert code == 2, output
    final = output.splitlines()[-1]
    assert "PUBLIC_BASE_URL" in final and "https://" in final, final
    assert_clean(output)


async def test_no_enabled_provider_exits_2_naming_the_settings(
    tg: FakeTelegram, kie: FakeKie, tmp_path: Path
) -> None:
    env = service_env(tg, kie, tmp_path / "data", free_port())
    del env["KIE_API_KEY"]  # PUBLIC_BASE_URL set: photos stay local, no provider remains
    code, output = await run_bot(env, tmp_path)

    assert code == 2, output
    final = output.splitlines()[-1]
    assert "DEFAULT_MODEL" in final and "KIE_API_KEY" in final, final
    assert not tg.calls_of("setWebhook")
    assert_clean(output)


async def test_a_default_generator_that_cannot_draw_exits_2_naming_it(
    tg: FakeTelegram, kie: FakeKie, tmp_path: Path
) -> None:
    env = service_env(tg, kie, tmp_path / "data", free_port())
    env["DEFAULT_GENERATOR"] = "qwen/image-edit"  # an edit model: it cannot draw
    code, output = await run_bot(env, tmp_path)

    assert code == 2, output
    assert "DEFAULT_GENERATOR=qwen/image-edit" in output.splitlines()[-1], output
    assert_clean(output)


async def test_an_unusable_data_dir_exits_2_naming_it(
    tg: FakeTelegram, kie: FakeKie, tmp_path: Path
) -> None:
    occupied = tmp_path / "a-file"
    occupied.write_text("not a directory")
    code, output = await run_bot(service_env(tg, kie, occupied / "data", free_port()), tmp_path)

    assert code == 2, output
    assert "DATA_DIR" in output.splitlines()[-1], output
    assert not tg.calls_of("getMe")  # checked before anything else opens
    assert_clean(output)


async def test_a_port_in_use_exits_2_naming_port(
    tg: FakeTelegram, kie: FakeKie, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = await run_bot(service_env(tg, kie, tmp_path / "data", port), tmp_path)

    assert code == 2, output
    assert "PORT" in output.splitlines()[-1], output
    assert_clean(output)


async def test_database_unreachable_is_retried_then_gives_up_without_the_password(
    tg: FakeTelegram, kie: FakeKie, tmp_path: Path
) -> None:
    env = service_env(tg, kie, tmp_path / "data", free_port())
    env["DATABASE_URL"] = f"postgresql://bot:pw-never-shown@127.0.0.1:{free_port()}/bot"
    env["STARTUP_RETRY_TIMEOUT"] = "1.5"
    code, output = await run_bot(env, tmp_path)

    assert code == 1, output
    assert "start-up attempt 1 failed" in output, output
    final = output.splitlines()[-1]
    assert "the database" in final and "DATABASE_URL" in final, final
    assert "pw-never-shown" not in output
    assert_clean(output)


async def test_an_unedited_env_example_exits_2_saying_replace_me(tmp_path: Path) -> None:
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    code, output = await run_bot({}, tmp_path)

    assert code == 2, output
    assert "BOT_TOKEN" in output and "KIE_API_KEY" in output, output
    assert "replace me" in output, output
    assert_clean(output)


@pytest.mark.parametrize(
    ("api_url", "public_url", "accepted"),
    [
        ("https://api.telegram.org", "https://bot.example", True),
        ("https://api.telegram.org", "https://bot.example:8443", True),
        ("https://api.telegram.org", "http://bot.example", False),
        ("https://api.telegram.org", "https://bot.example:8080", False),
        ("http://bot-api.internal:8081", "http://bot.internal:8080", True),  # --local server
    ],
)
def test_public_base_url_follows_what_the_bot_api_accepts(
    api_url: str, public_url: str, accepted: bool
) -> None:
    from bot.config import ConfigError, load_settings

    values = {"BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": api_url, "PUBLIC_BASE_URL": public_url}
    if accepted:
        assert load_settings(_env_file=None, **values).base_url == public_url
    else:
        with pytest.raises(ConfigError, match="PUBLIC_BASE_URL must be an https:// URL"):
            load_settings(_env_file=None, **values)
