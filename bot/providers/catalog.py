"""The model catalog: every model as data (catalog.toml, plus an operator's MODEL_CATALOG_FILE).

A catalog file has two tables: `options` (how the settings menu offers an option, shared by
every model that has one of that name) and `models` (one entry per model: family, wire id,
providers, capabilities, input and prompt limits, every parameter, credits per image). An
operator's file adds entries or replaces shipped ones of the same id / option name.
Validated with pydantic when settings load; `CatalogError` names the file and the entry.
The README's "Model catalog" section documents the format.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.images.limits import OUTPUT_FORMATS, ImageLimits
from bot.providers.base import (
    Capability,
    ModelOption,
    ModelSpec,
    OptionKind,
    Param,
    ParamType,
    Unset,
    WireFields,
    option_table,
)

SHIPPED = Path(__file__).with_name("catalog.toml")
Family = Literal["jobs", "4o", "odkkk"]
# The provider accounts the bot can talk to, and the API family each speaks (bot/app.py).
PROVIDER_FAMILIES: Mapping[str, Family] = MappingProxyType(
    {"kie": "jobs", "kie-playground": "jobs", "apikley": "jobs", "kie-4o": "4o", "odkkk": "odkkk"}
)
MB = 1024 * 1024


class CatalogError(ValueError):
    """A catalog file cannot be used; the message names the file and the entry."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OptionLook(_Strict):
    """How the settings menu offers an option (`[options.<name>]`)."""

    code: str = Field(min_length=1, max_length=8, pattern=r"^[a-z0-9]+$")
    kind: OptionKind = "choice"
    unset: Unset = "default"
    value_names: str | None = None
    # {"label": {"en": ..., "ru": ...}, "help": {...}, "ask": {...}}: for names the
    # message catalogs do not know.
    texts: dict[Literal["label", "help", "ask"], dict[str, str]] = {}


class ParamEntry(_Strict):
    """One parameter of a model (`[models.params.<name>]`)."""

    type: ParamType = "string"
    field: str = Field(min_length=1)
    values: list[Any] = []
    min: float | None = None
    max: float | None = None
    max_length: int = Field(default=0, ge=0)
    default: Any = None
    menu: bool = True
    offer: list[Any] | None = None
    send_as_string: bool = False
    auto: list[str] = []
    ratios: dict[str, str] = {}
    when_unset: Any = None
    also_send: dict[str, Any] = {}
    credits: dict[str, float] = {}

    @model_validator(mode="after")
    def _consistent(self) -> ParamEntry:
        if self.type in ("integer", "number") and (self.min is None or self.max is None):
            raise ValueError("a number needs its documented `min` and `max`")
        offered = self.offer if self.offer is not None else self.values
        if self.default is not None and offered and self.default not in offered:
            raise ValueError(f"default {self.default!r} is not among the offered values")
        if self.auto and self.values and not set(self.auto) <= set(self.values):
            raise ValueError("every `auto` value must be one of `values`")
        for value in self.auto:
            shape = self.ratios.get(value, value)
            width, _, height = shape.partition(":")
            if not (width.isdigit() and height.isdigit() and int(height) > 0):
                raise ValueError(f"auto value {value!r} needs a 'W:H' shape in `ratios`")
        return self


class PromptEntry(_Strict):
    field: str = "prompt"
    max_length: int = Field(ge=1)


class ImagesEntry(_Strict):
    field: str = "image_urls"
    as_list: bool = True
    max_count: int = Field(default=1, ge=1)
    formats: list[str] = ["JPEG", "PNG", "WEBP"]
    max_megabytes: float = Field(default=10, gt=0)
    min_side: int = Field(default=1, ge=1)
    max_side: int = Field(default=4096, ge=1)
    mask_field: str | None = None

    @model_validator(mode="after")
    def _formats(self) -> ImagesEntry:
        unknown = {name.upper() for name in self.formats} - OUTPUT_FORMATS
        if unknown or not self.formats:
            raise ValueError(f"formats must be among {sorted(OUTPUT_FORMATS)}")
        if self.min_side > self.max_side:
            raise ValueError("min_side is above max_side")
        return self


class ModelEntry(_Strict):
    """One model (`[[models]]`)."""

    id: str = Field(min_length=1)
    title: str = Field(min_length=1)
    family: Family
    model: str = Field(min_length=1)
    model_field: str = "model"  # "": the API takes no model name
    providers: list[str] = Field(min_length=1)
    capabilities: list[Capability] = Field(min_length=1)
    credits: float = Field(ge=0)
    prompt: PromptEntry
    images: ImagesEntry = ImagesEntry()
    params: dict[str, ParamEntry] = {}

    @model_validator(mode="after")
    def _providers(self) -> ModelEntry:
        for provider in self.providers:
            family = PROVIDER_FAMILIES.get(provider)
            if family is None:
                raise ValueError(f"unknown provider {provider!r} ({', '.join(PROVIDER_FAMILIES)})")
            if family != self.family:
                raise ValueError(
                    f"provider {provider!r} speaks the {family} API, not {self.family}"
                )
        return self


class CatalogFile(_Strict):
    options: dict[str, OptionLook] = {}
    models: list[ModelEntry] = []


