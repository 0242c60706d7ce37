"""KIE "market" jobs API family: KIE jobs, KIE playground and Apikley (same shapes).

Pure mapping functions (request body, submit answer, record/callback parsing), gathered into
a `FamilyApi` (`jobs_api`) that `HttpProvider` sends through the shared transport.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from collections.abc import Mapping
from typing import Any

from bot.images.limits import ImageLimits
from bot.providers.base import (
    InputRejected,
    ModelOption,
    ModelSpec,
    SubmitRequest,
    TaskState,
    TaskStatus,
    check_prompt_and_images,
    embedded_json,
    option_table,
)
from bot.providers.http import FamilyApi, HttpProvider
from domain.errors import CallbackRejected, ProtocolError, ProviderError, error_for_code

# Every input parameter of qwen/image-edit (also the ones a chat does not choose).
QWEN_PARAMS = frozenset(
    {
        "acceleration",
        "image_size",
        "num_inference_steps",
        "seed",
        "guidance_scale",
        "sync_mode",
        "num_images",
        "enable_safety_checker",
        "output_format",
        "negative_prompt",
    }
)
ACCELERATIONS = ("none", "regular", "high")
IMAGE_SIZES = (
    "square",
    "square_hd",
    "portrait_4_3",
    "portrait_16_9",
    "landscape_4_3",
    "landscape_16_9",
)
ASPECT_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9", "2:3", "3:2", "4:5", "5:4", "21:9")
OUTPUT_FORMATS = ("jpeg", "png")
QUALITIES = ("basic", "high")
NEGATIVE_PROMPT_MAX = 500
KIE_INPUT_LIMITS = ImageLimits(max_bytes=10 * 1024 * 1024, max_side=4096)

STATE_MAP = {
    "waiting": TaskState.PENDING,
    "queuing": TaskState.PENDING,
    "generating": TaskState.RUNNING,
    "success": TaskState.SUCCEEDED,
    "fail": TaskState.FAILED,
}
SIGNATURE_MAX_AGE = 300.0

# What a chat may set, with the values the settings menu offers (all within the limits
# validate_jobs_request checks). Unset sizes are chosen from the photo's shape.
IMAGE_SIZE = ModelOption(
    "image_size", "sz", choices=(None, *IMAGE_SIZES), unset="auto", value_names="size"
)
ASPECT_RATIO = ModelOption("aspect_ratio", "ar", choices=(None, *ASPECT_RATIOS), unset="auto")
NUM_IMAGES = ModelOption("num_images", "n", choices=(1, 2, 3, 4), default=1)
OUTPUT_FORMAT = ModelOption("output_format", "fmt", choices=(None, *OUTPUT_FORMATS))
QUALITY = ModelOption("quality", "q", choices=(None, *QUALITIES), value_names="quality")
ACCELERATION = ModelOption(
    "acceleration", "acc", choices=ACCELERATIONS, default="none", value_names="accel"
)
STEPS = ModelOption("num_inference_steps", "st", choices=(None, 10, 20, 30, 40, 49))
GUIDANCE = ModelOption("guidance_scale", "gs", choices=(None, 1, 2.5, 4, 7, 10, 15, 20))
NEGATIVE_PROMPT = ModelOption(
    "negative_prompt", "neg", kind="text", unset="none", max_length=NEGATIVE_PROMPT_MAX
)
SEED = ModelOption("seed", "sd", kind="seed", unset="random")
SAFETY_CHECKER = ModelOption("enable_safety_checker", "safe", choices=(True, False), default=True)


def jobs_models(provider: str, prefix: str = "") -> dict[str, ModelSpec]:
    """The image-edit models of the jobs API, keyed by the id a chat chooses."""
    specs = [
        ModelSpec(
            id=f"{prefix}qwen/image-edit",
            provider=provider,
            api_model="qwen/image-edit",
            title="Qwen Image Edit",
            max_images=1,
            prompt_max=2000,
            image_limits=KIE_INPUT_LIMITS,
            options=option_table(
                IMAGE_SIZE,
                NUM_IMAGES,
                OUTPUT_FORMAT,
                ACCELERATION,
                STEPS,
                GUIDANCE,
                NEGATIVE_PROMPT,
                SEED,
                SAFETY_CHECKER,
            ),
        ),
    ]
    if not prefix:
        specs += [
            ModelSpec(
                id="google/nano-banana-edit",
                provider=provider,
                api_model="google/nano-banana-edit",
                title="Nano Banana Edit",
                max_images=10,
                prompt_max=5000,
                image_limits=KIE_INPUT_LIMITS,
                options=option_table(ASPECT_RATIO, OUTPUT_FORMAT),
            ),
            ModelSpec(
                id="seedream/4.5-edit",
                provider=provider,
                api_model="seedream/4.5-edit",
                title="Seedream 4.5 Edit",
                max_images=10,
                prompt_max=3000,
                image_limits=KIE_INPUT_LIMITS,
                options=option_table(ASPECT_RATIO, QUALITY),
            ),
        ]
    return {spec.id: spec for spec in specs}


# Pure mapping ---------------------------------------------------------------------------------


def closest_image_size(width: int, height: int) -> str:
    """The documented `image_size` whose shape is closest to the photo's."""
    ratio = width / height if height else 1.0
    shapes = {
        "square_hd": 1.0,
        "portrait_4_3": 3 / 4,
        "portrait_16_9": 9 / 16,
        "landscape_4_3": 4 / 3,
        "landscape_16_9": 16 / 9,
    }
    return min(shapes, key=lambda name: abs(shapes[name] - ratio) / shapes[name])


