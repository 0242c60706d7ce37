"""What a chat can tune, and how its stored settings become the next edit's model and params.

Each provider family names the parameters a model takes in `ModelSpec.options`; this module
knows how to offer the ones it recognises (choices, free text, seed). A model's options that
are not listed here are simply not offered. No Telegram or database details live here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from bot.providers.base import InputRejected, ModelSpec
from bot.providers.kie import ACCELERATIONS, ASPECT_RATIOS, IMAGE_SIZES, OUTPUT_FORMATS
from bot.providers.kie4o import SIZES as GPT4O_SIZES
from bot.providers.registry import ProviderRegistry
from storage.chat_settings import ChatPrefs

SEED_MAX = 2**31 - 1
NEGATIVE_PROMPT_MAX = 500

OptionKind = Literal["choice", "text", "seed"]
# Validates a model and params the way an edit would be validated; raises InputRejected.
Checker = Callable[[str, Mapping[str, Any]], None]


@dataclass(frozen=True)
class Option:
    """A model parameter a chat can set.

    `choices` are offered as buttons; None means "not sent" (the model's default, or "auto"
    for sizes chosen from the photo's shape). `default` is what applies when nothing is
    stored; choosing it stores nothing. `labels` is a catalog key prefix for choice names.
    """

    name: str
    code: str
    kind: OptionKind = "choice"
    choices: tuple[Any, ...] = ()
    default: Any = None
    unset: str = "settings.value.default"
    labels: str | None = None
    max_length: int = 0


OPTIONS: tuple[Option, ...] = (
    Option(
        "image_size",
        "sz",
        choices=(None, *IMAGE_SIZES),
        unset="settings.value.auto",
        labels="settings.size",
    ),
    Option("aspect_ratio", "ar", choices=(None, *ASPECT_RATIOS), unset="settings.value.auto"),
    Option("size", "ar4", choices=(None, *GPT4O_SIZES), unset="settings.value.auto"),
    Option("num_images", "n", choices=(1, 2, 3, 4), default=1),
    Option("output_format", "fmt", choices=(None, *OUTPUT_FORMATS)),
    Option("quality", "q", choices=(None, "basic", "high"), labels="settings.quality"),
    Option("acceleration", "acc", choices=ACCELERATIONS, default="none", labels="settings.accel"),
    Option("num_inference_steps", "st", choices=(None, 10, 20, 30, 40, 49)),
    Option("guidance_scale", "gs", choices=(None, 1, 2.5, 4, 7, 10, 15, 20)),
    Option(
        "negative_prompt",
        "neg",
        kind="text",
        unset="settings.value.none",
        max_length=NEGATIVE_PROMPT_MAX,
    ),
    Option("seed", "sd", kind="seed", unset="settings.value.random"),
    Option("enable_safety_checker", "safe", choices=(True, False), default=True),
    Option("is_enhance", "enh", choices=(False, True), default=False),
    Option("enable_fallback", "fb", choices=(False, True), default=False),
)
BY_NAME = {option.name: option for option in OPTIONS}
BY_CODE = {option.code: option for option in OPTIONS}


def options_for(spec: ModelSpec) -> list[Option]:
    """The options of `spec` this bot can offer, in menu order."""
    return [option for option in OPTIONS if option.name in spec.options]


def model_key(model_id: str) -> str:
    """A short stable key for a model id (callback data must stay within 64 bytes)."""
    return hashlib.sha256(model_id.encode()).hexdigest()[:10]


def model_by_key(registry: ProviderRegistry, key: str) -> ModelSpec | None:
    for spec in registry.models.values():
        if model_key(spec.id) == key:
            return spec
    return None


def chosen_model(prefs: ChatPrefs, registry: ProviderRegistry, default_model: str) -> ModelSpec:
    """The chat's model if it is still offered, else the deployment's default."""
    if prefs.model is not None and prefs.model in registry.models:
        return registry.models[prefs.model]
    return registry.model(default_model)


def current(prefs: ChatPrefs, option: Option) -> Any:
    """The value that applies: the stored one, else the option's default."""
    return prefs.params.get(option.name, option.default)


def set_option(prefs: ChatPrefs, option: Option, value: Any) -> ChatPrefs:
    """Store `value` (the default and None store nothing)."""
    return prefs.with_param(option.name, None if value == option.default else value)


def resolve(
    prefs: ChatPrefs, registry: ProviderRegistry, default_model: str
) -> tuple[str, dict[str, Any]]:
    """The model id and params for the chat's next edit.

    Only parameters the model takes are sent; unset ones are left to the model (sizes: chosen
    from the photo's shape by the provider mapping); `send_as_file` is read by delivery.
    """
    spec = chosen_model(prefs, registry, default_model)
    params: dict[str, Any] = {
        name: value
        for name, value in prefs.params.items()
        if name in spec.options and name in BY_NAME and value is not None
    }
    if prefs.send_as_file:
        params["send_as_file"] = True
    return spec.id, params


def rejection(check: Checker, model_id: str, params: Mapping[str, Any]) -> InputRejected | None:
    """Why the model would refuse these params (None: it takes them)."""
    try:
        check(model_id, params)
    except InputRejected as exc:
        return exc
    return None


def offered_choices(check: Checker, spec: ModelSpec, option: Option) -> list[Any]:
    """The choices of `option` the model accepts (its documented limits decide)."""
    return [
        choice
        for choice in option.choices
        if choice is None or rejection(check, spec.id, {option.name: choice}) is None
    ]


def switch_model(prefs: ChatPrefs, spec: ModelSpec, check: Checker) -> ChatPrefs:
    """Choose `spec`, dropping the settings it does not support or whose values it refuses."""
    kept: dict[str, Any] = {}
    for name, value in prefs.params.items():
        if name not in spec.options or name not in BY_NAME:
            continue
        if rejection(check, spec.id, {name: value}) is None:
            kept[name] = value
    return replace(prefs, model=spec.id, params=kept)


def reset(prefs: ChatPrefs) -> ChatPrefs:
    """Back to the defaults; the language stays (it is about reading, not editing), and so do
    a group's moderation rules (they have their own panel), safety lock included."""
    return ChatPrefs(lang=prefs.lang, moderation=prefs.moderation)


def parse_seed(text: str) -> int | None:
    """A seed typed by the user (0 to SEED_MAX), or None if it is not one."""
    cleaned = text.strip().replace(" ", "").replace("_", "")
    if not (cleaned.isascii() and cleaned.isdigit()) or len(cleaned) > 12:
        return None
    value = int(cleaned)
    return value if 0 <= value <= SEED_MAX else None
