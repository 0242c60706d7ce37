"""What an edit is expected to cost, from a per-model price table (credits per image).

Used where a provider does not report what a task consumed (only KIE's market callbacks carry
`consumeCredits`), and as the reservation a new edit holds against the per-user budget and
the bot-wide cap until its real figure is known (storage/spend.py). The defaults are KIE's
published per-image prices (in KIE credits, ~0.005 USD each); `MODEL_COSTS` overrides any of
them, keyed by the model id a chat chooses or by the provider's model name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.providers.base import ModelSpec

# Keyed by the provider's model name (`ModelSpec.api_model`), so resellers of the same
# model (the KIE playground, Apikley) share a price unless MODEL_COSTS says otherwise.
DEFAULT_COSTS: Mapping[str, float] = {
    "qwen/image-edit": 5.0,  # as qwen/image-to-image
    "qwen-image-edit": 5.0,  # odkkk: the same model
    "google/nano-banana-edit": 8.0,
    "seedream/4.5-edit": 5.0,  # quality "basic"; "high" below
    # Not on the price list we have: the issue's own example figure; override to taste.
    "gpt-4o-image": 6.0,
}
HIGH_QUALITY_COSTS: Mapping[str, float] = {"seedream/4.5-edit": 8.0}
# A model missing from every table: priced like the dearest one rather than free.
UNKNOWN_COST = max(DEFAULT_COSTS.values())
# The parameter that asks for several result images (KIE jobs `num_images`, 4o nVariants).
IMAGE_COUNT = "num_images"


def price_per_image(
    spec: ModelSpec, params: Mapping[str, Any], overrides: Mapping[str, float]
) -> float:
    """Credits one result image of `spec` costs with `params`."""
    for key in (spec.id, spec.api_model):
        if key in overrides:
            return overrides[key]
    if params.get("quality") == "high" and spec.api_model in HIGH_QUALITY_COSTS:
        return HIGH_QUALITY_COSTS[spec.api_model]
    return DEFAULT_COSTS.get(spec.api_model, UNKNOWN_COST)


def image_count(spec: ModelSpec, params: Mapping[str, Any]) -> int:
    """How many images the request asks for (1 unless the model offers several)."""
    option = spec.options.get(IMAGE_COUNT)
    if option is None:
        return 1
    value = params.get(IMAGE_COUNT, option.default)
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return 1


def expected_cost(
    spec: ModelSpec, params: Mapping[str, Any], overrides: Mapping[str, float]
) -> float:
    """Credits an edit of `spec` with `params` is expected to consume."""
    return price_per_image(spec, params, overrides) * image_count(spec, params)