def closest_aspect_ratio(width: int, height: int, choices: tuple[str, ...]) -> str:
    ratio = width / height if height else 1.0

    def value(choice: str) -> float:
        w, h = choice.split(":")
        return int(w) / int(h)

    return min(choices, key=lambda choice: abs(value(choice) - ratio) / value(choice))


def validate_jobs_request(request: SubmitRequest) -> None:
    """Check every documented limit before anything is spent."""
    check_prompt_and_images(request)
    model = request.model
    if request.mask_url and not model.supports_mask:
        raise InputRejected("mask_unsupported", model=model.title)
    params = request.params
    steps = params.get("num_inference_steps")
    if steps is not None and not (isinstance(steps, int) and 2 <= steps <= 49):
        raise InputRejected("param_range", param="num_inference_steps", low=2, high=49)
    guidance = params.get("guidance_scale")
    if guidance is not None and not (
        isinstance(guidance, int | float) and 0 <= float(guidance) <= 20
    ):
        raise InputRejected("param_range", param="guidance_scale", low=0, high=20)
    num_images = params.get("num_images")
    if num_images is not None and str(num_images) not in ("1", "2", "3", "4"):
        raise InputRejected("param_range", param="num_images", low=1, high=4)
    negative = params.get("negative_prompt")
    if negative is not None and len(str(negative)) > NEGATIVE_PROMPT_MAX:
        raise InputRejected(
            "negative_prompt_too_long", limit=NEGATIVE_PROMPT_MAX, length=len(str(negative))
        )
    for name, allowed in (
        ("acceleration", ACCELERATIONS),
        ("output_format", OUTPUT_FORMATS),
        ("quality", QUALITIES),
    ):
        value = params.get(name)
        if value is not None and value not in allowed:
            raise InputRejected("param_choice", param=name, choices=", ".join(allowed))
    size = params.get("image_size")
    if size not in (None, "auto", *IMAGE_SIZES):
        raise InputRejected("param_choice", param="image_size", choices=", ".join(IMAGE_SIZES))


def build_create_body(request: SubmitRequest) -> dict[str, Any]:
    """The createTask JSON for a jobs-API model."""
    model = request.model
    params = request.params
    size = request.image_sizes[0] if request.image_sizes else None
    inputs: dict[str, Any] = {"prompt": request.prompt}
    if model.api_model == "qwen/image-edit":
        inputs["image_url"] = request.image_urls[0]
        for name in sorted(QWEN_PARAMS):
            value = params.get(name)
            if value is None:
                continue
            if name == "image_size" and value == "auto":
                continue
            inputs[name] = str(value) if name == "num_images" else value
        if params.get("image_size", "auto") == "auto" and size is not None:
            inputs["image_size"] = closest_image_size(*size)
    else:
        inputs["image_urls"] = list(request.image_urls)
        for name in ("output_format", "quality"):
            if params.get(name) is not None and name in model.options:
                inputs[name] = params[name]
        aspect = params.get("aspect_ratio", "auto")
        if aspect == "auto" and size is not None:
            aspect = closest_aspect_ratio(*size, ASPECT_RATIOS[:5])
        if aspect != "auto" and "aspect_ratio" in model.options:
            inputs["aspect_ratio"] = aspect
    body: dict[str, Any] = {"model": model.api_model, "input": inputs}
    if request.callback_url:
        body["callBackUrl"] = request.callback_url
    return body


def kie_error(status: int, body: Any) -> ProviderError | None:
    """KIE answers errors as HTTP statuses or as the `code` of a 200 body: handle both."""
    message = ""
    if isinstance(body, dict):
        message = str(body.get("msg") or body.get("message") or "")
    if status != 200:
        return error_for_code(status, message or f"HTTP {status}", param=_param_of(message))
    if not isinstance(body, dict):
        return ProtocolError("answer is not a JSON object")
    code = body.get("code")
    if code is None or code == 200:
        return None
    try:
        numeric = int(code)
    except (TypeError, ValueError):
        return ProtocolError(f"unknown code {code!r}")
    return error_for_code(numeric, message or f"code {numeric}", param=_param_of(message))


def _param_of(message: str) -> str | None:
    """Best effort: the parameter a validation message names (e.g. 'input.num_images ...')."""
    lowered = message.lower()
    for name in sorted(
        QWEN_PARAMS | {"prompt", "image_url", "image_urls", "model"}, key=len, reverse=True
    ):
        if name in lowered:
            return name
    return None


