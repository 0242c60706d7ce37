"""The model catalog: the shipped file, an operator's MODEL_CATALOG_FILE, and its errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from bot.providers.catalog import PROVIDER_FAMILIES, load_catalog

TOKEN = "123456:TEST-token-for-the-fake-telegram-api-0"

EXTRA = """
[options.image_resolution]
code = "res"
texts = { label = { en = "Resolution", ru = "Разрешение" } }

[[models]]
id = "seedream/4.5-edit"        # replaces the shipped entry
title = "Seedream (house price)"
family = "jobs"
model = "seedream/4.5-edit"
providers = ["kie"]
capabilities = ["edit"]
credits = 3
prompt = { field = "input.prompt", max_length = 100 }
images = { field = "input.image_urls", max_count = 2 }

[[models]]
id = "acme/edit"                # a new one, on two providers
title = "Acme Edit"
family = "jobs"
model = "acme/edit"
providers = ["kie", "apikley"]
capabilities = ["edit", "text"]
credits = 2
prompt = { field = "input.prompt", max_length = 300 }
images = { field = "input.image_url", as_list = false, max_megabytes = 5 }

[models.params.image_resolution]
field = "input.image_resolution"
values = ["1K", "2K"]
default = "1K"
"""


def test_the_shipped_catalog_offers_every_model_on_its_providers() -> None:
    catalog = load_catalog()
    offered = {name: list(catalog.models_for(name)) for name in PROVIDER_FAMILIES}
    assert offered == {
        "kie": [
            "qwen/image-edit",
            "google/nano-banana-edit",
            "seedream/4.5-edit",
            "google/nano-banana",
            "seedream/4.5-text-to-image",
        ],
        "kie-playground": ["kie-playground:qwen/image-edit"],
        "apikley": ["apikley:qwen/image-edit"],
        "kie-4o": ["gpt-4o-image"],
        "odkkk": ["odkkk:qwen-image-edit"],
    }
    gpt4o = catalog.models_for("kie-4o")["gpt-4o-image"]
    assert gpt4o.capabilities == {"edit", "text"} and gpt4o.supports_mask
    assert gpt4o.image_limits.max_bytes == 25 * 1024 * 1024 and gpt4o.max_images == 5
    drawing = [spec.id for spec in catalog.models_for("kie").values() if spec.generates]
    assert drawing == ["google/nano-banana", "seedream/4.5-text-to-image"]
    assert not any(catalog.models_for("kie")[model_id].edits for model_id in drawing)
    odkkk = catalog.models_for("odkkk")["odkkk:qwen-image-edit"]
    assert (odkkk.image_limits.min_side, odkkk.image_limits.max_side) == (384, 3072)


def test_an_operator_file_adds_and_replaces_entries(tmp_path: Path) -> None:
    extra = tmp_path / "models.toml"
    extra.write_text(EXTRA)
    catalog = load_settings(
        _env_file=None, BOT_TOKEN=TOKEN, KIE_API_KEY="k", MODEL_CATALOG_FILE=str(extra)
    ).catalog
    kie = catalog.models_for("kie")
    assert list(kie) == [
        "qwen/image-edit",
        "google/nano-banana-edit",
        "seedream/4.5-edit",
        "google/nano-banana",
        "seedream/4.5-text-to-image",
        "acme/edit",
    ]
    seedream = kie["seedream/4.5-edit"]
    assert (seedream.title, seedream.credits, seedream.prompt_max) == (
        "Seedream (house price)",
        3,
        100,
    )
    assert dict(seedream.params) == {}
    acme = catalog.models_for("apikley")["apikley:acme/edit"]
    assert acme.api_model == "acme/edit" and acme.image_limits.max_bytes == 5 * 1024 * 1024
    option = acme.options["image_resolution"]
    assert (option.code, option.choices, option.default) == ("res", ("1K", "2K"), "1K")
    assert option.texts["label"]["ru"] == "Разрешение"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[[models]]\nid = 'x'\n", "models[0] (id 'x').title: Field required"),
        (
            EXTRA.replace('providers = ["kie", "apikley"]', 'providers = ["kie-4o"]'),
            "models[1] (id 'acme/edit'): Value error, provider 'kie-4o' speaks the 4o API",
        ),
        (
            EXTRA.replace('default = "1K"', 'default = "8K"'),
            "models[1] (id 'acme/edit').params.image_resolution: Value error, default '8K'",
        ),
        (EXTRA.replace("[options.image_resolution]", "[options.other]"), "has no [options."),
        (EXTRA.replace('code = "res"', 'code = "sz"'), "share the code 'sz'"),
        ("models = [", "cannot read"),
    ],
)
def test_a_broken_operator_file_is_a_configuration_error(
    tmp_path: Path, text: str, says: str
) -> None:
    extra = tmp_path / "models.toml"
    extra.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(
            _env_file=None, BOT_TOKEN=TOKEN, KIE_API_KEY="k", MODEL_CATALOG_FILE=str(extra)
        )
    assert f"MODEL_CATALOG_FILE: {extra}" in str(info.value)
    assert says in str(info.value)


def test_python_m_bot_stops_with_exit_2_on_a_broken_catalog(tmp_path: Path) -> None:
    extra = tmp_path / "models.toml"
    extra.write_text(EXTRA.replace("credits = 2", "credits = -1"))
    env = {**os.environ, "BOT_TOKEN": TOKEN, "KIE_API_KEY": "k", "MODEL_CATALOG_FILE": str(extra)}
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"MODEL_CATALOG_FILE: {extra}: models[1] (id 'acme/edit').credits" in result.stderr
