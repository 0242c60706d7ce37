"""What a chat can tune, and how its stored settings become the next edit's model and params.

A model lists what a chat may set, with the values to offer and the defaults, in
`ModelSpec.options`; this module offers and stores exactly that, whichever provider the model
comes from. No Telegram or database details live here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from bot.providers.base import InputRejected, ModelOption, ModelSpec
from bot.providers.registry import ProviderRegistry
from bot.providers.wire import check_param
from storage.chat_settings import ChatPrefs

SEED_MAX = 2**31 - 1

# Validates a model and params the way an edit would be validated; raises InputRejected.
Checker = Callable[[str, Mapping[str, Any]], None]


def option_by_code(spec: ModelSpec, code: str) -> ModelOption | None:
    """The option of `spec` a button names by its code (None: the model has no such option)."""
    return next((option for option in spec.options.values() if option.code == code), None)


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


def generators(registry: ProviderRegistry) -> list[ModelSpec]:
    """The enabled models that make an image from a prompt alone, in catalog order."""
    return [spec for spec in registry.models.values() if spec.generates]


def chosen_generator(
    prefs: ChatPrefs, registry: ProviderRegistry, default_generator: str, default_model: str
) -> ModelSpec | None:
    """The model /imagine draws with: the chat's choice, else DEFAULT_GENERATOR, else the
    chat's edit model when it also generates (4o), else the first that does; None when no
    enabled model generates."""
    for model_id in (prefs.generator, default_generator or None):
        spec = registry.models.get(model_id) if model_id else None
        if spec is not None and spec.generates:
            return spec
    edit_model = chosen_model(prefs, registry, default_model)
    if edit_model.generates:
        return edit_model
    return next(iter(generators(registry)), None)


def resolve_generation(
    prefs: ChatPrefs, registry: ProviderRegistry, default_generator: str, default_model: str
) -> tuple[str, dict[str, Any]] | None:
    """The model id and params for the chat's next /imagine, or None (nothing generates).

    The chat's settings are shared with its edit model: those the generator takes, with a
    value it accepts, are sent; the rest are left to the model.
    """
    spec = chosen_generator(prefs, registry, default_generator, default_model)
    if spec is None:
        return None
    params: dict[str, Any] = {}
    for name, value in prefs.params.items():
        param = spec.params.get(name)
        if param is None or value is None:
            continue
        try:
            check_param(param, value)
        except InputRejected:
            continue
        params[name] = value
    if prefs.send_as_file:
        params["send_as_file"] = True
    return spec.id, params


def current(prefs: ChatPrefs, option: ModelOption) -> Any:
    """The value that applies: the stored one, else the option's default."""
    return prefs.params.get(option.name, option.default)


def set_option(prefs: ChatPrefs, option: ModelOption, value: Any) -> ChatPrefs:
    """Store `value` (the default and None store nothing)."""
    return prefs.with_param(option.name, None if value == option.default else value)


def _takes(spec: ModelSpec, name: str) -> bool:
    # A documented parameter the menu no longer offers (4o's old enable_fallback switch) was
    # chosen when it was offered: a chat that stored it keeps getting it.
    return name in spec.options or name in spec.params


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
        if _takes(spec, name) and value is not None
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


def switch_model(prefs: ChatPrefs, spec: ModelSpec, check: Checker) -> ChatPrefs:
    """Choose `spec`, dropping the settings it does not support or whose values it refuses."""
    kept: dict[str, Any] = {}
    for name, value in prefs.params.items():
        if not _takes(spec, name):
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