def parse_submit(body: Any) -> str:
    data = body.get("data") if isinstance(body, dict) else None
    task_id = data.get("taskId") or data.get("task_id") if isinstance(data, dict) else None
    if not task_id:
        raise ProtocolError("createTask answer carries no taskId")
    return str(task_id)


def record_failed(body: Any) -> bool:
    """Whether a recordInfo answer's own record says the task failed (whatever its `code`)."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        return False
    return STATE_MAP.get(str(data.get("state") or "").lower()) is TaskState.FAILED


def parse_record(body: Any) -> TaskStatus:
    """Parse a recordInfo answer or a callback (identical shapes in the docs)."""
    if not isinstance(body, dict):
        raise ProtocolError("record is not a JSON object")
    data = body.get("data")
    if not isinstance(data, dict):
        code = body.get("code")
        if code not in (None, 200):
            message = str(body.get("msg") or body.get("message") or f"code {code}")
            return TaskStatus(state=TaskState.FAILED, error_code=str(code), error_message=message)
        raise ProtocolError("record has no data object")
    raw_state = str(data.get("state") or "").lower()
    state = STATE_MAP.get(raw_state)
    if state is None:
        raise ProtocolError(f"unknown task state {raw_state!r}")
    task_id = data.get("taskId") or data.get("task_id")
    urls: tuple[str, ...] = ()
    if state is TaskState.SUCCEEDED:
        urls = _result_urls(data.get("resultJson"))
        if not urls:
            raise ProtocolError("successful task without result URLs")
    error_code = error_message = None
    if state is TaskState.FAILED:
        top_code = body.get("code")
        fallback_code = top_code if top_code not in (None, 200, "200") else ""
        error_code = str(data.get("failCode") or fallback_code or "") or None
        error_message = str(data.get("failMsg") or body.get("msg") or body.get("message") or "")
    return TaskStatus(
        state=state,
        task_id=str(task_id) if task_id else None,
        result_urls=urls,
        error_code=error_code,
        error_message=error_message or None,
        credits_used=_number(data.get("consumeCredits")),
        credits_left=_number(data.get("remainedCredits")),
    )


def _result_urls(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        if not raw.strip():
            return ()
        raw = embedded_json(raw, "resultJson")
    if not isinstance(raw, dict):
        return ()
    urls = raw.get("resultUrls") or raw.get("result_urls") or []
    return tuple(str(url) for url in urls if isinstance(url, str) and url)


def _number(value: Any) -> float | None:
    """A finite number, or None for anything else (missing, text, huge, NaN, infinite)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def signature(key: str, task_id: str, timestamp: str) -> str:
    """KIE's callback signature: base64(HMAC-SHA256(key, taskId + "." + timestamp))."""
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_signature(
    key: str, headers: Mapping[str, str], task_id: str | None, *, now: float | None = None
) -> None:
    """Refuse a callback without a valid, fresh KIE webhook signature."""
    timestamp = headers.get("X-Webhook-Timestamp", "")
    given = headers.get("X-Webhook-Signature", "")
    if not timestamp or not given or not task_id:
        raise CallbackRejected("missing webhook signature", status=401)
    if not (timestamp.isascii() and given.isascii()):
        raise CallbackRejected("bad webhook signature", status=401)
    try:
        age = abs((now or time.time()) - float(timestamp))
    except ValueError:
        raise CallbackRejected("bad webhook timestamp", status=401) from None
    if not age <= SIGNATURE_MAX_AGE:  # also NaN
        raise CallbackRejected("stale webhook timestamp", status=401)
    if not hmac.compare_digest(signature(key, task_id, timestamp), given):
        raise CallbackRejected("bad webhook signature", status=401)


def task_id_of(body: Any) -> str | None:
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict):
        value = data.get("taskId") or data.get("task_id")
        return str(value) if value else None
    return None


# Family -------------------------------------------------------------------------------------

JOBS_PREFIX = "/api/v1/jobs"
PLAYGROUND_PREFIX = "/api/v1/playground"


def verify_callback(key: str, headers: Mapping[str, str], body: Any, task_id: str | None) -> None:
    """The signature covers the body's task id, else the edit's (4o failures carry none)."""
    verify_signature(key, headers, task_id_of(body) or task_id)


def jobs_api(prefix: str = JOBS_PREFIX) -> FamilyApi:
    """The jobs API under `prefix` (KIE market and Apikley: /api/v1/jobs; KIE playground)."""
    return FamilyApi(
        submit_path=f"{prefix}/createTask",
        status_path=f"{prefix}/recordInfo",
        status_param="taskId",
        error_mapper=kie_error,
        validate=validate_jobs_request,
        build_body=build_create_body,
        parse_submit=parse_submit,
        parse_status=parse_record,
        says_failed=record_failed,
        parse_callback=parse_record,
        verify_callback=verify_callback,
    )


async def account_credits(provider: HttpProvider) -> float:
    """The account's remaining credits (`GET /api/v1/chat/credit`, `data` is a number)."""
    body = await provider.call("GET", "/api/v1/chat/credit")
    value = _number(body.get("data")) if isinstance(body, dict) else None
    if value is None:
        raise ProtocolError("credit answer has no number")
    return value
