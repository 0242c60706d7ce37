"""KIE 4o Image (GPT-Image-1) family: /api/v1/gpt4o-image/{generate,record-info,download-url}.

Pure mapping functions (limits, request body, record and callback parsing), gathered into a
`FamilyApi` (`kie4o_api`) that `HttpProvider` sends through the shared transport. Errors use
KIE's envelope (`code` + `msg`), mapped by `kie.kie_error` with 4o parameter names.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.providers.base import SubmitRequest, TaskState, TaskStatus, embedded_json
from bot.providers.http import FamilyApi, HttpProvider
from bot.providers.kie import kie_error, task_id_of, verify_callback
from bot.providers.wire import build_body, validate_request
from domain.errors import ProtocolError, ProviderError

log = logging.getLogger(__name__)

PATH = "/api/v1/gpt4o-image"


# Pure mapping ---------------------------------------------------------------------------------


def build_4o_body(request: SubmitRequest) -> dict[str, Any]:
    """The generate JSON as the catalog entry lays it out (files, mask, size closest to the
    photo, variants, fallback), and the callback."""
    body = build_body(request)
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
        validate=validate_request,
        build_body=build_4o_body,
        parse_submit=parse_4o_submit,
        parse_status=parse_4o_record,
        says_failed=record_failed_4o,
        parse_callback=parse_4o_callback,
        verify_callback=verify_callback,
        fallback_download_url=download_url,
    )
