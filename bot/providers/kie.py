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

from bot.providers.base import SubmitRequest, TaskState, TaskStatus, embedded_json
from bot.providers.http import FamilyApi, HttpProvider
from bot.providers.wire import build_body, validate_request
from domain.errors import CallbackRejected, ProtocolError, ProviderError, error_for_code

# Parameter names a KIE validation message may name (for the user's "which setting" hint).
KNOWN_PARAMS = frozenset(
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
        "aspect_ratio",
        "quality",
    }
)

STATE_MAP = {
    "waiting": TaskState.PENDING,
    "queuing": TaskState.PENDING,
    "generating": TaskState.RUNNING,
    "success": TaskState.SUCCEEDED,
    "fail": TaskState.FAILED,
}
SIGNATURE_MAX_AGE = 300.0

# Pure mapping ---------------------------------------------------------------------------------


def build_create_body(request: SubmitRequest) -> dict[str, Any]:
    """The createTask JSON for a jobs-API model: `model` and `input` as its catalog entry
    lays them out, and the callback."""
    body = build_body(request)
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
        KNOWN_PARAMS | {"prompt", "image_url", "image_urls", "model"}, key=len, reverse=True
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
        validate=validate_request,
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
