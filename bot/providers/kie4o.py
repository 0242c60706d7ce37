"""KIE 4o Image (GPT-Image-1) family: /api/v1/gpt4o-image/{generate,record-info,download-url}.

Pure mapping functions (limits, request body, record and callback parsing), gathered into a
`FamilyApi` (`kie4o_api`) that `HttpProvider` sends through the shared transport. Errors use
KIE's envelope (`code` + `msg`), mapped by `kie.kie_error` with 4o parameter names.
"""

from __future__ import annotations

import logging
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
from bot.providers.kie import closest_aspect_ratio, kie_error, task_id_of, verify_callback
from domain.errors import ProtocolError, ProviderError

log = logging.getLogger(__name__)

MODEL_ID = "gpt-4o-image"
SIZES = ("1:1", "3:2", "2:3")
FALLBACK_MODELS = ("FLUX_MAX", "GPT_IMAGE_1")
MAX_FILES = 5
# The documents give no prompt limit for 4o; the bot caps it like KIE's longest (nano banana).
PROMPT_MAX = 5000
# kie-facts.md: inputs over 25 MB fail with code 400; .jpg .jpeg .png .webp .jfif accepted.
GPT4O_INPUT_LIMITS = ImageLimits(max_bytes=25 * 1024 * 1024, max_side=4096)

PATH = "/api/v1/gpt4o-image"

# What a chat may set (the fallback model stays the API's default). An unset size is the
# one closest to the photo's shape.
OPTIONS = option_table(
    ModelOption("size", "ar4", choices=(None, *SIZES), unset="auto"),
    ModelOption("num_images", "n", choices=(1, 2, 3, 4), default=1),
    ModelOption("is_enhance", "enh", choices=(False, True), default=False),
    ModelOption("enable_fallback", "fb", choices=(False, True), default=False),
)


def kie4o_models(provider: str = "kie-4o") -> dict[str, ModelSpec]:
    spec = ModelSpec(
        id=MODEL_ID,
        provider=provider,
        api_model=MODEL_ID,
        title="GPT-4o Image",
        max_images=MAX_FILES,
        prompt_max=PROMPT_MAX,
        supports_mask=True,
        image_limits=GPT4O_INPUT_LIMITS,
        options=OPTIONS,
    )
    return {spec.id: spec}


# Pure mapping ---------------------------------------------------------------------------------


def _variants(value: Any) -> int | None:
    """nVariants from the `num_images` setting (1-4, as a number or a digit string)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return -1
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return -1


def validate_4o_request(request: SubmitRequest) -> None:
    """Check every documented limit before anything is spent."""
    check_prompt_and_images(request)
    params = request.params
    variants = _variants(params.get("num_images"))
    if variants is not None and not 1 <= variants <= 4:
        raise InputRejected("param_range", param="num_images", low=1, high=4)
    size = params.get("size")
    if size not in (None, "auto", *SIZES):
        raise InputRejected("param_choice", param="size", choices=", ".join(("auto", *SIZES)))
    fallback = params.get("fallback_model")
    if fallback is not None and fallback not in FALLBACK_MODELS:
        raise InputRejected(
            "param_choice", param="fallback_model", choices=", ".join(FALLBACK_MODELS)
        )
    for name in ("is_enhance", "enable_fallback"):
        value = params.get(name)
        if value is not None and not isinstance(value, bool):
            raise InputRejected("param_choice", param=name, choices="true, false")


def build_4o_body(request: SubmitRequest) -> dict[str, Any]:
    """The generate JSON: files, optional mask, the size closest to the photo, variants."""
    params = request.params
    size = params.get("size")
    if size in (None, "auto"):
        size = "1:1"
        if request.image_sizes:
            size = closest_aspect_ratio(*request.image_sizes[0], SIZES)
    body: dict[str, Any] = {
        "prompt": request.prompt,
        "filesUrl": list(request.image_urls),
        "size": size,
        "nVariants": _variants(params.get("num_images")) or 1,
    }
    if request.mask_url:
        body["maskUrl"] = request.mask_url
    if params.get("is_enhance") is not None:
        body["isEnhance"] = params["is_enhance"]
    if params.get("enable_fallback") is not None:
        body["enableFallback"] = params["enable_fallback"]
    if params.get("fallback_model") is not None:
        body["fallbackModel"] = params["fallback_model"]
    if request.callback_url:
        body["callBackUrl"] = request.callback_url
    return body


_PARAMS = (
    "filesUrl",
    "maskUrl",
    "size",
    "nVariants",
    "isEnhance",
    "enableFallback",
    "fallbackModel",
    "callBackUrl",
    "prompt",
)


def kie4o_error(status: int, body: Any) -> ProviderError | None:
    """KIE's error envelope, naming the 4o parameter a validation message is about."""
    error = kie_error(status, body)
    if error is not None and error.detail:
        lowered = error.detail.lower()
        named = [name for name in _PARAMS if name.lower() in lowered]
        if named:  # the parameter the message names first
            error.param = min(named, key=lambda name: lowered.index(name.lower()))
    return error


def parse_4o_submit(body: Any) -> str:
    task_id = task_id_of(body)
    if not task_id:
        raise ProtocolError("generate answer carries no taskId")
    return task_id