def _read(path: Path) -> CatalogFile:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read: {exc}") from None
    try:
        return CatalogFile.model_validate(raw)
    except ValidationError as exc:
        raise CatalogError(f"{path}: {_describe(raw, exc)}") from None


def _describe(raw: Any, exc: ValidationError) -> str:
    """Each error as `models[2] (id 'x').params.seed: message`."""
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
            models = raw.get("models") if isinstance(raw, dict) else None
            entry = models[loc[1]] if isinstance(models, list) and loc[1] < len(models) else None
            name = entry.get("id") if isinstance(entry, dict) else None
            where = f"models[{loc[1]}]" + (f" (id {name!r})" if name else "")
            loc = loc[2:]
        path = ".".join(str(part) for part in loc)
        where = ".".join(part for part in (where, path) if part) or "catalog"
        lines.append(f"{where}: {err['msg']}")
    return "; ".join(lines)


class Catalog:
    """The merged catalog: options by name and model entries by id, in file order."""

    def __init__(self, files: list[tuple[Path, CatalogFile]]) -> None:
        self.options: dict[str, OptionLook] = {}
        self.entries: dict[str, ModelEntry] = {}
        for path, content in files:
            self.options.update(content.options)
            self._check_codes(path)
            for entry in content.models:
                self.entries[entry.id] = entry
        for path, content in files:
            for entry in content.models:
                if self.entries[entry.id] is not entry:
                    continue  # replaced by a later file
                for name, param in entry.params.items():
                    if param.menu and name not in self.options:
                        raise CatalogError(
                            f"{path}: model {entry.id!r}: option {name!r} is offered in the "
                            f"menu but has no [options.{name}] table"
                        )

    def _check_codes(self, path: Path) -> None:
        """A code names one option on every model (a menu may be pressed after a switch)."""
        seen: dict[str, str] = {}
        for name, look in self.options.items():
            other = seen.setdefault(look.code, name)
            if other != name:
                raise CatalogError(
                    f"{path}: options {other!r} and {name!r} share the code {look.code!r}"
                )

    def models_for(self, provider: str) -> dict[str, ModelSpec]:
        """The models `provider` offers, keyed by the id a chat chooses: the entry's id on
        its first provider, "<provider>:<id>" on the others."""
        specs = [
            self.spec(entry, provider)
            for entry in self.entries.values()
            if provider in entry.providers
        ]
        return {spec.id: spec for spec in specs}

    def spec(self, entry: ModelEntry, provider: str) -> ModelSpec:
        chat_id = entry.id if entry.providers[0] == provider else f"{provider}:{entry.id}"
        images = entry.images
        return ModelSpec(
            id=chat_id,
            provider=provider,
            api_model=entry.model,
            title=entry.title,
            capabilities=frozenset(entry.capabilities),
            max_images=images.max_count,
            prompt_max=entry.prompt.max_length,
            image_limits=ImageLimits(
                max_bytes=int(images.max_megabytes * MB),
                formats=frozenset(images.formats),
                min_side=images.min_side,
                max_side=images.max_side,
            ),
            options=option_table(
                *(self._option(name, param) for name, param in entry.params.items() if param.menu)
            ),
            params=MappingProxyType(
                {name: _param(name, param) for name, param in entry.params.items()}
            ),
            wire=WireFields(
                model=entry.model_field or None,
                prompt=entry.prompt.field,
                images=images.field,
                images_list=images.as_list,
                mask=images.mask_field,
            ),
            credits=entry.credits,
            entry=entry.id,
        )

    def _option(self, name: str, param: ParamEntry) -> ModelOption:
        look = self.options[name]
        offered = tuple(param.offer if param.offer is not None else param.values)
        if look.kind == "choice" and param.default is None:
            offered = (None, *offered)  # "not sent": the API's default or `auto`
        return ModelOption(
            name=name,
            code=look.code,
            kind=look.kind,
            choices=offered if look.kind == "choice" else (),
            default=param.default,
            unset=look.unset,
            value_names=look.value_names,
            max_length=param.max_length,
            texts=MappingProxyType({str(kind): text for kind, text in look.texts.items()}),
        )


def _param(name: str, entry: ParamEntry) -> Param:
    def shape(value: str) -> float:
        width, _, height = entry.ratios.get(value, value).partition(":")
        return int(width) / int(height)

    return Param(
        name=name,
        path=entry.field,
        type=entry.type,
        values=tuple(entry.values),
        low=entry.min,
        high=entry.max,
        max_length=entry.max_length,
        send_as_string=entry.send_as_string,
        auto=tuple(entry.auto),
        ratios=MappingProxyType({value: shape(value) for value in entry.auto}),
        when_unset=entry.when_unset,
        also_send=MappingProxyType(dict(entry.also_send)),
        credits=MappingProxyType(dict(entry.credits)),
    )


@lru_cache(maxsize=1)
def _shipped() -> CatalogFile:
    return _read(SHIPPED)


def load_catalog(extra: Path | None = None) -> Catalog:
    """The shipped catalog, with `extra` (MODEL_CATALOG_FILE) added on top when given."""
    files = [(SHIPPED, _shipped())]
    if extra is not None:
        files.append((extra, _read(extra)))
    return Catalog(files)


def models_for(provider: str) -> dict[str, ModelSpec]:
    """The shipped catalog's models of `provider` (without any operator file)."""
    return load_catalog().models_for(provider)
