"""FakeOdkkk: a local aiohttp server playing odkkk's qwen-image-edit API.

Follows /work/shared/api-docs/odkkk-qwen-image-edit-openapi.txt. `url` stands for the
documented server `https://ai.odkkk.com/apiv1`; the fake serves

* POST /v1/images/generations        → ImageGenerationResponse (status "pending")
* GET  {query_path} (/v1/tasks/{id})  → the same object, pending → processing → completed|failed
* GET  /results/{id}/{n}.png          (no auth, CDN-like)

Where the document is silent: results are given OpenAI-style as
`"data": [{"url": ...}]`, a failed task carries `"error": {"code", "message"}`, and input
images are downloaded while the POST is answered, so an unusable image is a 400
`invalid_request_error` with `param: image_urls`. Callbacks (HTTPS only, no internal IPs,
checked on the URL as given, before `url_rewrites`) carry the query body and are retried
3 times after 1/2/4 s (`callback_backoff`). A failed task's query answer has HTTP status
`failed_query_status` (200 by default; the document shows no other, but an error status
beside the failed task's own `error` is served on request).
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import math
import secrets
import string
import time

from aiohttp import web
from yarl import URL

from tests.docs_examples import ODKKK_ERRORS
from tests.fakes._common import (
    JSON,
    MB,
    CallbackAttempt,
    FakeServer,
    FakeTask,
    Injection,
    InputError,
)

__all__ = ["CallbackAttempt", "FakeOdkkk", "FakeTask"]

GENERATIONS = "/v1/images/generations"
MODEL = "qwen-image-edit"
IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "TIFF")
MIN_SIDE, MAX_SIDE = 384, 3072

STATUS = {
    "waiting": "pending",
    "queuing": "pending",
    "generating": "processing",
    "success": "completed",
    "fail": "failed",
}


class _Rejected(Exception):
    """A 400 invalid_request_error naming `param`."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


def _internal_host(host: str | None) -> bool:
    if not host:
        return True
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_reserved
    )


