"""Which providers a configuration enables, their limiters, and the provider settings."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.builders import build_providers
from bot.config import ConfigError, RateLimit, load_settings
from bot.providers.base import AccountLimit
from bot.providers.http import FamilyApi, HttpProvider
from bot.providers.kie import jobs_api
from bot.providers.kie4o import kie4o_api
from bot.providers.odkkk import odkkk_api
from bot.providers.registry import ProviderRegistry
from bot.providers.transport import Transport

TOKEN = "123456:TEST-token-for-the-fake-telegram-api-0"
ENV_EXAMPLE = Path(__file__).resolve().parent.parent / ".env.example"


def settings(**values: Any) -> Any:
    return load_settings(
        _env_file=None, BOT_TOKEN=TOKEN, PUBLIC_BASE_URL="https://bot.example", **values
    )


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    async with aiohttp.ClientSession() as session:
        yield Transport(session)


@pytest.mark.parametrize(
    ("values", "models"),
    [
        (
            {"KIE_API_KEY": "k"},
            [
                "qwen/image-edit",
                "google/nano-banana-edit",
                "seedream/4.5-edit",
                "google/nano-banana",
                "seedream/4.5-text-to-image",
                "gpt-4o-image",
            ],
        ),
        (
            {"KIE_API_KEY": "k", "KIE_4O": "false", "KIE_PLAYGROUND": "true"},
            [
                "qwen/image-edit",
                "google/nano-banana-edit",
                "seedream/4.5-edit",
                "google/nano-banana",
                "seedream/4.5-text-to-image",
                "kie-playground:qwen/image-edit",
            ],
        ),
        ({"KIE_PLAYGROUND": "true"}, []),  # the playground needs the KIE key too
        ({"APIKLEY_API_KEY": "a"}, ["apikley:qwen/image-edit"]),
        ({"ODKKK_API_KEY": "o"}, ["odkkk:qwen-image-edit"]),
    ],
)
def test_models_are_enabled_by_their_settings(
    transport: Transport, values: dict[str, str], models: list[str]
) -> None:
    registry = ProviderRegistry(build_providers(settings(**values), transport))
    assert list(registry.models) == models
    for model_id in models:
        assert registry.provider_for(model_id).name == registry.model(model_id).provider


def test_kie_families_share_the_account_and_others_have_their_own(
    transport: Transport,
) -> None:
    config = settings(
        KIE_API_KEY="k",
        KIE_PLAYGROUND="true",
        KIE_RATE_LIMIT="7/3",
        KIE_WEBHOOK_HMAC_KEY="h",
        APIKLEY_API_KEY="a",
        APIKLEY_API_URL="https://apikley.test/",
        APIKLEY_RATE_LIMIT="5/1",
        ODKKK_API_KEY="o",
        ODKKK_TASK_PATH="/v2/t/{id}",
    )
    providers = {p.name: p for p in build_providers(config, transport)}
    kie, playground, gpt4o = providers["kie"], providers["kie-playground"], providers["kie-4o"]
    apikley, odkkk = providers["apikley"], providers["odkkk"]
    assert isinstance(kie, HttpProvider) and isinstance(playground, HttpProvider)
    assert isinstance(gpt4o, HttpProvider) and isinstance(apikley, HttpProvider)
    assert isinstance(odkkk, HttpProvider)
    assert kie.rate_limit == playground.rate_limit == gpt4o.rate_limit == AccountLimit("kie", 7, 3)
    assert apikley.rate_limit == AccountLimit("apikley", 5, 1.0)
    assert odkkk.rate_limit == AccountLimit("odkkk", 20, 10.0)
    assert playground.api == jobs_api("/api/v1/playground")
    assert kie.api == apikley.api == jobs_api("/api/v1/jobs") and gpt4o.api == kie4o_api()
    assert kie.hmac_key == playground.hmac_key == gpt4o.hmac_key == "h"
    assert apikley.hmac_key is None and apikley.base_url == "https://apikley.test"
    assert apikley.api_key == "a"
    assert odkkk.base_url == "https://ai.odkkk.com/apiv1" and odkkk.api == odkkk_api("/v2/t/{id}")


def test_provider_setting_defaults() -> None:
    config = settings()
    assert config.kie_rate_limit == RateLimit(20, 10.0)
    assert config.apikley_rate_limit == config.odkkk_rate_limit == RateLimit(20, 10.0)
    assert str(config.apikley_api_url).rstrip("/") == "https://api.apikley.ru"
    assert config.odkkk_task_path == "/v1/tasks/{id}"
    assert config.kie_4o and not config.kie_playground


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KIE_RATE_LIMIT", "20"),
        ("KIE_RATE_LIMIT", "0/10"),
        ("APIKLEY_RATE_LIMIT", "5/0"),
        ("ODKKK_RATE_LIMIT", "many/10"),
        ("ODKKK_TASK_PATH", "/v1/tasks"),
        ("ODKKK_TASK_PATH", "v1/tasks/{id}"),
    ],
)
def test_bad_provider_settings_are_named(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings(**{name: value})
    assert name in str(info.value)


def test_every_provider_setting_is_documented_in_env_example() -> None:
    documented = set(re.findall(r"^([A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    for name in (
        "KIE_PLAYGROUND",
        "KIE_4O",
        "KIE_RATE_LIMIT",
        "APIKLEY_API_KEY",
        "APIKLEY_API_URL",
        "APIKLEY_RATE_LIMIT",
        "ODKKK_API_KEY",
        "ODKKK_API_URL",
        "ODKKK_TASK_PATH",
        "ODKKK_RATE_LIMIT",
    ):
        assert name in documented


@pytest.mark.parametrize(
    ("api", "query"),
    [
        (jobs_api(), ("/api/v1/jobs/recordInfo", {"taskId": "a/b c"})),
        (jobs_api("/api/v1/playground"), ("/api/v1/playground/recordInfo", {"taskId": "a/b c"})),
        (kie4o_api(), ("/api/v1/gpt4o-image/record-info", {"taskId": "a/b c"})),
        (odkkk_api(), ("/v1/tasks/a%2Fb%20c", None)),
        (odkkk_api("/v2/t/{id}/status"), ("/v2/t/a%2Fb%20c/status", None)),
    ],
)
def test_each_family_asks_for_a_task_its_own_way(
    api: FamilyApi, query: tuple[str, dict[str, str] | None]
) -> None:
    assert api.status_query("a/b c") == query
