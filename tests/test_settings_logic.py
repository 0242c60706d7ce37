"""Chat settings without Telegram: resolving the next edit, model switches, menus, catalogs."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from telegram import Chat

from bot.buttons import again_data, file_data, parse_resend, parse_result, resend_data
from bot.commands import GROUP_ADMIN_COMMANDS, PRIVATE_COMMANDS
from bot.handlers import settings_views as views
from bot.handlers.settings import Press, parse
from bot.i18n import Translator
from bot.preferences import (
    chosen_generator,
    model_by_key,
    model_key,
    parse_seed,
    resolve,
    resolve_generation,
    set_option,
    switch_model,
)
from bot.providers.base import ModelOption, ModelSpec, SubmitRequest, option_table
from bot.providers.catalog import models_for
from bot.providers.registry import ProviderRegistry
from bot.providers.wire import validate_request
from domain.edit import EditState
from storage.chat_settings import CAS_ATTEMPTS, ChatPrefs, ChatSettings
from storage.db import Database

LONG_ID = "a-provider-with-a-long-name:some-vendor/an-image-edit-model-with-a-very-long-id"


class StubProvider:
    """Just enough of a provider for the registry and the validators."""

    def __init__(self, name: str, models: dict[str, ModelSpec]) -> None:
        self.name = name
        self.models = models

    def validate(self, request: SubmitRequest) -> None:
        validate_request(request)

    async def close(self) -> None:
        return None


def every_option(models: list[ModelSpec]) -> list[ModelOption]:
    """Each option any of `models` offers, once."""
    return list({o.name: o for spec in models for o in spec.options.values()}.values())


def registry() -> ProviderRegistry:
    jobs, gpt4o = models_for("kie"), models_for("kie-4o")
    long_spec = ModelSpec(
        id=LONG_ID,
        provider="a-provider-with-a-long-name",
        api_model="qwen/image-edit",
        title="A very long model title that goes on and on",
        options=option_table(*every_option([*jobs.values(), *gpt4o.values()])),
    )
    providers: list[Any] = [
        StubProvider("kie", jobs),
        StubProvider("kie-4o", gpt4o),
        StubProvider("a-provider-with-a-long-name", {LONG_ID: long_spec}),
    ]
    return ProviderRegistry(providers)


REGISTRY = registry()
OPTIONS = every_option(list(REGISTRY.models.values()))
QWEN = REGISTRY.model("qwen/image-edit")


def check(model_id: str, params: Mapping[str, Any]) -> None:
    spec = REGISTRY.model(model_id)
    REGISTRY.provider(spec.provider).validate(
        SubmitRequest(model=spec, prompt="x", image_urls=("https://x.invalid/",), params=params)
    )


def test_defaults_send_nothing_but_the_default_model() -> None:
    assert resolve(ChatPrefs(), REGISTRY, "qwen/image-edit") == ("qwen/image-edit", {})


def test_stored_settings_become_the_model_and_params() -> None:
    prefs = ChatPrefs(
        model="qwen/image-edit",
        send_as_file=True,
        params={"num_images": 2, "seed": 42, "aspect_ratio": "1:1", "bogus": 1},
    )
    model_id, params = resolve(prefs, REGISTRY, "google/nano-banana-edit")
    assert model_id == "qwen/image-edit"
    # Only what the model takes (qwen has no aspect_ratio) and what delivery reads.
    assert params == {"num_images": 2, "seed": 42, "send_as_file": True}


def test_a_model_that_is_no_longer_offered_falls_back_to_the_default() -> None:
    prefs = ChatPrefs(model="odkkk:qwen-image-edit", params={"output_format": "png"})
    assert resolve(prefs, REGISTRY, "google/nano-banana-edit") == (
        "google/nano-banana-edit",
        {"output_format": "png"},
    )


@pytest.mark.parametrize(
    ("target", "kept"),
    [
        ("google/nano-banana-edit", {"output_format": "png"}),
        ("gpt-4o-image", {"num_images": 3}),
        ("seedream/4.5-edit", {}),
        ("qwen/image-edit", {"num_images": 3, "output_format": "png", "negative_prompt": "x"}),
    ],
)
def test_switching_the_model_drops_what_it_does_not_support(
    target: str, kept: dict[str, Any]
) -> None:
    prefs = ChatPrefs(
        model="qwen/image-edit",
        lang="ru",
        params={"num_images": 3, "output_format": "png", "negative_prompt": "x"},
    )
    switched = switch_model(prefs, REGISTRY.model(target), check)
    assert switched.model == target and switched.lang == "ru"
    assert dict(switched.params) == kept


def test_switching_drops_values_the_new_model_refuses() -> None:
    # Both take aspect_ratio-like sizes, but 4o only knows 1:1, 3:2 and 2:3.
    prefs = ChatPrefs(params={"size": "16:9"})
    assert dict(switch_model(prefs, REGISTRY.model("gpt-4o-image"), check).params) == {}


def test_choosing_the_default_stores_nothing() -> None:
    option = QWEN.options["num_images"]
    prefs = set_option(ChatPrefs(params={"num_images": 3}), option, 1)
    assert dict(prefs.params) == {}
    assert dict(set_option(prefs, option, 4).params) == {"num_images": 4}


def test_only_choices_the_model_accepts_are_offered() -> None:
    gpt4o = REGISTRY.model("gpt-4o-image")
    assert list(gpt4o.options["size"].choices) == [None, "1:1", "3:2", "2:3"]
    assert list(gpt4o.options) == [
        "size",
        "num_images",
        "is_enhance",
        "fallback_model",
    ]
    assert gpt4o.options["fallback_model"].choices == (None, "FLUX_MAX", "GPT_IMAGE_1")
    assert "aspect_ratio" not in list(QWEN.options)


@pytest.mark.parametrize(
    ("text", "seed"),
    [("42", 42), (" 7 ", 7), ("1_000", 1000), ("2147483647", 2**31 - 1), ("0", 0)],
)
def test_typed_seeds(text: str, seed: int) -> None:
    assert parse_seed(text) == seed


@pytest.mark.parametrize("text", ["", "-1", "4.5", "2147483648", "abc", "٣", "99999999999999"])
def test_bad_seeds(text: str) -> None:
    assert parse_seed(text) is None


@pytest.mark.parametrize(
    ("data", "press"),
    [
        ("s1:home", Press("home")),
        ("s1:o:n", Press("o", "n")),
        ("s1:v:fmt:2", Press("v", "fmt", 2)),
        ("s1:m:0123456789", Press("m", "0123456789")),
        ("s1:l:auto", Press("l", "auto")),
        ("s1:file", Press("file")),
    ],
)
def test_settings_button_data(data: str, press: Press) -> None:
    assert parse(data) == press


@pytest.mark.parametrize(
    "data", ["", "s1", "s2:home", "s1:home:x", "s1:o", "s1:o:", "s1:v:n", "s1:v:n:-1", "s1:zzz"]
)
def test_stale_or_forged_settings_data(data: str) -> None:
    assert parse(data) is None


def test_result_and_history_data_round_trip() -> None:
    result = parse_result(again_data(123))
    assert result is not None and (result.action, result.edit_id) == ("again", 123)
    result = parse_result(file_data(7))
    assert result is not None and result.action == "file"
    assert parse_resend(resend_data(99)) == 99
    assert parse_result("r1:x:1") is None and parse_resend("h1:r:") is None


def test_model_keys_are_short_and_find_their_model() -> None:
    for model_id, spec in REGISTRY.models.items():
        assert len(model_key(model_id)) == 10
        assert model_by_key(REGISTRY, model_key(model_id)) is spec
    assert model_by_key(REGISTRY, "0000000000") is None


def every_view(ctx: views.MenuContext, prefs: ChatPrefs) -> list[views.View]:
    spec = REGISTRY.model(prefs.model or "qwen/image-edit")
    rendered = [
        views.home(ctx, prefs),
        views.model_view(ctx, prefs),
        views.language_view(ctx, prefs),
    ]
    rendered += [views.option_view(ctx, prefs, option) for option in spec.options.values()]
    return rendered


@pytest.mark.parametrize("lang", ["en", "ru"])
@pytest.mark.parametrize("model_id", list(REGISTRY.models))
def test_every_button_fits_telegram_limits_and_parses(lang: str, model_id: str) -> None:
    chat = Chat(-100123, "supergroup", title="<Cats & Dogs>")
    ctx = views.MenuContext(lang, Translator(), REGISTRY, "qwen/image-edit", chat)
    prefs = ChatPrefs(model=model_id, params={"negative_prompt": "<b>blurry</b>", "seed": 7})
    for text, markup in every_view(ctx, prefs):
        assert "&lt;Cats &amp; Dogs&gt;" in text or "<Cats" not in text
        assert markup is not None
        for row in markup.inline_keyboard:
            for button in row:
                data = button.callback_data
                assert isinstance(data, str) and 1 <= len(data.encode()) <= 64
                assert parse(data) is not None, data
                assert button.text and "settings." not in button.text  # no missing key


def test_menu_texts_escape_user_text() -> None:
    chat = Chat(1001, "private")
    ctx = views.MenuContext("en", Translator(), REGISTRY, "qwen/image-edit", chat)
    prefs = ChatPrefs(params={"negative_prompt": "<i>x</i> & y"})
    text, _ = views.option_view(ctx, prefs, QWEN.options["negative_prompt"])
    assert "&lt;i&gt;x&lt;/i&gt; &amp; y" in text


def used_keys() -> set[str]:
    """Catalog keys named literally in the modules of this feature, plus the computed ones."""
    root = Path(__file__).parent.parent / "bot"
    files = [
        root / "buttons.py",
        root / "delivery.py",
        *(root / "handlers").glob("*.py"),
    ]
    literal = re.compile(
        r"\"((?:settings|result|history|cancel|inline|command|lang)\.[a-z_]+(?:\.[a-z_]+)*)\""
    )
    keys = {match for path in files for match in literal.findall(path.read_text())}
    for option in OPTIONS:
        keys |= {f"settings.opt.{option.name}", f"settings.help.{option.name}"}
        keys.add(f"settings.value.{option.unset}")
        if option.value_names:
            keys |= {
                f"settings.{option.value_names}.{choice}" for choice in option.choices if choice
            }
        if option.kind != "choice":
            keys.add(f"settings.ask.{option.name}")
    keys |= {f"history.state.{state.value}" for state in EditState}
    keys |= {f"command.{name}" for name in (*PRIVATE_COMMANDS, *GROUP_ADMIN_COMMANDS)}
    return keys


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_every_key_is_in_both_catalogs(lang: str) -> None:
    catalog = Translator().keys(lang)
    keys = used_keys()
    assert len(keys) > 100
    assert sorted(key for key in keys if key not in catalog) == []


async def test_concurrent_changes_are_never_lost(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}")
    await db.migrate()
    try:
        stores = [ChatSettings(db.backend) for _ in range(3)]  # like three replicas
        names = [f"p{i}" for i in range(CAS_ATTEMPTS)]  # each failure is another's success
        await asyncio.gather(
            *(
                stores[i % 3].update(-100, lambda p, n=name: p.with_param(n, 1), user_id=i)
                for i, name in enumerate(names)
            )
        )
        prefs = await ChatSettings(db.backend).get(-100)
        assert dict(prefs.params) == dict.fromkeys(names, 1)
        assert stores[0].cached(-100) is not None
        assert (await stores[1].get(-100, fresh=True)) == prefs
        assert await ChatSettings(db.backend).get(-200) == ChatPrefs()  # nothing stored: defaults
    finally:
        await db.close()


def test_the_drawing_model_and_the_settings_it_is_sent() -> None:
    def drawn_by(prefs: ChatPrefs, default: str = "") -> str | None:
        spec = chosen_generator(prefs, REGISTRY, default, "qwen/image-edit")
        return spec.id if spec is not None else None

    assert drawn_by(ChatPrefs()) == "google/nano-banana"  # the catalog's first
    assert drawn_by(ChatPrefs(model="gpt-4o-image")) == "gpt-4o-image"  # the edit model draws
    assert drawn_by(ChatPrefs(), "seedream/4.5-text-to-image") == "seedream/4.5-text-to-image"
    chosen = ChatPrefs(model="gpt-4o-image", generator="seedream/4.5-text-to-image")
    assert drawn_by(chosen, "google/nano-banana") == "seedream/4.5-text-to-image"
    # A choice or default that no longer draws (gone, or edits only) falls through.
    assert drawn_by(ChatPrefs(generator="gone/model"), "qwen/image-edit") == "google/nano-banana"
    only_edits = ProviderRegistry([StubProvider("kie", {"qwen/image-edit": QWEN})])
    assert chosen_generator(ChatPrefs(), only_edits, "", "qwen/image-edit") is None
    assert resolve_generation(ChatPrefs(), only_edits, "", "qwen/image-edit") is None

    # Settings of the same name go along when the drawing model takes the value.
    prefs = ChatPrefs(
        generator="seedream/4.5-text-to-image",
        send_as_file=True,
        params={"aspect_ratio": "16:9", "quality": "high", "seed": 7, "num_images": 2},
    )
    assert resolve_generation(prefs, REGISTRY, "", "qwen/image-edit") == (
        "seedream/4.5-text-to-image",
        {"aspect_ratio": "16:9", "quality": "high", "send_as_file": True},
    )
    refused = ChatPrefs(generator="seedream/4.5-text-to-image", params={"aspect_ratio": "4:5"})
    assert resolve_generation(refused, REGISTRY, "", "qwen/image-edit") == (
        "seedream/4.5-text-to-image",
        {},
    )
    stored = ChatPrefs.from_json(chosen.to_json())
    assert stored.generator == "seedream/4.5-text-to-image"