def _check_callback_url(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _Rejected("callback_url", "callback_url must be a non-empty string")
    if len(value) > 2048:
        raise _Rejected("callback_url", "callback_url must not exceed 2048 characters")
    try:
        url = URL(value)
    except ValueError as exc:
        raise _Rejected("callback_url", "callback_url is not a valid URL") from exc
    if url.scheme != "https":
        raise _Rejected("callback_url", "callback_url must use HTTPS")
    if _internal_host(url.host):
        raise _Rejected("callback_url", "callback_url must not point to an internal address")
    return value


class FakeOdkkk(FakeServer):
    """Fake odkkk image API on one 127.0.0.1 server."""

    generation_paths = (GENERATIONS,)
    callback_timeout = 10.0

    def __init__(
        self,
        api_key: str = "odkkk-test-key",
        *,
        query_path: str = "/v1/tasks/{id}",
        task_delay: float = 0.05,
        callback_backoff: tuple[float, ...] = (1.0, 2.0, 4.0),
        callback_retries: int = 3,
        rate_limit: tuple[int, float] | None = None,
        failed_query_status: int = 200,
    ) -> None:
        if "{id}" not in query_path:
            raise ValueError("query_path must contain {id}")
        super().__init__(
            api_key,
            task_delay=task_delay,
            callback_backoff=callback_backoff,
            callback_retries=callback_retries,
            rate_limit=rate_limit,
        )
        self.query_path = query_path
        self.failed_query_status = failed_query_status
        self.max_image_bytes = 50 * MB
        self.estimate: int | None = None  # a fixed `estimated_time` while a task runs

    def fail_next(
        self,
        code: int,
        times: int = 1,
        *,
        path_suffix: str = GENERATIONS,
        message: str | None = None,
    ) -> None:
        """Answer the next `times` calls whose path ends with `path_suffix` ("" = any API
        call) with HTTP `code` and the document's example body for it."""
        if code not in ODKKK_ERRORS:
            raise ValueError(f"odkkk documents errors {sorted(ODKKK_ERRORS)}, not {code}")
        self._inject(Injection(path_suffix, code, message, True, times))

    # ------------------------------------------------------------------- routes
    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(GENERATIONS, self._generate)
        app.router.add_get(self.query_path, self._query)

    def error_response(
        self, request: web.Request, code: int, msg: str | None, *, http_status: bool | None
    ) -> web.Response:
        body = copy.deepcopy(ODKKK_ERRORS.get(code, ODKKK_ERRORS[500]))
        body["error"]["code"] = code
        if msg:
            body["error"]["message"] = msg
        return web.json_response(body, status=code)

    @staticmethod
    def error(
        code: int,
        message: str,
        type_: str,
        *,
        param: str | None = None,
        fallback_suggestion: str | None = None,
    ) -> web.Response:
        err: JSON = {"code": code, "message": message, "type": type_}
        if param is not None:
            err["param"] = param
        if fallback_suggestion is not None:
            err["fallback_suggestion"] = fallback_suggestion
        return web.json_response({"error": err}, status=code)

    def state_name(self, task: FakeTask, phase: str) -> str:
        return STATUS[phase]

    def estimated_time(self, task: FakeTask) -> int:
        """Whole seconds until the task should be done, as the API documents the field:
        from the delay the fake runs it with (an `estimate` override, when set)."""
        if task.finished:
            return 0
        if self.estimate is not None:
            return self.estimate
        delay = self.task_delay if task.outcome.delay is None else task.outcome.delay
        return max(0, math.ceil(task.create_time / 1000 + delay - time.time()))

    def task_body(self, task: FakeTask) -> JSON:
        """ImageGenerationResponse of a task (creation answer, query answer, callback)."""
        progress = {"pending": 0, "processing": 50, "completed": 100}.get(task.state)
        if progress is None:
            progress = 50 if "processing" in task.history else 0
        body: JSON = {
            "created": task.create_time // 1000,
            "id": task.task_id,
            "model": task.model,
            "object": "image.generation.task",
            "progress": progress,
            "status": task.state,
            "task_info": {
                "can_cancel": task.state == "pending",
                "estimated_time": self.estimated_time(task),
            },
            "type": "image",
            "usage": {"billing_rule": "per_call", "credits_reserved": 1, "user_group": "default"},
        }
        if task.state == "completed":
            body["data"] = [{"url": url} for url in task.result_urls]
        elif task.state == "failed":
            code = task.fail_code or "500"
            body["error"] = {
                "code": int(code) if code.isdigit() else code,
                "message": task.fail_msg or "",
            }
        return body

    # ----------------------------------------------------------------- handlers
    async def _generate(self, request: web.Request) -> web.Response:
        body = await self.read_json(request)
        if body is None:
            return self.error(400, "Invalid request format", "invalid_request_error")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return self.error(400, "model is required", "invalid_request_error", param="model")
        if model != MODEL:
            return self.error(
                404,
                "Specified model not found",
                "not_found_error",
                param="model",
                fallback_suggestion=MODEL,
            )
        try:
            self._check_prompt(body.get("prompt"))
            urls = self._check_image_urls(body.get("image_urls"))
            callback_url = _check_callback_url(body.get("callback_url"))
            inputs = await asyncio.gather(*(self._download(i, u) for i, u in enumerate(urls)))
        except _Rejected as exc:
            return self.error(400, exc.message, "invalid_request_error", param=exc.param)
        task = FakeTask(
            task_id=f"task-unified-{int(time.time())}-{_rand()}",
            api="odkkk",
            model=MODEL,
            request=body,
            callback_url=callback_url,
            input_urls=urls,
            outcome=self.pop_outcome(),
            inputs=list(inputs),
        )
        self.register(task)
        return web.json_response(self.task_body(task))

    @staticmethod
    def _check_prompt(prompt: object) -> None:
        if not isinstance(prompt, str) or not prompt:
            raise _Rejected("prompt", "prompt is required")
        if len(prompt) > 2000:
            raise _Rejected("prompt", "prompt must be at most 2000 characters")

    @staticmethod
    def _check_image_urls(urls: object) -> list[str]:
        if not isinstance(urls, list) or not urls:
            raise _Rejected("image_urls", "image_urls is required (1 to 3 image URLs)")
        if len(urls) > 3:
            raise _Rejected("image_urls", "at most 3 images are allowed per request")
        for url in urls:
            if not isinstance(url, str) or URL(url).scheme not in ("http", "https"):
                raise _Rejected("image_urls", "image_urls must be http(s) URLs")
        return list(urls)

    async def _download(self, index: int, url: str) -> bytes:
        try:
            data, (width, height) = await self.fetch_image(
                url, max_bytes=self.max_image_bytes, formats=IMAGE_FORMATS
            )
        except InputError as exc:
            raise _Rejected("image_urls", f"image_urls[{index}]: {exc.message}") from exc
        if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
            raise _Rejected(
                "image_urls",
                f"image_urls[{index}]: width and height must be within "
                f"[{MIN_SIDE}-{MAX_SIDE}] pixels, got {width}x{height}",
            )
        return data

    async def _query(self, request: web.Request) -> web.Response:
        task = self.tasks.get(request.match_info["id"])
        if task is None:
            return self.error(404, "Task not found", "not_found_error", param="id")
        status = self.failed_query_status if task.state == "failed" else 200
        return web.json_response(self.task_body(task), status=status)

    async def send_callbacks(self, task: FakeTask) -> None:
        assert task.callback_url is not None
        await self.deliver(task.task_id, task.callback_url, self.task_body(task))


def _rand() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))
