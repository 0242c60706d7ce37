"""What an edit is expected to cost, from the catalog's prices (credits per image).

Used where a provider does not report what a task consumed (only KIE's market callbacks carry
`consumeCredits`), and as the reservation a new edit holds against the per-user budget and
the bot-wide cap until its real figure is known (storage/spend.py). The figures are each
catalog entry's `credits` (KIE's published per-image prices, in KIE credits, ~0.005 USD each)
and the dearer prices of some values (`credits` of a parameter); `MODEL_COSTS` overrides any
of them, keyed by the model id a chat chooses or by the provider's model name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.providers.base import ModelSpec
from bot.providers.wire import price_param_credits

# A model without a price (made in code, not from the catalog): priced like the dearest
# shipped one rather than free.
UNPRICED = 8.0
# The parameter that asks for several result images (KIE jobs `num_images`, 4o nVariants).
IMAGE_COUNT = "num_images"


def price_per_image(
    spec: ModelSpec, params: Mapping[str, Any], overrides: Mapping[str, float]
) -> float:
    """Credits one result image of `spec` costs with `params`."""
    for key in (spec.id, spec.api_model):
        if key in overrides:
            return overrides[key]
    dearer = price_param_credits(spec, params)
    if dearer is not None:
        return dearer
    return spec.credits if spec.credits is not None else UNPRICED


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
