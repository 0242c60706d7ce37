"""How setting values are written: the parsers and formats `bot/config.py` applies."""

from __future__ import annotations

import re
from typing import Annotated, Literal, NamedTuple

from pydantic import BeforeValidator
from pydantic_settings import NoDecode

StorageKind = Literal["local", "kie", "s3"]

TOKEN_RE = re.compile(r"^\d{3,20}:[A-Za-z0-9_-]{30,60}$")

# .env.example's placeholders ("replace-with-...", "replace-me-..."): a copied but unedited
# file must stop the start with a clear message, not start a bot that fails later.
PLACEHOLDER_RE = re.compile(r"replace[-_ ]?(?:me|with)", re.IGNORECASE)

# Telegram's own Bot API sends webhooks only to https URLs on these ports; a self-hosted
# Bot API server started with --local also accepts http and any port.
TELEGRAM_API_HOST = "api.telegram.org"
TELEGRAM_WEBHOOK_PORTS = frozenset({443, 80, 88, 8443})

# Every provider account the bot can talk to (README, "Providers and models").
PROVIDER_NAMES = frozenset({"kie", "kie-playground", "kie-4o", "apikley", "odkkk"})


class ConfigError(ValueError):
    """A setting is missing or cannot work; the message says which and why."""


class RateLimit(NamedTuple):
    """At most `calls` requests per `period` seconds (written "20/10" in settings)."""

    calls: int
    period: float


def _parse_rate(value: object) -> object:
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*", value)
        if match is None or int(match[1]) < 1 or float(match[2]) <= 0:
            raise ValueError("expected '<requests>/<seconds>' with both above 0, e.g. 20/10")
        return RateLimit(int(match[1]), float(match[2]))
    return value


RateLimitSetting = Annotated[RateLimit, NoDecode, BeforeValidator(_parse_rate)]


def _parse_costs(value: object) -> object:
    """MODEL_COSTS: "model=credits,model=credits" (credits per image) as a mapping."""
    if not isinstance(value, str):
        return value
    costs: dict[str, float] = {}
    for part in re.split(r"[,\s]+", value.strip()):
        match = re.fullmatch(r"([^=]+)=(\d+(?:\.\d+)?)", part)
        if part and match is None:
            raise ValueError("expected 'model=credits,...' with credits >= 0, e.g. gpt-4o-image=6")
        if match is not None:
            costs[match[1]] = float(match[2])
    return costs


ModelCosts = Annotated[dict[str, float], NoDecode, BeforeValidator(_parse_costs)]


def split_ids(value: object) -> object:
    if isinstance(value, str):
        return [int(part) for part in re.split(r"[,\s]+", value.strip()) if part]
    if isinstance(value, int):
        return [value]
    return value


def _parse_provider_names(value: object) -> object:
    """FAILOVER: "kie,apikley" as a list of known provider names, each once."""
    if not isinstance(value, str):
        return value
    names = [part for part in re.split(r"[,\s]+", value.strip().lower()) if part]
    if unknown := sorted(set(names) - PROVIDER_NAMES):
        raise ValueError(
            f"unknown provider {', '.join(unknown)}; expected names from "
            f"{', '.join(sorted(PROVIDER_NAMES))}, e.g. kie,apikley"
        )
    if len(set(names)) != len(names):
        raise ValueError("names a provider twice")
    return names


ProviderNames = Annotated[list[str], NoDecode, BeforeValidator(_parse_provider_names)]


PACK_MAX = 10000  # Telegram's largest Stars amount per invoice


class StarPack(NamedTuple):
    """A pack operators sell (STARS_PACKS): `edits` for `stars` Telegram Stars."""

    edits: int
    stars: int


def _parse_packs(value: object) -> object:
    """STARS_PACKS: "edits:stars,edits:stars" (e.g. 10:50,50:200), each pack once."""
    if not isinstance(value, str):
        return value
    packs: list[StarPack] = []
    for part in re.split(r"[,\s]+", value.strip()):
        match = re.fullmatch(r"(\d+):(\d+)", part)
        if part and (match is None or not all(0 < int(n) <= PACK_MAX for n in match.groups())):
            raise ValueError("expected 'edits:stars,...' with both 1-10000, e.g. 10:50,50:200")
        if match is not None:
            packs.append(StarPack(int(match[1]), int(match[2])))
    if len(set(packs)) != len(packs):
        raise ValueError("lists a pack twice")
    return packs


StarPacks = Annotated[list[StarPack], NoDecode, BeforeValidator(_parse_packs)]
