"""Settings: required token, clear errors, derived values, the startup command's message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, load_settings

TOKEN = "123456:TEST-token-for-the-fake-telegram-api-0"


def test_missing_token_is_a_clear_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None, KIE_API_KEY="k")
    assert "BOT_TOKEN: is required but not set" in str(info.value)


@pytest.mark.parametrize("token", ["nonsense", "123:short", "abc:" + "x" * 35, ""])
def test_malformed_token_is_refused(token: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None, BOT_TOKEN=token, KIE_API_KEY="k")
    assert "BOT_TOKEN" in str(info.value)
    assert token not in str(info.value) or not token


def test_local_storage_needs_public_url() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None, BOT_TOKEN=TOKEN, STORAGE="local", KIE_API_KEY="k")
    assert "PUBLIC_BASE_URL" in str(info.value)


def test_kie_storage_needs_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None, BOT_TOKEN=TOKEN)
    assert "KIE_API_KEY" in str(info.value)


@pytest.mark.parametrize("level", ["OFF", "EXTRA", "0"])
def test_sqlite_synchronous_is_normal_or_full(level: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None, BOT_TOKEN=TOKEN, KIE_API_KEY="k", SQLITE_SYNCHRONOUS=level)
    assert "SQLITE_SYNCHRONOUS" in str(info.value)


@pytest.mark.parametrize(
    "times",
    [
        {"POLL_MIN_INTERVAL": "5"},  # above POLL_INTERVAL (3)
        {"POLL_INTERVAL": "40"},  # above POLL_MAX_INTERVAL (30)
        {"POLL_MIN_INTERVAL": "0"},
    ],
)
def test_the_poll_floor_first_step_and_cap_are_in_order(times: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None, BOT_TOKEN=TOKEN, KIE_API_KEY="k", **times)
    assert "POLL_" in str(info.value)


def test_defaults_and_derived_values(tmp_path: Path) -> None:
    settings = load_settings(
        _env_file=None,
        BOT_TOKEN=TOKEN,
        KIE_API_KEY="k",
        DATA_DIR=str(tmp_path),
        ADMIN_IDS="1, 2 3",
    )
    assert settings.port == 8080
    assert (settings.poll_min_interval, settings.poll_interval) == (0.5, 3.0)
    assert (settings.status_edit_interval, settings.status_edit_interval_group) == (5.0, 20.0)
    assert settings.default_model == "qwen/image-edit"
    assert settings.telegram_base == "https://api.telegram.org"
    assert str(settings.kie_upload_url).rstrip("/") == "https://kieai.redpandaai.co"
    assert not settings.webhook_mode
    assert settings.resolved_storage == "kie"
    assert settings.admin_ids == [1, 2, 3]
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve()}/bot.sqlite3"
    secret = settings.resolved_webhook_secret
    assert secret and TOKEN not in secret and len(secret) == 64


def test_public_url_switches_to_webhook_and_local_storage() -> None:
    settings = load_settings(
        _env_file=None,
        BOT_TOKEN=TOKEN,
        PUBLIC_BASE_URL="https://bot.example:8443/",
        DATABASE_URL="postgresql://u:p@db/bot",
    )
    assert settings.webhook_mode
    assert settings.base_url == "https://bot.example:8443"
    assert settings.resolved_storage == "local"
    assert settings.resolved_database_url == "postgresql+asyncpg://u:p@db/bot"


def test_token_never_in_repr() -> None:
    settings = load_settings(_env_file=None, BOT_TOKEN=TOKEN, KIE_API_KEY="very-secret-key")
    assert TOKEN not in repr(settings)
    assert "very-secret-key" not in repr(settings)


def test_python_m_bot_without_token_exits_with_message(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN", "KIE_API_KEY")}
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "BOT_TOKEN: is required but not set" in result.stderr


def test_failover_names_known_providers_in_order() -> None:
    settings = load_settings(
        _env_file=None, BOT_TOKEN=TOKEN, KIE_API_KEY="k", FAILOVER="kie, apikley"
    )
    assert settings.failover == ["kie", "apikley"]
    with pytest.raises(ConfigError, match="FAILOVER: unknown provider kei"):
        load_settings(_env_file=None, BOT_TOKEN=TOKEN, KIE_API_KEY="k", FAILOVER="kei,apikley")
    with pytest.raises(ConfigError, match="FAILOVER: names a provider twice"):
        load_settings(_env_file=None, BOT_TOKEN=TOKEN, KIE_API_KEY="k", FAILOVER="kie,kie")


def test_stars_packs_are_edits_for_stars_each_once() -> None:
    def load(**values: object) -> Settings:
        return load_settings(_env_file=None, BOT_TOKEN=TOKEN, KIE_API_KEY="k", **values)

    assert not load().payments  # off by default
    settings = load(STARS_PACKS="10:50, 50:200", FREE_EDITS_DAILY=0)
    assert settings.payments and settings.free_edits_daily == 0
    assert [(p.edits, p.stars) for p in settings.stars_packs] == [(10, 50), (50, 200)]
    for bad in ("10", "10:0", "0:5", "10:50:1", "ten:50", "10:10001"):
        with pytest.raises(ConfigError, match="STARS_PACKS: expected 'edits:stars"):
            load(STARS_PACKS=bad)
    with pytest.raises(ConfigError, match="STARS_PACKS: lists a pack twice"):
        load(STARS_PACKS="10:50,10:50")
    with pytest.raises(ConfigError, match="FREE_EDITS_DAILY"):
        load(STARS_PACKS="10:50", FREE_EDITS_DAILY=-1)
