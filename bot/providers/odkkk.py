"""odkkk family: OpenAI-style `POST /v1/images/generations` with `model: qwen-image-edit`.

Pure mapping functions (limits, request body, task and error parsing), gathered into a
`FamilyApi` (`odkkk_api`) that `HttpProvider` sends through the shared transport. The task
query path is not in the document: `GET {base}/v1/tasks/{id}` by default, configurable
(ODKKK_TASK_PATH).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from bot.providers.base import SubmitRequest, TaskState, TaskStatus
from bot.providers.http import FamilyApi
from bot.providers.wire import build_body, validate_request
from domain.errors import ProtocolError, ProviderError, error_for_code

GENERATIONS = "/v1/images/generations"
CALLBACK_URL_MAX = 2048

STATE_MAP = {
    "pending": TaskState.PENDING,
    "queued": TaskState.PENDING,
    "processing": TaskState.RUNNING,
    "running": TaskState.RUNNING,
    "in_progress": TaskState.RUNNING,
    "completed": TaskState.SUCCEEDED,
    "succeeded": TaskState.SUCCEEDED,
    "success": TaskState.SUCCEEDED,
    "failed": TaskState.FAILED,
    "fail": TaskState.FAILED,
    "error": TaskState.FAILED,
    "cancelled": TaskState.FAILED,
    "canceled": TaskState.FAILED,
}
_RETRY_HINT = re.compile(r"retry after (\d+(?:\.\d+)?)\s*s", re.IGNORECASE)
_URL_KEYS = ("url", "image_url", "imageUrl", "result_url")
_RESULT_KEYS = ("data", "results", "result", "images", "output", "result_urls", "urls")


# Pure mapping ---------------------------------------------------------------------------------


def callback_allowed(url: str) -> bool:
    """odkkk calls back only to HTTPS URLs of at most 2048 characters on public hosts."""
    if len(url) > CALLBACK_URL_MAX:
        return False
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return True
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_reserved
    )


def build_odkkk_body(request: SubmitRequest) -> dict[str, Any]:
    """The generation JSON as the catalog entry lays it out; the callback only where odkkk
    can reach it."""
    body = build_body(request)
    if request.callback_url and callback_allowed(request.callback_url):
        body["callback_url"] = request.callback_url
    return body


def odkkk_error(status: int, body: Any) -> ProviderError | None:
    """The `{error: {code, message, type, param, fallback_suggestion}}` body, by HTTP status."""
    error = body.get("error") if isinstance(body, dict) else None
    if status == 200:
        if not isinstance(body, dict):
            return ProtocolError("answer is not a JSON object")
        # A failed task carries its own `error` next to `status`: that is an answer.
        if not isinstance(error, dict) or "status" in body:
            return None
    info: Mapping[str, Any] = error if isinstance(error, dict) else {}
    code = status
    if status == 200:
        try:
            code = int(info.get("code") or 500)
        except (TypeError, ValueError):
            code = 500
    message = str(info.get("message") or f"HTTP {status}")
    kind = info.get("type")
    suggestion = info.get("fallback_suggestion")
    detail = message
    if kind:
        detail += f" ({kind})"
    if suggestion:
        detail += f"; suggestion: {suggestion}"
    param = info.get("param")
    exc = error_for_code(code, detail, param=str(param) if param else None)
    if exc.retryable and isinstance(suggestion, str):
        match = _RETRY_HINT.search(suggestion)
        if match:
            exc.retry_after = float(match.group(1))
    return exc


def _unwrap(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise ProtocolError("task answer is not a JSON object")
    inner = body.get("data")
    if "status" not in body and isinstance(inner, dict) and "status" in inner:
        return inner
    return body


def parse_odkkk_submit(body: Any) -> str:
    task = _unwrap(body)
    task_id = task.get("id") or task.get("task_id") or task.get("taskId")
    if not task_id:
        raise ProtocolError("generation answer carries no task id")
    return str(task_id)


def _collect_urls(value: Any, found: list[str], depth: int = 0) -> None:
    if depth > 4:
        return
    if isinstance(value, str):
        if value.startswith(("http://", "https://")) and value not in found:
            found.append(value)
    elif isinstance(value, list):
        for item in value:
            _collect_urls(item, found, depth + 1)
    elif isinstance(value, dict):
        for key in (*_URL_KEYS, *_RESULT_KEYS):
            if key in value:
                _collect_urls(value[key], found, depth + 1)


def result_urls(task: Mapping[str, Any]) -> tuple[str, ...]:
    """Result URLs wherever the answer puts them (`data: [{url}]`, `results`, `images`, ...)."""
    found: list[str] = []
    for key in _RESULT_KEYS:
        if key in task:
            _collect_urls(task[key], found)
    return tuple(found)


def task_failed(body: Any) -> bool:
    """Whether a task answer's own status says the task failed (whatever the HTTP status)."""
    if not isinstance(body, dict):
        return False
    status = str(_unwrap(body).get("status") or "").lower()
    return STATE_MAP.get(status) is TaskState.FAILED


def parse_odkkk_task(body: Any) -> TaskStatus:
    """A task query answer or a callback (the document says they are the same body)."""
    task = _unwrap(body)
    raw = str(task.get("status") or "").lower()
    state = STATE_MAP.get(raw)
    if state is None:
        raise ProtocolError(f"unknown task status {raw!r}")
    task_id = task.get("id") or task.get("task_id") or task.get("taskId")
    progress: float | None
    try:
        progress = float(task["progress"]) / 100 if task.get("progress") is not None else None
    except (TypeError, ValueError):
        progress = None
    info = task.get("task_info")
    eta: float | None = None
    if isinstance(info, dict) and not state.finished:
        try:
            eta = max(0.0, float(info["estimated_time"]))
        except (KeyError, TypeError, ValueError):
            eta = None
    urls: tuple[str, ...] = ()
    if state is TaskState.SUCCEEDED:
        urls = result_urls(task)
        if not urls:
            raise ProtocolError("completed task without result URLs")
    error_code = error_message = None
    if state is TaskState.FAILED:
        error = task.get("error") or body.get("error")  # beside a wrapped task, too
        if isinstance(error, dict):
            code = error.get("code")
            error_code = str(code) if code not in (None, "") else None
            error_message = str(error.get("message") or "") or None
        elif isinstance(error, str) and error:
            error_message = error
        if error_code is None and raw in ("cancelled", "canceled"):
            error_code = "cancelled"
    return TaskStatus(
        state=state,
        task_id=str(task_id) if task_id else None,
        result_urls=urls,
        error_code=error_code,
        error_message=error_message,
        progress=progress,
        eta=eta,
    )


# Family -------------------------------------------------------------------------------------

DEFAULT_TASK_PATH = "/v1/tasks/{id}"


def odkkk_api(task_path: str = DEFAULT_TASK_PATH) -> FamilyApi:
    """odkkk's qwen-image-edit API; tasks queried at `task_path` ("{id}": the task id).

    odkkk signs nothing: the per-edit token in the callback URL authenticates a callback.
    """
    return FamilyApi(
        submit_path=GENERATIONS,
        status_path=task_path,
        status_param=None,
        error_mapper=odkkk_error,
        validate=validate_request,
        build_body=build_odkkk_body,
        parse_submit=parse_odkkk_submit,
        parse_status=parse_odkkk_task,
        says_failed=task_failed,
        parse_callback=parse_odkkk_task,
        accepts_callback_url=callback_allowed,
    )