def _progress(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number / 100 if number > 1 else number


def _urls(container: Any) -> tuple[str, ...]:
    """result_urls (or resultUrls) of a `response`/`info` object, also when JSON-encoded."""
    if isinstance(container, str) and container.strip():
        container = embedded_json(container, "result object")
    if not isinstance(container, dict):
        return ()
    urls = container.get("result_urls") or container.get("resultUrls") or []
    if isinstance(urls, str):
        urls = [urls]
    return tuple(str(url) for url in urls if isinstance(url, str) and url)


# Some 4o answers name the outcome in `status` instead of `successFlag`.
_STATUS_FLAGS = {
    "GENERATING": 0,
    "SUCCESS": 1,
    "CREATE_TASK_FAILED": 2,
    "GENERATE_FAILED": 2,
}


def _flag(data: dict[str, Any]) -> int | None:
    """The record's successFlag (0, 1 or 2), also when named by `status`; None if unknown."""
    raw_flag = data.get("successFlag")
    if raw_flag is None:
        raw_flag = _STATUS_FLAGS.get(str(data.get("status") or "").upper())
    try:
        flag = int(raw_flag) if raw_flag is not None else None
    except (TypeError, ValueError):
        return None
    return flag if flag in (0, 1, 2) else None


def record_failed_4o(body: Any) -> bool:
    """Whether a record-info answer's own record says the task failed (whatever its `code`)."""
    data = body.get("data") if isinstance(body, dict) else None
    return isinstance(data, dict) and _flag(data) == 2


def parse_4o_record(body: Any) -> TaskStatus:
    """Parse a record-info answer: successFlag 0 generating, 1 success, 2 failed."""
    if not isinstance(body, dict):
        raise ProtocolError("record is not a JSON object")
    data = body.get("data")
    if not isinstance(data, dict):
        raise ProtocolError("record has no data object")
    flag = _flag(data)
    if flag is None:
        raise ProtocolError(f"unknown successFlag {data.get('successFlag')!r}")
    task_id = task_id_of(body)
    progress = _progress(data.get("progress"))
    if flag == 0:
        state = TaskState.RUNNING if progress else TaskState.PENDING
        return TaskStatus(state=state, task_id=task_id, progress=progress)
    if flag == 1:
        urls = _urls(data.get("response"))
        if not urls:
            raise ProtocolError("successful task without result URLs")
        return TaskStatus(
            state=TaskState.SUCCEEDED, task_id=task_id, result_urls=urls, progress=1.0
        )
    top_code = body.get("code")
    code = data.get("errorCode") or data.get("failCode")
    if code in (None, "") and top_code not in (None, 200, "200"):
        code = top_code  # the record's own code is missing: the answer's code says why
    message = data.get("errorMessage") or data.get("failMsg") or body.get("msg")
    return TaskStatus(
        state=TaskState.FAILED,
        task_id=task_id,
        error_code=str(code) if code not in (None, "") else None,
        error_message=str(message) if message else None,
        progress=progress,
    )


def parse_4o_callback(body: Any) -> TaskStatus:
    """Parse a callback: `data.info.result_urls` on success; code 400/451/500 and `data: null`
    on failure (the edit is then known only from the callback URL)."""
    if not isinstance(body, dict):
        raise ProtocolError("callback is not a JSON object")
    code = body.get("code")
    data = body.get("data")
    task_id = task_id_of(body)
    if code not in (None, 200, "200"):
        message = body.get("msg") or body.get("message")
        if isinstance(data, dict) and not message:
            message = data.get("errorMessage") or data.get("failMsg")
        return TaskStatus(
            state=TaskState.FAILED,
            task_id=task_id,
            error_code=str(code),
            error_message=str(message) if message else None,
        )
    if not isinstance(data, dict):
        raise ProtocolError("callback has no data object")
    if "successFlag" in data or "info" not in data:
        return parse_4o_record(body)
    urls = _urls(data.get("info"))
    if not urls:
        raise ProtocolError("success callback without result URLs")
    return TaskStatus(state=TaskState.SUCCEEDED, task_id=task_id, result_urls=urls, progress=1.0)


def parse_download_url(body: Any) -> str:
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict):  # tolerate {"data": {"url": ...}}
        data = data.get("url") or data.get("downloadUrl")
    if not isinstance(data, str) or not data.startswith(("http://", "https://")):
        raise ProtocolError("download-url answer carries no URL")
    return data


# Family -------------------------------------------------------------------------------------


async def download_url(provider: HttpProvider, url: str) -> str | None:
    """A fresh 20-minute link for a result the CDN refused (download-url endpoint)."""
    try:
        body = await provider.call("POST", f"{PATH}/download-url", json_body={"url": url})
        return parse_download_url(body)
    except ProviderError as exc:
        # The caller then reports the direct fetch's failure, which is retried later.
        log.warning("download-url failed", extra={"error": exc.code, "detail": exc.detail})
        return None


def kie4o_api() -> FamilyApi:
    """KIE's 4o Image API; it shares the KIE account (key, rate limiter, HMAC key)."""
    return FamilyApi(
        submit_path=f"{PATH}/generate",
        status_path=f"{PATH}/record-info",
        status_param="taskId",
        error_mapper=kie4o_error,
        validate=validate_4o_request,
        build_body=build_4o_body,
        parse_submit=parse_4o_submit,
        parse_status=parse_4o_record,
        says_failed=record_failed_4o,
        parse_callback=parse_4o_callback,
        verify_callback=verify_callback,
        fallback_download_url=download_url,
    )
