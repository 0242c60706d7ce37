"""FakeKie: one local aiohttp server playing the whole KIE platform (and Apikley).

Follows /work/shared/api-docs (kie-jobs-qwen-image-edit.md, kie-playground-qwen-image-edit.md,
apikley-qwen-image-edit-openapi.txt, kie-4o-image.md, kie-facts.md). Serves:

* jobs API       POST /api/v1/jobs/createTask, GET /api/v1/jobs/recordInfo?taskId=
* playground     POST /api/v1/playground/createTask, GET /api/v1/playground/recordInfo
* 4o image       POST /api/v1/gpt4o-image/generate, GET …/record-info, POST …/download-url
* credits        GET /api/v1/chat/credit
* file upload    POST /api/file-stream-upload | /api/file-base64-upload | /api/file-url-upload
* CDN (no auth)  GET /results/{taskId}/{n}.{ext}, /files/{filePath}, /download/{token}/{name}

Choices where the documents leave room (each documented form is served somewhere):

* Errors answer HTTP 200 with the error in body `code` (KIE style) unless
  `error_http_status=True` or an injection asks for the HTTP status. The rate limit
  answers HTTP 429 (kie-facts.md) unless `rate_limit_http_status=False`.
* Both jobs and playground tasks run waiting → queuing → generating → success|fail.
* Jobs answers use `msg` and null failCode/failMsg until failure; playground query
  answers use `message` and "" (as its doc shows). Callbacks of both use `msg` (as the
  playground callback examples do) and the texts "Playground task completed
  successfully." / "Playground task failed.".
* A failed task's callback has top-level code `fail_callback_code` (default 501, as the
  playground and Apikley documents show) for both the jobs and the playground API; the
  query of a failed task (recordInfo, 4o record-info) answers top-level code
  `fail_record_code`: 200 by default, as the jobs query example; 501 answers it like the
  failure callback, which both jobs documents call identical to the query answer.
* Input download failures: failCode "451" when the URL cannot be fetched, "422" when it
  is not an accepted image or is over 10 MB; failMsg starts "image download failed: ".
  4o: callback code 451 (unreachable) or 400 (bad or over 25 MB content).
* Results are the first input inverted/grayscaled (size kept); 4o text-to-image gives a
  blank image sized by `size`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import io
import json
import math
import mimetypes
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from aiohttp import web
from PIL import Image

from tests.fakes._common import (
    JSON,
    MB,
    CallbackAttempt,
    FakeServer,
    FakeTask,
    Injection,
    InputError,
    compact,
    now_ms,
)

__all__ = ["CallbackAttempt", "FakeKie", "FakeTask", "FakeUpload"]

Flavor = Literal["kie", "apikley"]

JOBS_CREATE = "/api/v1/jobs/createTask"
JOBS_RECORD = "/api/v1/jobs/recordInfo"
PLAY_CREATE = "/api/v1/playground/createTask"
PLAY_RECORD = "/api/v1/playground/recordInfo"
GPT4O_GENERATE = "/api/v1/gpt4o-image/generate"
GPT4O_RECORD = "/api/v1/gpt4o-image/record-info"
GPT4O_DOWNLOAD = "/api/v1/gpt4o-image/download-url"
CREDIT = "/api/v1/chat/credit"
UPLOAD_STREAM = "/api/file-stream-upload"
UPLOAD_BASE64 = "/api/file-base64-upload"
UPLOAD_URL = "/api/file-url-upload"

ERROR_MESSAGES: dict[int, str] = {
    400: "Invalid request parameters",
    401: "Authentication failed, please check API Key",
    402: "Insufficient account balance",
    404: "Resource not found",
    422: "Parameter validation failed",
    429: "Request rate limit exceeded",
    433: "Sub-key usage exceeds its limit",
    455: "Service Unavailable - System is currently undergoing maintenance",
    500: "Internal server error",
    501: "Generation Failed - Content generation task failed",
    505: "Feature Disabled - The requested feature is currently disabled",
}
# Codes each flavor documents (Apikley: its ApiResponse enum).
FLAVOR_CODES: dict[str, frozenset[int]] = {
    "kie": frozenset({400, 401, 402, 404, 422, 429, 433, 500, 501}),
    "apikley": frozenset({401, 402, 404, 422, 429, 455, 500, 501, 505}),
}

QWEN_IMAGE_SIZES = (
    "square",
    "square_hd",
    "portrait_4_3",
    "portrait_16_9",
    "landscape_4_3",
    "landscape_16_9",
)
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "auto")
EDIT_FORMATS = ("JPEG", "PNG", "WEBP")
GPT4O_SIZES = {"1:1": (64, 64), "3:2": (96, 64), "2:3": (64, 96)}
GPT4O_FORMATS = ("JPEG", "PNG", "WEBP")  # .jfif is JPEG
SUCCESS_MSG = "Playground task completed successfully."
FAIL_MSG = "Playground task failed."


# --------------------------------------------------------------------- validation
class ParamError(Exception):
    """A request parameter failed validation; the message names it."""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_url(value: object) -> bool:
    return isinstance(value, str) and re.match(r"^https?://[^\s/]+", value) is not None


class _Params:
    """Validators over one JSON object; `prefix` is prepended to parameter names."""

    def __init__(self, obj: JSON, prefix: str = "") -> None:
        self.obj = obj
        self.prefix = prefix

    def _get(self, key: str, required: bool) -> Any:
        if key not in self.obj or self.obj[key] is None:
            if required:
                raise ParamError(f"{self.prefix}{key} is required")
            return None
        return self.obj[key]

    def string(self, key: str, *, required: bool = False, max_len: int | None = None) -> None:
        value = self._get(key, required)
        if value is None:
            return
        if not isinstance(value, str):
            raise ParamError(f"{self.prefix}{key} must be a string")
        if max_len is not None and len(value) > max_len:
            raise ParamError(f"{self.prefix}{key} must be at most {max_len} characters")

    def enum(self, key: str, options: tuple[str, ...], *, required: bool = False) -> None:
        value = self._get(key, required)
        if value is not None and value not in options:
            choices = ", ".join(json.dumps(o) for o in options)
            raise ParamError(f"{self.prefix}{key} must be one of {choices}")

    def number(
        self,
        key: str,
        lo: float | None = None,
        hi: float | None = None,
        *,
        integer: bool = False,
        required: bool = False,
    ) -> None:
        value = self._get(key, required)
        if value is None:
            return
        if not _is_number(value) or not math.isfinite(value):
            raise ParamError(f"{self.prefix}{key} must be a number")
        if integer and not float(value).is_integer():
            raise ParamError(f"{self.prefix}{key} must be an integer")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ParamError(f"{self.prefix}{key} must be between {lo} and {hi}")

    def boolean(self, key: str) -> None:
        value = self._get(key, False)
        if value is not None and not isinstance(value, bool):
            raise ParamError(f"{self.prefix}{key} must be a boolean")

    def url(self, key: str, *, required: bool = False) -> str | None:
        value = self._get(key, required)
        if value == "" and not required:
            return None
        if value is not None and not _is_url(value):
            raise ParamError(f"{self.prefix}{key} must be an http(s) URL")
        return value if isinstance(value, str) else None

    def url_list(self, key: str, lo: int, hi: int | None, *, required: bool = False) -> list[str]:
        value = self._get(key, required)
        if value is None:
            return []
        if not isinstance(value, list) or not all(_is_url(v) for v in value):
            raise ParamError(f"{self.prefix}{key} must be an array of http(s) URLs")
        if len(value) < lo or (hi is not None and len(value) > hi):
            most = f"at most {hi}" if hi is not None else "any number of"
            raise ParamError(f"{self.prefix}{key} must hold at least {lo} and {most} URLs")
        return list(value)


def _ext(output_format: object) -> str:
    return "jpg" if output_format == "jpeg" else "png"


def _qwen(inp: JSON) -> list[str]:
    p = _Params(inp, "input.")
    p.string("prompt", required=True, max_len=2000)
    url = p.url("image_url", required=True)
    p.enum("acceleration", ("none", "regular", "high"))
    p.enum("image_size", QWEN_IMAGE_SIZES)
    p.number("num_inference_steps", 2, 49, integer=True)
    p.number("seed", integer=True)
    p.number("guidance_scale", 0, 20)
    p.boolean("sync_mode")
    p.enum("num_images", ("1", "2", "3", "4"))
    p.boolean("enable_safety_checker")
    p.enum("output_format", ("jpeg", "png"))
    p.string("negative_prompt", max_len=500)
    assert url is not None
    return [url]


def _nano_banana(inp: JSON) -> list[str]:
    p = _Params(inp, "input.")
    p.string("prompt", required=True, max_len=5000)
    urls = p.url_list("image_urls", 1, 10, required=True)
    p.enum("output_format", ("png", "jpeg"))
    p.enum("aspect_ratio", ASPECT_RATIOS)
    return urls


def _seedream(inp: JSON) -> list[str]:
    p = _Params(inp, "input.")
    p.string("prompt", required=True)
    urls = p.url_list("image_urls", 1, None, required=True)
    p.enum("aspect_ratio", ASPECT_RATIOS)
    p.enum("quality", ("basic", "high"))
    return urls


def _nano_banana_t2i(inp: JSON) -> list[str]:
    p = _Params(inp, "input.")
    p.string("prompt", required=True, max_len=5000)
    p.enum("output_format", ("png", "jpeg"))
    p.enum("image_size", ASPECT_RATIOS)
    if "image_urls" in inp or "image_url" in inp:
        raise ParamError("input.image_urls is not a parameter of google/nano-banana")
    return []


def _seedream_t2i(inp: JSON) -> list[str]:
    p = _Params(inp, "input.")
    p.string("prompt", required=True, max_len=3000)
    p.enum("aspect_ratio", ("1:1", "4:3", "3:4", "16:9", "9:16", "2:3", "3:2", "21:9"))
    p.enum("quality", ("basic", "high"))
    if "image_urls" in inp:
        raise ParamError("input.image_urls is not a parameter of seedream/4.5-text-to-image")
    return []


@dataclass(frozen=True)
class JobsModel:
    """A model of the jobs API: input validation (→ input URLs) and result shape."""

    validate: Callable[[JSON], list[str]]
    results: Callable[[JSON], tuple[int, str]]


JOBS_MODELS: dict[str, JobsModel] = {
    "qwen/image-edit": JobsModel(
        _qwen, lambda i: (int(i.get("num_images") or "1"), _ext(i.get("output_format")))
    ),
    "google/nano-banana-edit": JobsModel(_nano_banana, lambda i: (1, _ext(i.get("output_format")))),
    "seedream/4.5-edit": JobsModel(_seedream, lambda i: (1, "png")),
    # Text to image: no input photo (kie-facts.md).
    "google/nano-banana": JobsModel(_nano_banana_t2i, lambda i: (1, _ext(i.get("output_format")))),
    "seedream/4.5-text-to-image": JobsModel(_seedream_t2i, lambda i: (1, "png")),
}


# Seedream 4.0 edit, from KIE's public model page. The bot ships no catalog entry for it:
# tests/test_catalog_model.py adds it through MODEL_CATALOG_FILE alone.
SEEDREAM_V4_SIZES = (
    "square",
    "square_hd",
    "portrait_4_3",
    "portrait_3_2",
    "portrait_16_9",
    "landscape_4_3",
    "landscape_3_2",
    "landscape_16_9",
    "landscape_21_9",
)


def _seedream_v4(inp: JSON) -> list[str]:
    p = _Params(inp, "input.")
    p.string("prompt", required=True, max_len=5000)
    urls = p.url_list("image_urls", 1, 10, required=True)
    p.enum("image_size", SEEDREAM_V4_SIZES)
    p.enum("image_resolution", ("1K", "2K", "4K"))
    p.number("max_images", 1, 6, integer=True)
    p.number("seed", integer=True)
    return urls


JOBS_MODELS["bytedance/seedream-v4-edit"] = JobsModel(_seedream_v4, lambda i: (1, "png"))


def _num_out(value: float) -> int | float:
    """Credits as the docs print them: integers when whole."""
    return int(value) if float(value).is_integer() else value


def _when(ms: int | None) -> str | None:
    return None if ms is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


@dataclass
class FakeUpload:
    """One file stored through the upload API."""

    method: Literal["stream", "base64", "url"]
    upload_path: str
    file_name: str
    file_path: str
    data: bytes
    mime_type: str
    download_url: str
    uploaded_at: str


# ----------------------------------------------------------------------- the fake
class FakeKie(FakeServer):
    """Fake KIE (or Apikley) API + upload API + CDN on one 127.0.0.1 server."""

    public_prefixes = ("/results/", "/files/", "/download/")
    generation_paths = (JOBS_CREATE, PLAY_CREATE, GPT4O_GENERATE)
    callback_timeout = 15.0

    def __init__(
        self,
        api_key: str = "kie-test-key",
        *,
        flavor: Flavor = "kie",
        hmac_key: str | None = None,
        task_delay: float = 0.05,
        callback_backoff: tuple[float, ...] = (0.05, 0.1, 0.2),
        callback_retries: int = 3,
        rate_limit: tuple[int, float] | None = None,
        credits: float = 1000.0,
        task_cost: float = 4.0,
        error_http_status: bool = False,
        rate_limit_http_status: bool = True,
        fail_callback_code: int = 501,
        fail_record_code: int = 200,
        refuse_direct_result_fetch: bool = False,
    ) -> None:
        super().__init__(
            api_key,
            task_delay=task_delay,
            callback_backoff=callback_backoff,
            callback_retries=callback_retries,
            rate_limit=rate_limit,
        )
        self.flavor: Flavor = flavor
        self.hmac_key = hmac_key
        self.credits = credits
        self.task_cost = task_cost
        self.error_http_status = error_http_status
        self.rate_limit_http_status = rate_limit_http_status
        self.fail_callback_code = fail_callback_code
        self.fail_record_code = fail_record_code
        self.refuse_direct_result_fetch = refuse_direct_result_fetch
        self.download_url_ttl = 20 * 60.0
        self.uploads: list[FakeUpload] = []
        self.files: dict[str, FakeUpload] = {}
        self._downloads: dict[str, tuple[str, str, float]] = {}
        self._last_id_ms = 0

    # ------------------------------------------------------------ test controls
    def fail_next(
        self,
        path_suffix: str,
        code: int,
        msg: str | None = None,
        *,
        http_status: bool = False,
        times: int = 1,
    ) -> None:
        """Answer the next `times` API calls whose path ends with `path_suffix` with error
        `code` (in the body with HTTP 200, or as the HTTP status when `http_status`).
        Injections apply before the auth and rate-limit checks; no task is created."""
        if code not in FLAVOR_CODES[self.flavor]:
            allowed = sorted(FLAVOR_CODES[self.flavor])
            raise ValueError(f"{self.flavor} documents codes {allowed}, not {code}")
        self._inject(Injection(path_suffix, code, msg, http_status, times))

    def sign(self, task_id: str, timestamp: str) -> str:
        """base64(HMAC-SHA256(hmac_key, taskId + "." + timestamp))."""
        assert self.hmac_key is not None
        mac = hmac.new(self.hmac_key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256)
        return base64.b64encode(mac.digest()).decode()

    # ------------------------------------------------------------------- routes
    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_post(JOBS_CREATE, self._jobs_create)
        r.add_get(JOBS_RECORD, self._jobs_record)
        r.add_post(PLAY_CREATE, self._playground_create)
        r.add_get(PLAY_RECORD, self._playground_record)
        r.add_post(GPT4O_GENERATE, self._gpt4o_generate)
        r.add_get(GPT4O_RECORD, self._gpt4o_record)
        r.add_post(GPT4O_DOWNLOAD, self._gpt4o_download_url)
        r.add_get(CREDIT, self._credit)
        r.add_post(UPLOAD_STREAM, self._upload_stream)
        r.add_post(UPLOAD_BASE64, self._upload_base64)
        r.add_post(UPLOAD_URL, self._upload_url)
        r.add_get("/files/{path:.+}", self._serve_file)
        r.add_get("/download/{token}/{name}", self._serve_download)

    def error_response(
        self, request: web.Request, code: int, msg: str | None, *, http_status: bool | None
    ) -> web.Response:
        if http_status is None:
            http_status = self.rate_limit_http_status if code == 429 else self.error_http_status
        text = msg or ERROR_MESSAGES.get(code, "error")
        body: JSON
        if request.path.startswith("/api/file-"):
            body = {"success": False, "code": code, "msg": text, "data": None}
        else:
            body = {"code": code, self._msg_key(request): text, "data": None}
        return web.json_response(body, status=code if http_status else 200)

    def _err(self, request: web.Request, code: int, msg: str | None = None) -> web.Response:
        return self.error_response(request, code, msg, http_status=None)

    @staticmethod
    def _msg_key(request: web.Request) -> str:
        return "message" if request.path.startswith("/api/v1/playground/") else "msg"

    def _ok(self, request: web.Request, data: Any) -> web.Response:
        return web.json_response({"code": 200, self._msg_key(request): "success", "data": data})

    def _new_task_id(self, prefix: str) -> str:
        if self.flavor == "kie" and prefix != "4o":
            return uuid.uuid4().hex
        ms = max(now_ms(), self._last_id_ms + 1)
        self._last_id_ms = ms
        return f"task_{prefix}_{ms}"

    # --------------------------------------------------------------- jobs API
    async def _jobs_create(self, request: web.Request) -> web.Response:
        return await self._create_job(request, "jobs")

    async def _jobs_record(self, request: web.Request) -> web.Response:
        return await self._record_job(request, "jobs")

    async def _playground_create(self, request: web.Request) -> web.Response:
        return await self._create_job(request, "playground")

    async def _playground_record(self, request: web.Request) -> web.Response:
        return await self._record_job(request, "playground")

    async def _create_job(self, request: web.Request, api: str) -> web.Response:
        body = await self.read_json(request)
        if body is None:
            return self._err(request, 400, "request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return self._err(request, 422, "model is required")
        spec = JOBS_MODELS.get(model)
        if spec is None:
            return self._err(request, 422, f"model {model!r} is not supported")
        inp = body.get("input")
        if not isinstance(inp, dict):
            return self._err(request, 422, "input is required and must be an object")
        try:
            callback_url = _Params(body).url("callBackUrl")
            urls = spec.validate(inp)
        except ParamError as exc:
            return self._err(request, 422, str(exc))
        if self.credits < self.task_cost:
            return self._err(request, 402)
        task = FakeTask(
            task_id=self._new_task_id(model.split("/")[0]),
            api=api,
            model=model,
            request=body,
            callback_url=callback_url or None,
            input_urls=urls,
            outcome=self.pop_outcome(),
        )
        self.register(task)
        return self._ok(request, {"taskId": task.task_id})

    async def _record_job(self, request: web.Request, api: str) -> web.Response:
        task_id = request.query.get("taskId")
        if not task_id:
            return self._err(request, 422, "taskId is required")
        task = self.tasks.get(task_id)
        if task is None or task.api != api:
            return self._err(request, 404, f"task {task_id} not found")
        return self._record_answer(request, task, self.record_data(task), FAIL_MSG)

    def _record_answer(
        self, request: web.Request, task: FakeTask, data: JSON, fail_msg: str | None
    ) -> web.Response:
        """A query answer: a failed task's carries `fail_record_code` at the top."""
        if task.phase != "fail" or self.fail_record_code == 200:
            return self._ok(request, data)
        body = {"code": self.fail_record_code, self._msg_key(request): fail_msg, "data": data}
        return web.json_response(body)

    def record_data(self, task: FakeTask) -> JSON:
        """`data` of a jobs/playground recordInfo answer."""
        empty = "" if task.api == "playground" else None
        ok = task.phase == "success"
        failed = task.phase == "fail"
        return {
            "taskId": task.task_id,
            "model": task.model,
            "state": task.state,
            "param": compact(task.request),
            "resultJson": compact({"resultUrls": task.result_urls}) if ok else "",
            "failCode": task.fail_code if failed else empty,
            "failMsg": task.fail_msg if failed else empty,
            "costTime": task.cost_time,
            "completeTime": task.complete_time,
            "createTime": task.create_time,
            "updateTime": task.update_time,
        }

    def callback_body(self, task: FakeTask) -> JSON:
        """The body POSTed to callBackUrl when the task finished."""
        if task.api == "gpt4o":
            if task.phase == "success":
                info = {"result_urls": task.result_urls}
                return {
                    "code": 200,
                    "msg": "success",
                    "data": {"taskId": task.task_id, "info": info},
                }
            code = task.fail_code or "500"
            return {
                "code": int(code) if code.isdigit() else 500,
                "msg": task.fail_msg,
                "data": None,
            }
        data = self.record_data(task)
        data["consumeCredits"] = _num_out(task.credits_consumed)
        data["remainedCredits"] = _num_out(self.credits)
        if task.phase == "success":
            if task.api == "playground":
                del data["failCode"], data["failMsg"]
            return {"code": 200, "data": data, "msg": SUCCESS_MSG}
        del data["resultJson"]  # as in the documented failure callback
        return {"code": self.fail_callback_code, "data": data, "msg": FAIL_MSG}

    # ------------------------------------------------------------ task running
    async def prepare_inputs(self, task: FakeTask) -> tuple[str, str] | None:
        gpt4o = task.api == "gpt4o"
        max_bytes = 25 * MB if gpt4o else 10 * MB
        formats = GPT4O_FORMATS if gpt4o else EDIT_FORMATS
        try:
            fetched = await asyncio.gather(
                *(
                    self.fetch_image(u, max_bytes=max_bytes, formats=formats)
                    for u in task.input_urls
                )
            )
            task.inputs = [data for data, _ in fetched]
            if task.mask_url:
                task.mask, _ = await self.fetch_image(
                    task.mask_url, max_bytes=max_bytes, formats=None
                )
        except InputError as exc:
            if gpt4o:
                code = "451" if exc.kind == "download" else "400"
            else:
                code = "451" if exc.kind == "download" else "422"
            return code, f"image download failed: {exc.message}"
        return None

    def result_spec(self, task: FakeTask) -> tuple[int, str]:
        if task.api == "gpt4o":
            return int(task.request.get("nVariants") or 1), "png"
        return JOBS_MODELS[task.model].results(task.request["input"])

    def on_success(self, task: FakeTask) -> None:
        task.credits_consumed = self.task_cost
        self.credits -= self.task_cost

    def blank_size(self, task: FakeTask) -> tuple[int, int]:
        return GPT4O_SIZES.get(str(task.request.get("size")), (64, 64))

    async def send_callbacks(self, task: FakeTask) -> None:
        assert task.callback_url is not None
        await self.deliver(
            task.task_id, task.callback_url, self.callback_body(task), lambda: self._sig(task)
        )

    def _sig(self, task: FakeTask) -> dict[str, str]:
        if self.hmac_key is None:
            return {}
        ts = str(int(time.time()))
        return {"X-Webhook-Timestamp": ts, "X-Webhook-Signature": self.sign(task.task_id, ts)}

    def result_allowed(self, task: FakeTask) -> bool:
        return not (task.api == "gpt4o" and self.refuse_direct_result_fetch)

    # ----------------------------------------------------------------- 4o image
    async def _gpt4o_generate(self, request: web.Request) -> web.Response:
        body = await self.read_json(request)
        if body is None:
            return self._err(request, 400, "request body must be a JSON object")
        p = _Params(body)
        try:
            p.string("prompt", required=True)
            p.enum("size", tuple(GPT4O_SIZES), required=True)
            files = p.url_list("filesUrl", 0, 5)
            mask_url = p.url("maskUrl")
            if mask_url and not files:
                raise ParamError("maskUrl requires filesUrl")
            p.number("nVariants", 1, 4, integer=True)
            p.boolean("isEnhance")
            p.boolean("enableFallback")
            p.enum("fallbackModel", ("FLUX_MAX", "GPT_IMAGE_1"))
            callback_url = p.url("callBackUrl")
        except ParamError as exc:
            return self._err(request, 422, str(exc))
        if self.credits < self.task_cost:
            return self._err(request, 402)
        task = FakeTask(
            task_id=self._new_task_id("4o"),
            api="gpt4o",
            model="gpt-4o-image",
            request=body,
            callback_url=callback_url or None,
            input_urls=files,
            mask_url=mask_url,
            outcome=self.pop_outcome(),
        )
        self.register(task)
        return self._ok(request, {"taskId": task.task_id})

    def gpt4o_progress(self, task: FakeTask) -> float:
        """How far a 4o task is: the share of its run behind it, as the real API's progress
        moves; a task parked by `hold` stays half way."""
        if task.phase == "success":
            return 1.0
        generating = "generating" in task.history
        if task.phase == "fail" or (task.outcome.hold and not task.released.is_set()):
            return 0.5 if generating else 0.0
        delay = self.task_delay if task.outcome.delay is None else task.outcome.delay
        if delay <= 0:
            return 0.5 if generating else 0.0
        return min(0.99, max(0.0, (now_ms() - task.create_time) / 1000 / delay))

    def gpt4o_data(self, task: FakeTask) -> JSON:
        """`data` of a 4o record-info answer."""
        flag = {"success": 1, "fail": 2}.get(task.phase, 0)
        progress = f"{self.gpt4o_progress(task):.2f}"
        code = task.fail_code
        return {
            "taskId": task.task_id,
            "paramJson": compact(task.request),
            "successFlag": flag,
            "progress": progress,
            "response": {"result_urls": task.result_urls} if flag == 1 else None,
            "errorCode": (int(code) if code.isdigit() else code) if code else None,
            "errorMessage": task.fail_msg,
            "createTime": _when(task.create_time),
            "completeTime": _when(task.complete_time),
        }

    async def _gpt4o_record(self, request: web.Request) -> web.Response:
        task_id = request.query.get("taskId")
        if not task_id:
            return self._err(request, 422, "taskId is required")
        task = self.tasks.get(task_id)
        if task is None or task.api != "gpt4o":
            return self._err(request, 404, f"task {task_id} not found")
        return self._record_answer(request, task, self.gpt4o_data(task), task.fail_msg)

    async def _gpt4o_download_url(self, request: web.Request) -> web.Response:
        body = await self.read_json(request)
        if body is None:
            return self._err(request, 400, "request body must be a JSON object")
        url = body.get("url")
        if not isinstance(url, str) or not url:
            return self._err(request, 422, "url is required")
        for task in self.tasks.values():
            if url in task.result_urls:
                token = secrets.token_urlsafe(12)
                name = url.rsplit("/", 1)[1]
                self._downloads[token] = (task.task_id, name, time.time() + self.download_url_ttl)
                return self._ok(request, f"{self.url}/download/{token}/{name}")
        return self._err(request, 422, "url is not a file generated by this account")

    async def _serve_download(self, request: web.Request) -> web.Response:
        entry = self._downloads.get(request.match_info["token"])
        if entry is None or entry[1] != request.match_info["name"]:
            return web.Response(status=404, text="not found")
        task_id, name, expires = entry
        if time.time() > expires:
            return web.Response(status=403, text="link expired")
        stored = self.result_file(task_id, name)
        assert stored is not None
        return web.Response(
            body=stored[0],
            content_type=stored[1],
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    # ------------------------------------------------------------------ account
    async def _credit(self, request: web.Request) -> web.Response:
        return self._ok(request, _num_out(self.credits))

    # ------------------------------------------------------------------ uploads
    def _stored(
        self,
        request: web.Request,
        method: Literal["stream", "base64", "url"],
        data: bytes,
        upload_path: object,
        file_name: object,
        declared_mime: str | None,
    ) -> web.Response:
        if not isinstance(upload_path, str) or not upload_path.strip("/"):
            return self._err(request, 400, "uploadPath is required")
        try:
            with Image.open(io.BytesIO(data)) as img:
                mime: str | None = Image.MIME.get(str(img.format))
        except (OSError, ValueError, Image.DecompressionBombError):
            mime = None
        if file_name in (None, ""):
            ext = mimetypes.guess_extension(mime or declared_mime or "") or ".bin"
            file_name = f"{uuid.uuid4().hex}{ext}"
        if not isinstance(file_name, str) or "/" in file_name:
            return self._err(request, 400, "fileName must be a plain file name")
        mime = (
            mime
            or (declared_mime if declared_mime not in (None, "application/octet-stream") else None)
            or mimetypes.guess_type(file_name)[0]
            or "application/octet-stream"
        )
        file_path = f"{upload_path.strip('/')}/{file_name}"
        uploaded_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        rec = FakeUpload(
            method=method,
            upload_path=upload_path,
            file_name=file_name,
            file_path=file_path,
            data=data,
            mime_type=mime,
            download_url=f"{self.url}/files/{quote(file_path)}",
            uploaded_at=uploaded_at,
        )
        self.uploads.append(rec)
        self.files[file_path] = rec
        answer = {
            "fileName": rec.file_name,
            "filePath": rec.file_path,
            "downloadUrl": rec.download_url,
            "fileSize": len(data),
            "mimeType": rec.mime_type,
            "uploadedAt": rec.uploaded_at,
        }
        return web.json_response(
            {"success": True, "code": 200, "msg": "File uploaded successfully", "data": answer}
        )

    async def _upload_stream(self, request: web.Request) -> web.Response:
        if not request.content_type.startswith("multipart/"):
            return self._err(request, 400, "multipart/form-data body required")
        form = await request.post()
        file = form.get("file")
        if not isinstance(file, web.FileField):
            return self._err(request, 400, "file is required")
        data = file.file.read()
        return self._stored(
            request, "stream", data, form.get("uploadPath"), form.get("fileName"), file.content_type
        )

    async def _upload_base64(self, request: web.Request) -> web.Response:
        body = await self.read_json(request)
        if body is None:
            return self._err(request, 400, "request body must be a JSON object")
        raw = body.get("base64Data")
        if not isinstance(raw, str) or not raw:
            return self._err(request, 400, "base64Data is required")
        declared = None
        match = re.match(r"^data:([\w.+-]+/[\w.+-]+)?(;[^,]*)?;base64,", raw)
        if match:
            declared, raw = match.group(1), raw[match.end() :]
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return self._err(request, 400, "base64Data is not valid base64")
        return self._stored(
            request, "base64", data, body.get("uploadPath"), body.get("fileName"), declared
        )

    async def _upload_url(self, request: web.Request) -> web.Response:
        body = await self.read_json(request)
        if body is None:
            return self._err(request, 400, "request body must be a JSON object")
        file_url = body.get("fileUrl")
        if not _is_url(file_url):
            return self._err(request, 400, "fileUrl must be an http(s) URL")
        assert isinstance(file_url, str)
        try:
            data = await self.fetch(file_url, max_bytes=100 * MB, time_limit=30.0)
        except InputError as exc:
            return self._err(request, 400, f"failed to download fileUrl: {exc.message}")
        return self._stored(
            request, "url", data, body.get("uploadPath"), body.get("fileName"), None
        )

    async def _serve_file(self, request: web.Request) -> web.Response:
        rec = self.files.get(request.match_info["path"])
        if rec is None:
            return web.Response(status=404, text="not found")
        return web.Response(body=rec.data, content_type=rec.mime_type)
