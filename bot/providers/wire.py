"""A request checked and built from the model's catalog entry alone (`ModelSpec.params`).

Every family validates and lays out its create request through these two functions; what a
family adds is its envelope (callback field, model-less bodies). No model is named here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.providers.base import (
    InputRejected,
    ModelSpec,
    Param,
    SubmitRequest,
    check_prompt_and_images,
)

AUTO = "auto"


def _integer(value: Any) -> int | None:
    """An integer setting, also written as digits (KIE sends num_images as a string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _choices(param: Param) -> str:
    values = (AUTO, *param.values) if param.auto else param.values
    return ", ".join(str(value) for value in values)


def _in_range(param: Param, number: float) -> bool:
    return (param.low is None or number >= param.low) and (
        param.high is None or number <= param.high
    )


def _range_error(param: Param) -> InputRejected:
    def shown(bound: float | None) -> Any:
        return int(bound) if bound is not None and float(bound).is_integer() else bound

    return InputRejected(
        "param_range", param=param.name, low=shown(param.low), high=shown(param.high)
    )


def check_param(param: Param, value: Any) -> None:
    """Raise InputRejected unless `value` is one the API documents for `param`."""
    if value is None or (param.auto and value == AUTO):
        return
    if param.type == "boolean":
        if not isinstance(value, bool):
            raise InputRejected("param_choice", param=param.name, choices="true, false")
        return
    if param.type in ("integer", "number"):
        number = _integer(value) if param.type == "integer" else value
        if param.type == "number" and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            number = None
        if number is None or not _in_range(param, float(number)):
            raise _range_error(param)
        if param.values and number not in param.values:
            raise InputRejected("param_choice", param=param.name, choices=_choices(param))
        return
    if param.values and value not in param.values:
        raise InputRejected("param_choice", param=param.name, choices=_choices(param))
    text = str(value)
    if param.max_length and len(text) > param.max_length:
        # The one message for any text too long (it names the limit and the length).
        raise InputRejected("negative_prompt_too_long", limit=param.max_length, length=len(text))


def validate_request(request: SubmitRequest) -> None:
    """Every documented limit of the model, checked before anything is spent."""
    check_prompt_and_images(request)
    model = request.model
    if request.mask_url and not model.supports_mask:
        raise InputRejected("mask_unsupported", model=model.title)
    if request.mask_url and not request.image_urls:
        raise InputRejected("no_image")  # a mask says where to edit a photo
    for name, param in model.params.items():
        check_param(param, request.params.get(name))


def _ratio(param: Param, value: str) -> float:
    if value in param.ratios:
        return param.ratios[value]
    width, height = value.split(":")
    return int(width) / int(height)


def closest_value(param: Param, width: int, height: int) -> str:
    """The `auto` value of `param` whose shape is closest to a width x height photo."""
    ratio = width / height if height else 1.0
    return min(
        param.auto, key=lambda value: abs(_ratio(param, value) - ratio) / _ratio(param, value)
    )


def _put(body: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = body
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _has(body: Mapping[str, Any], path: str) -> bool:
    node: Any = body
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _wire_value(param: Param, value: Any) -> Any:
    if param.type == "integer":
        number = _integer(value)
        value = number if number is not None else value
    return str(value) if param.send_as_string else value


def _sent_value(param: Param, request: SubmitRequest) -> Any:
    """What goes on the wire for `param`: the chat's value, else one chosen for it."""
    value = request.params.get(param.name)
    if value is not None and not (param.auto and value == AUTO):
        return value
    if param.auto and request.image_sizes:
        return closest_value(param, *request.image_sizes[0])
    return param.when_unset


def build_body(request: SubmitRequest) -> dict[str, Any]:
    """The create request's JSON body, the callback left to the family."""
    model = request.model
    wire = model.wire
    body: dict[str, Any] = {}
    if wire.model is not None:
        _put(body, wire.model, model.api_model)
    _put(body, wire.prompt, request.prompt)
    if request.image_urls:
        images: Any = list(request.image_urls) if wire.images_list else request.image_urls[0]
        _put(body, wire.images, images)
    if request.mask_url and wire.mask is not None:
        _put(body, wire.mask, request.mask_url)
    also: dict[str, Any] = {}
    for param in model.params.values():
        value = _sent_value(param, request)
        if value is None:
            continue
        _put(body, param.path, _wire_value(param, value))
        also.update(param.also_send)
    for path, value in also.items():
        if not _has(body, path):  # a value the chat set itself wins
            _put(body, path, value)
    return body


def price_param_credits(spec: ModelSpec, params: Mapping[str, Any]) -> float | None:
    """The per-image price a chosen value sets (seedream's high quality), if any."""
    for name, param in spec.params.items():
        value = params.get(name)
        if value is not None and str(value) in param.credits:
            return param.credits[str(value)]
    return None
