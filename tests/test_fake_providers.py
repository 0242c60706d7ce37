"""Self-tests of the fake provider servers against the API documents in /work/shared/api-docs."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.docs_examples import (
    APIKLEY_CREATED,
    APIKLEY_REQUEST,
    CREDIT_ANSWER,
    GPT4O_CREATED,
    GPT4O_DOWNLOAD_ANSWER,
    GPT4O_FAILURE_CALLBACK,
    GPT4O_RECORD_DONE,
    GPT4O_RECORD_RUNNING,
    GPT4O_REQUEST_MASK,
    GPT4O_REQUEST_T2I,
    GPT4O_REQUEST_VARIANTS,
    GPT4O_SUCCESS_CALLBACK,
    JOBS_CREATED,
    JOBS_RECORD,
    JOBS_REQUEST,
    ODKKK_CREATED,
    ODKKK_ERRORS,
    PLAYGROUND_CREATED,
    PLAYGROUND_FAILURE_CALLBACK,
    PLAYGROUND_RECORD,
    PLAYGROUND_REQUEST,
    PLAYGROUND_SUCCESS_CALLBACK,
)
from tests.fakes.images import (
    image_info,
    make_gif,
    make_jpeg,
    make_mask_png,
    make_noise_png,
    make_png,
    make_webp,
    pixel,
)
from tests.fakes.kie import FakeKie
from tests.fakes.odkkk import FakeOdkkk

KIE_KEY = "kie-test-key"
ODKKK_KEY = "odkkk-test-key"
KIE_AUTH = {"Authorization": f"Bearer {KIE_KEY}"}
ODKKK_AUTH = {"Authorization": f"Bearer {ODKKK_KEY}"}
SHORT = (0.01, 0.02, 0.04)


def assert_shape(
    example: Any, actual: Any, *, extra: frozenset[str] = frozenset(), path: str = ""
) -> None:
    """Every key of the doc example is in `actual` with the same JSON type (a null in the
    example matches anything); keys beyond the example must be listed in `extra`."""
    where = path or "$"
    if example is None:
        return
    assert actual is not None, f"{where}: null, the document shows {example!r}"
    if isinstance(example, dict):
        assert isinstance(actual, dict), f"{where}: expected object, got {actual!r}"
        for key, value in example.items():
            sub = f"{path}.{key}" if path else key
            assert key in actual, f"{sub} missing"
            assert_shape(value, actual[key], extra=extra, path=sub)
        unexpected = {f"{path}.{k}" if path else k for k in actual} - {
            f"{path}.{k}" if path else k for k in example
        }
        assert unexpected <= extra, f"{where}: undocumented keys {sorted(unexpected - extra)}"
    elif isinstance(example, list):
        assert isinstance(actual, list), f"{where}: expected array, got {actual!r}"
        for item in actual if example else []:
            assert_shape(example[0], item, extra=extra, path=f"{path}[]")
    elif isinstance(example, bool):
        assert isinstance(actual, bool), f"{where}: expected boolean, got {actual!r}"
    elif isinstance(example, int):
        assert isinstance(actual, int) and not isinstance(actual, bool), f"{where}: {actual!r}"
    elif isinstance(example, float):
        assert isinstance(actual, int | float) and not isinstance(actual, bool), where
    else:
        assert isinstance(actual, type(example)), f"{where}: expected {type(example)}"


# ----------------------------------------------------------------------------------------
# A local site: serves images and receives callbacks.
# ----------------------------------------------------------------------------------------
@dataclass
class Received:
    path: str
    body: Any
    headers: dict[str, str]


class Site:
    """Serves `/img/{name}` and records POST `/cb/{name}` (answering `cb_statuses` first)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.received: list[Received] = []
        self.cb_statuses: deque[int] = deque()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/img/{name}", self._img)
        app.router.add_post("/cb/{name}", self._cb)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def add(self, name: str, data: bytes, content_type: str = "image/jpeg") -> str:
        self.files[name] = (data, content_type)
        return f"{self.url}/img/{name}"

    async def _img(self, request: web.Request) -> web.Response:
        item = self.files.get(request.match_info["name"])
        if item is None:
            return web.Response(status=404)
        return web.Response(body=item[0], content_type=item[1])

    async def _cb(self, request: web.Request) -> web.Response:
        self.received.append(Received(request.path, await request.json(), dict(request.headers)))
        return web.Response(status=self.cb_statuses.popleft() if self.cb_statuses else 200)


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    s = Site()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def kie() -> AsyncIterator[FakeKie]:
    async with FakeKie(task_delay=0.02, callback_backoff=SHORT) as fake:
        yield fake


@pytest.fixture
async def odkkk(site: Site) -> AsyncIterator[FakeOdkkk]:
    async with FakeOdkkk(task_delay=0.02, callback_backoff=SHORT) as fake:
        fake.url_rewrites["https://bot.example"] = site.url
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    auth: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, Any]:
    async with http.request(method, url, headers=auth or KIE_AUTH, **kwargs) as resp:
        return resp.status, await resp.json()


async def download(http: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with http.get(url) as resp:
        return resp.status, await resp.read()


def qwen(image_url: str, **extra: Any) -> dict[str, Any]:
    return {"prompt": "make it blue", "image_url": image_url, **extra}


async def poll(
    http: aiohttp.ClientSession, url: str, done: Any, *, auth: dict[str, str] | None = None
) -> list[Any]:
    """GET `url` every 5 ms until `done(body)`; returns every body seen (deadline 5 s)."""
    seen: list[Any] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        _, body = await call(http, "GET", url, auth=auth)
        seen.append(body)
        if done(body):
            return seen
        await asyncio.sleep(0.005)
    raise AssertionError(f"polling {url} timed out; last {seen[-1:]}")


# ----------------------------------------------------------------------------------------
# Every fake
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make_fake", "code"),
    [
        pytest.param(lambda: FakeKie(), 455, id="kie-455-is-apikley-only"),
        pytest.param(lambda: FakeKie("k", flavor="apikley"), 433, id="apikley-433-is-kie-only"),
        pytest.param(lambda: FakeOdkkk(), 418, id="odkkk-418"),
    ],
)
def test_only_documented_errors_can_be_injected(
    make_fake: Callable[[], FakeKie | FakeOdkkk], code: int
) -> None:
    fake = make_fake()
    with pytest.raises(ValueError, match=str(code)):
        if isinstance(fake, FakeOdkkk):
            fake.fail_next(code)
        else:
            fake.fail_next("/createTask", code)


# ----------------------------------------------------------------------------------------
# Jobs API
# ----------------------------------------------------------------------------------------
async def test_jobs_create_callback_matches_doc(
    kie: FakeKie, site: Site, http: aiohttp.ClientSession
) -> None:
    photo = make_jpeg(40, 30, (10, 200, 30))
    body = {
        "model": "qwen/image-edit",
        "callBackUrl": f"{site.url}/cb/jobs",
        "input": qwen(site.add("p.jpg", photo), num_images="2", output_format="jpeg"),
    }
    status, answer = await call(http, "POST", f"{kie.url}/api/v1/jobs/createTask", json=body)
    assert status == 200
    assert_shape(JOBS_CREATED, answer)
    task_id = answer["data"]["taskId"]
    assert re.fullmatch(r"[0-9a-f]{32}", task_id)

    attempts = await kie.wait_callbacks(1)
    assert attempts[0].ok and len(site.received) == 1
    cb = site.received[0].body
    assert cb["code"] == 200 and cb["data"]["state"] == "success" and "msg" in cb
    assert_shape(
        PLAYGROUND_SUCCESS_CALLBACK, cb, extra=frozenset({"data.failCode", "data.failMsg"})
    )
    assert json.loads(cb["data"]["param"]) == body
    assert cb["data"]["consumeCredits"] == 4 and cb["data"]["remainedCredits"] == 996
    urls = json.loads(cb["data"]["resultJson"])["resultUrls"]
    assert len(urls) == 2
    for url in urls:
        status, data = await download(http, url)
        assert status == 200 and image_info(data) == ("JPEG", (40, 30))
    task = kie.tasks[task_id]
    assert task.inputs == [photo]
    assert pixel(task.results[0])[1] < 100  # inverted green
    assert kie.requests == [("POST", "/api/v1/jobs/createTask")]

    _, record = await call(http, "GET", f"{kie.url}/api/v1/jobs/recordInfo?taskId={task_id}")
    assert_shape(JOBS_RECORD, record, extra=frozenset({"data.updateTime"}))
    assert record["data"]["failCode"] is None and isinstance(record["data"]["costTime"], int)
    _, credit = await call(http, "GET", f"{kie.url}/api/v1/chat/credit")
    assert_shape(CREDIT_ANSWER, credit)
    assert credit["data"] == 996


async def test_jobs_record_progression(
    kie: FakeKie, site: Site, http: aiohttp.ClientSession
) -> None:
    kie.next_outcome(hold=True)
    body = {"model": "qwen/image-edit", "input": qwen(site.add("p.png", make_png(), "image/png"))}
    _, answer = await call(http, "POST", f"{kie.url}/api/v1/jobs/createTask", json=body)
    task_id = answer["data"]["taskId"]
    url = f"{kie.url}/api/v1/jobs/recordInfo?taskId={task_id}"
    seen = await poll(http, url, lambda b: b["data"]["state"] == "generating")
    assert_shape(JOBS_RECORD, seen[0], extra=frozenset({"data.updateTime"}))
    assert seen[0]["data"]["resultJson"] == "" and seen[0]["data"]["completeTime"] is None
    kie.release(task_id)
    seen += await poll(http, url, lambda b: b["data"]["state"] in ("success", "fail"))
    states = [b["data"]["state"] for b in seen]
    order = ["waiting", "queuing", "generating", "success"]
    assert states == sorted(states, key=order.index) and states[-1] == "success"
    assert kie.tasks[task_id].history == order
    assert kie.callbacks == []  # no callBackUrl, no callback


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"num_images": "5"}, "num_images"),
        ({"num_images": 2}, "num_images"),
        ({"num_inference_steps": 50}, "num_inference_steps"),
        ({"num_inference_steps": 1}, "num_inference_steps"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({"negative_prompt": "x" * 501}, "negative_prompt"),
        ({"acceleration": "turbo"}, "acceleration"),
        ({"image_size": "huge"}, "image_size"),
        ({"guidance_scale": 20.5}, "guidance_scale"),
        ({"seed": 1.5}, "seed"),
        ({"sync_mode": "no"}, "sync_mode"),
        ({"enable_safety_checker": 1}, "enable_safety_checker"),
        ({"output_format": "webp"}, "output_format"),
        ({"image_url": None}, "image_url"),
        ({"prompt": None}, "prompt"),
    ],
)
async def test_jobs_validation_422(
    kie: FakeKie, http: aiohttp.ClientSession, change: dict[str, Any], param: str
) -> None:
    inp = {**qwen("http://127.0.0.1:9/x.jpg"), **change}
    inp = {k: v for k, v in inp.items() if v is not None}
    status, answer = await call(
        http,
        "POST",
        f"{kie.url}/api/v1/jobs/createTask",
        json={"model": "qwen/image-edit", "input": inp},
    )
    assert status == 200 and answer["code"] == 422 and param in answer["msg"]
    assert kie.tasks == {}


async def test_jobs_unknown_model_and_error_styles(
    kie: FakeKie, http: aiohttp.ClientSession
) -> None:
    url = f"{kie.url}/api/v1/jobs/createTask"
    _, answer = await call(http, "POST", url, json={"model": "qwen/nope", "input": {}})
    assert answer["code"] == 422 and "model" in answer["msg"]
    status, answer = await call(http, "POST", url, auth={"Authorization": "Bearer wrong"}, json={})
    assert (status, answer["code"]) == (200, 401)
    kie.error_http_status = True
    status, answer = await call(http, "POST", url, auth={"Authorization": "Bearer wrong"}, json={})
    assert (status, answer["code"]) == (401, 401)
    kie.error_http_status = False

    kie.fail_next("createTask", 500, "boom", times=2)
    kie.fail_next("recordInfo", 429, http_status=True)
    for _ in range(2):
        status, answer = await call(http, "POST", url, json={})
        assert (status, answer["code"], answer["msg"]) == (200, 500, "boom")
    status, answer = await call(http, "GET", f"{kie.url}/api/v1/jobs/recordInfo?taskId=x")
    assert (status, answer["code"]) == (429, 429)
    _, answer = await call(http, "GET", f"{kie.url}/api/v1/jobs/recordInfo?taskId=x")
    assert answer["code"] == 404
    assert len(kie.requests) == 7


async def test_jobs_unreachable_and_bad_inputs_fail(
    kie: FakeKie, site: Site, http: aiohttp.ClientSession
) -> None:
    cases = {
        f"{site.url}/img/missing.jpg": "451",
        "http://127.0.0.1:9/closed.jpg": "451",
        site.add("t.txt", b"hello, not an image", "text/plain"): "422",
        site.add("g.gif", make_gif(), "image/gif"): "422",
        site.add("big.png", make_noise_png(1900, 1900), "image/png"): "422",  # > 10 MB
    }
    for image_url, fail_code in cases.items():
        body = {
            "model": "qwen/image-edit",
            "callBackUrl": f"{site.url}/cb/fail",
            "input": qwen(image_url),
        }
        _, answer = await call(http, "POST", f"{kie.url}/api/v1/jobs/createTask", json=body)
        task = await kie.wait_task(answer["data"]["taskId"])
        assert (task.state, task.fail_code) == ("fail", fail_code)
        assert task.fail_msg and task.fail_msg.startswith("image download failed: ")
        assert "generating" not in task.history
    await kie.wait_callbacks(len(cases))
    for received in site.received:
        assert received.body["code"] == 501 and received.body["data"]["state"] == "fail"
        assert_shape(PLAYGROUND_FAILURE_CALLBACK, received.body)
        assert received.body["data"]["consumeCredits"] == 0
    assert kie.credits == 1000


async def test_hmac_signature_and_url_rewrites(site: Site, http: aiohttp.ClientSession) -> None:
    async with FakeKie(hmac_key="s3cret", task_delay=0.01) as kie:
        kie.url_rewrites["https://bot.example"] = site.url
        photo = make_webp(20, 20)
        site.add("w.webp", photo, "image/webp")
        body = {
            "model": "qwen/image-edit",
            "callBackUrl": "https://bot.example/cb/signed",
            "input": qwen("https://bot.example/img/w.webp"),
        }
        _, answer = await call(http, "POST", f"{kie.url}/api/v1/jobs/createTask", json=body)
        await kie.wait_callbacks(1)
    task_id = answer["data"]["taskId"]
    assert kie.tasks[task_id].inputs == [photo]
    headers = site.received[0].headers
    ts = headers["X-Webhook-Timestamp"]
    assert abs(int(ts) - time.time()) < 60
    mac = hmac.new(b"s3cret", f"{task_id}.{ts}".encode(), hashlib.sha256).digest()
    assert hmac.compare_digest(headers["X-Webhook-Signature"], base64.b64encode(mac).decode())
    assert site.received[0].body["data"]["taskId"] == task_id


async def test_callback_retries_duplicates_and_silence(
    kie: FakeKie, site: Site, http: aiohttp.ClientSession
) -> None:
    image_url = site.add("p.jpg", make_jpeg())
    site.cb_statuses.extend([500, 503])
    kie.next_outcome()
    kie.next_outcome(callbacks=2)
    kie.next_outcome(callbacks=0)
    ids = []
    for name in ("retry", "dup", "none"):
        body = {
            "model": "qwen/image-edit",
            "callBackUrl": f"{site.url}/cb/{name}",
            "input": qwen(image_url),
        }
        _, answer = await call(http, "POST", f"{kie.url}/api/v1/jobs/createTask", json=body)
        ids.append(answer["data"]["taskId"])
        await kie.wait_task(ids[-1])
    await kie.wait_callbacks(3, task_id=ids[0])
    await kie.wait_callbacks(2, task_id=ids[1])
    assert [c.status for c in kie.callbacks if c.task_id == ids[0]] == [500, 503, 200]
    assert [c.attempt for c in kie.callbacks if c.task_id == ids[0]] == [1, 2, 3]
    assert [c.status for c in kie.callbacks if c.task_id == ids[1]] == [200, 200]
    assert not [c for c in kie.callbacks if c.task_id == ids[2]]
    # an unreachable receiver: 1 try + 3 retries, all recorded as connection errors
    kie.next_outcome()
    body = {
        "model": "qwen/image-edit",
        "callBackUrl": "http://127.0.0.1:9/cb",
        "input": qwen(image_url),
    }
    _, answer = await call(http, "POST", f"{kie.url}/api/v1/jobs/createTask", json=body)
    attempts = await kie.wait_callbacks(4, task_id=answer["data"]["taskId"])
    assert [a.status for a in attempts] == [None] * 4 and all(a.error for a in attempts)


async def test_other_jobs_models(kie: FakeKie, site: Site, http: aiohttp.ClientSession) -> None:
    urls = [site.add("a.jpg", make_jpeg(30, 20)), site.add("b.png", make_png(), "image/png")]
    url = f"{kie.url}/api/v1/jobs/createTask"
    ok = [
        {
            "model": "google/nano-banana-edit",
            "input": {
                "prompt": "p",
                "image_urls": urls,
                "output_format": "jpeg",
                "aspect_ratio": "16:9",
            },
        },
        {
            "model": "seedream/4.5-edit",
            "input": {"prompt": "p", "image_urls": urls, "aspect_ratio": "1:1", "quality": "high"},
        },
    ]
    for body in ok:
        _, answer = await call(http, "POST", url, json=body)
        task = await kie.wait_task(answer["data"]["taskId"])
        assert task.state == "success" and len(task.inputs) == 2 and len(task.result_urls) == 1
    bad = [
        (
            {"model": "google/nano-banana-edit", "input": {"prompt": "p", "image_urls": urls * 6}},
            "image_urls",
        ),
        (
            {
                "model": "google/nano-banana-edit",
                "input": {"prompt": "x" * 5001, "image_urls": urls},
            },
            "prompt",
        ),
        (
            {"model": "google/nano-banana-edit", "input": {"prompt": "p", "image_urls": []}},
            "image_urls",
        ),
        (
            {
                "model": "seedream/4.5-edit",
                "input": {"prompt": "p", "image_urls": urls, "quality": "ultra"},
            },
            "quality",
        ),
        ({"model": "seedream/4.5-edit", "input": {"image_urls": urls}}, "prompt"),
    ]
    for body, param in bad:
        _, answer = await call(http, "POST", url, json=body)
        assert answer["code"] == 422 and param in answer["msg"], answer


async def test_doc_request_examples_accepted(
    kie: FakeKie, site: Site, http: aiohttp.ClientSession
) -> None:
    image = make_jpeg()
    kie.url_rewrites["https://file.aiquickdraw.com/custom-page/akr/section-images/"] = (
        f"{site.url}/img/"
    )
    kie.url_rewrites["https://your-domain.com/api/callback"] = f"{site.url}/cb/doc"
    site.add("1755603225969i6j87xnw.jpg", image)
    for path, body in [
        ("/api/v1/jobs/createTask", JOBS_REQUEST),
        ("/api/v1/playground/createTask", PLAYGROUND_REQUEST),
        ("/api/v1/jobs/createTask", APIKLEY_REQUEST),
    ]:
        _, answer = await call(http, "POST", kie.url + path, json=body)
        assert answer["code"] == 200, answer
        task = await kie.wait_task(answer["data"]["taskId"])
        assert task.state == "success" and task.inputs == [image]
    await kie.wait_callbacks(2)


async def test_apikley_flavor(site: Site, http: aiohttp.ClientSession) -> None:
    async with FakeKie("apikley-key", flavor="apikley", task_delay=0.01) as fake:
        auth = {"Authorization": "Bearer apikley-key"}
        body = {"model": "qwen/image-edit", "input": qwen(site.add("p.jpg", make_jpeg()))}
        url = f"{fake.url}/api/v1/jobs/createTask"
        _, answer = await call(http, "POST", url, auth=auth, json=body)
        assert_shape(APIKLEY_CREATED, answer)
        assert re.fullmatch(r"task_qwen_\d{13}", answer["data"]["taskId"])
        for code in (455, 501, 505):
            fake.fail_next("/createTask", code)
            _, err = await call(http, "POST", url, auth=auth, json=body)
            assert err["code"] == code and err["msg"]
        await fake.wait_task(answer["data"]["taskId"])


async def test_rate_limit_and_credits(site: Site, http: aiohttp.ClientSession) -> None:
    async with FakeKie(rate_limit=(2, 10.0), credits=6, task_delay=0.01) as fake:
        body = {"model": "qwen/image-edit", "input": qwen(site.add("p.jpg", make_jpeg()))}
        url = f"{fake.url}/api/v1/jobs/createTask"
        status, answer = await call(http, "POST", url, json=body)
        assert (status, answer["code"]) == (200, 200)
        await fake.wait_task()
        status, answer = await call(http, "POST", url, json=body)
        assert (status, answer["code"]) == (200, 402)  # 2 credits left, a task costs 4
        status, answer = await call(http, "POST", url, json=body)
        assert (status, answer["code"]) == (429, 429)
        _, credit = await call(http, "GET", f"{fake.url}/api/v1/chat/credit")
        assert credit == {"code": 200, "msg": "success", "data": 2}


# ----------------------------------------------------------------------------------------
# Playground
# ----------------------------------------------------------------------------------------
async def test_playground_message_and_failure_code(
    kie: FakeKie, site: Site, http: aiohttp.ClientSession
) -> None:
    body = {
        "model": "qwen/image-edit",
        "callBackUrl": f"{site.url}/cb/play",
        "input": qwen(site.add("p.jpg", make_jpeg())),
    }
    url = f"{kie.url}/api/v1/playground/createTask"
    _, answer = await call(http, "POST", url, json=body)
    assert_shape(PLAYGROUND_CREATED, answer)
    ok_id = answer["data"]["taskId"]
    await kie.wait_callbacks(1)
    assert_shape(PLAYGROUND_SUCCESS_CALLBACK, site.received[0].body)

    kie.next_outcome(fail=("500", "Internal server error"))
    _, answer = await call(http, "POST", url, json=body)
    fail_id = answer["data"]["taskId"]
    await kie.wait_callbacks(2)
    failure = site.received[1].body
    assert_shape(PLAYGROUND_FAILURE_CALLBACK, failure)
    assert failure["code"] == 501 and failure["msg"] == "Playground task failed."
    assert (failure["data"]["failCode"], failure["data"]["failMsg"]) == (
        "500",
        "Internal server error",
    )

    record_url = f"{kie.url}/api/v1/playground/recordInfo?taskId="
    _, record = await call(http, "GET", record_url + ok_id)
    assert_shape(PLAYGROUND_RECORD, record, extra=frozenset({"data.costTime"}))
    assert "msg" not in record and record["message"] == "success"
    _, record = await call(http, "GET", record_url + fail_id)
    assert record["code"] == 200 and record["data"]["state"] == "fail"
    _, missing = await call(http, "GET", record_url + "nope")
    assert missing["code"] == 404 and "message" in missing
    _, cross = await call(http, "GET", f"{kie.url}/api/v1/jobs/recordInfo?taskId={ok_id}")
    assert cross["code"] == 404


# ----------------------------------------------------------------------------------------
# 4o image
# ----------------------------------------------------------------------------------------
async def test_4o_success_mask_and_download_url(
    kie: FakeKie, site: Site, http: aiohttp.ClientSession
) -> None:
    photo, mask = make_jpeg(60, 40), make_mask_png(60, 40)
    kie.refuse_direct_result_fetch = True
    kie.next_outcome(hold=True)
    body = {
        "prompt": "garden",
        "filesUrl": [site.add("o.jpg", photo)],
        "maskUrl": site.add("m.png", mask, "image/png"),
        "size": "3:2",
        "nVariants": 2,
        "isEnhance": False,
        "enableFallback": True,
        "fallbackModel": "FLUX_MAX",
        "callBackUrl": f"{site.url}/cb/4o",
    }
    _, answer = await call(http, "POST", f"{kie.url}/api/v1/gpt4o-image/generate", json=body)
    assert_shape(GPT4O_CREATED, answer)
    task_id = answer["data"]["taskId"]
    record_url = f"{kie.url}/api/v1/gpt4o-image/record-info?taskId={task_id}"
    extra = frozenset(
        {"data.paramJson", "data.errorCode", "data.errorMessage", "data.completeTime"}
    )
    seen = await poll(http, record_url, lambda b: b["data"]["progress"] == "0.50")
    assert_shape(GPT4O_RECORD_RUNNING, seen[-1], extra=extra)
    assert seen[-1]["data"]["successFlag"] == 0
    kie.release(task_id)
    await kie.wait_callbacks(1)
    callback = site.received[0].body
    assert_shape(GPT4O_SUCCESS_CALLBACK, callback, extra=frozenset({"msg"}))
    urls = callback["data"]["info"]["result_urls"]
    assert len(urls) == 2
    _, record = await call(http, "GET", record_url)
    assert_shape(GPT4O_RECORD_DONE, record, extra=extra)
    assert record["data"]["response"]["result_urls"] == urls
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", record["data"]["completeTime"])
    task = kie.tasks[task_id]
    assert task.inputs == [photo] and task.mask == mask

    status, _ = await download(http, urls[0])
    assert status == 403
    _, link = await call(
        http, "POST", f"{kie.url}/api/v1/gpt4o-image/download-url", json={"url": urls[0]}
    )
    assert_shape(GPT4O_DOWNLOAD_ANSWER, link)
    status, data = await download(http, link["data"])
    assert status == 200 and data == task.results[0] and image_info(data) == ("PNG", (60, 40))
    _, bad = await call(
        http, "POST", f"{kie.url}/api/v1/gpt4o-image/download-url", json={"url": "https://x/y.png"}
    )
    assert bad["code"] == 422


async def test_4o_failures_and_validation(
    kie: FakeKie, site: Site, http: aiohttp.ClientSession
) -> None:
    url = f"{kie.url}/api/v1/gpt4o-image/generate"
    cb = f"{site.url}/cb/4o"
    _, answer = await call(
        http,
        "POST",
        url,
        json={
            "prompt": "p",
            "size": "1:1",
            "filesUrl": [f"{site.url}/img/none.jpg"],
            "callBackUrl": cb,
        },
    )
    kie.next_outcome(fail=("400", "Generation failed, please try again or contact support"))
    _, _ = await call(http, "POST", url, json={"prompt": "p", "size": "2:3", "callBackUrl": cb})
    await kie.wait_callbacks(2)
    bodies = sorted((r.body for r in site.received), key=lambda b: b["code"])
    for body in bodies:
        assert_shape(GPT4O_FAILURE_CALLBACK, body)
        assert body["data"] is None
    assert [b["code"] for b in bodies] == [400, 451]
    _, record = await call(
        http, "GET", f"{kie.url}/api/v1/gpt4o-image/record-info?taskId={answer['data']['taskId']}"
    )
    assert record["data"]["successFlag"] == 2 and record["data"]["errorCode"] == 451

    for body, param in [
        ({"size": "1:1"}, "prompt"),
        ({"prompt": "p"}, "size"),
        ({"prompt": "p", "size": "4:3"}, "size"),
        ({"prompt": "p", "size": "1:1", "filesUrl": [cb] * 6}, "filesUrl"),
        ({"prompt": "p", "size": "1:1", "nVariants": 5}, "nVariants"),
        ({"prompt": "p", "size": "1:1", "fallbackModel": "DALLE"}, "fallbackModel"),
        ({"prompt": "p", "size": "1:1", "isEnhance": "yes"}, "isEnhance"),
    ]:
        _, err = await call(http, "POST", url, json=body)
        assert err["code"] == 422 and param in err["msg"], (body, err)


async def test_4o_doc_examples_and_text_to_image(
    kie: FakeKie, site: Site, http: aiohttp.ClientSession
) -> None:
    kie.url_rewrites["https://public-url/"] = f"{site.url}/img/"
    kie.url_rewrites["https://your-domain.com/4o-callback"] = f"{site.url}/cb/4o"
    site.add("original.jpg", make_jpeg())
    site.add("source.jpg", make_jpeg())
    site.add("mask.png", make_mask_png(64, 48), "image/png")
    for example, count in [
        (GPT4O_REQUEST_T2I, 1),
        (GPT4O_REQUEST_MASK, 1),
        (GPT4O_REQUEST_VARIANTS, 3),
    ]:
        _, answer = await call(http, "POST", f"{kie.url}/api/v1/gpt4o-image/generate", json=example)
        task = await kie.wait_task(answer["data"]["taskId"])
        assert task.state == "success" and len(task.results) == count
    assert image_info(kie.tasks[next(iter(kie.tasks))].results[0]) == ("PNG", (64, 64))
    await kie.wait_callbacks(3)


# ----------------------------------------------------------------------------------------
# Upload API
# ----------------------------------------------------------------------------------------
async def test_upload_api(kie: FakeKie, site: Site, http: aiohttp.ClientSession) -> None:
    jpeg, png = make_jpeg(10, 10), make_png(12, 12)
    form = aiohttp.FormData()
    form.add_field("file", jpeg, filename="photo.jpg", content_type="image/jpeg")
    form.add_field("uploadPath", "bot/in")
    form.add_field("fileName", "a.jpg")
    _, stream = await call(http, "POST", f"{kie.url}/api/file-stream-upload", data=form)
    assert stream["success"] is True and stream["code"] == 200 and stream["msg"]
    data = stream["data"]
    assert set(data) == {
        "fileName",
        "filePath",
        "downloadUrl",
        "fileSize",
        "mimeType",
        "uploadedAt",
    }
    assert (data["fileName"], data["filePath"], data["fileSize"], data["mimeType"]) == (
        "a.jpg",
        "bot/in/a.jpg",
        len(jpeg),
        "image/jpeg",
    )
    assert (await download(http, data["downloadUrl"])) == (200, jpeg)

    b64 = {
        "base64Data": "data:image/png;base64," + base64.b64encode(png).decode(),
        "uploadPath": "bot/in",
        "fileName": "a.jpg",
    }
    _, answer = await call(http, "POST", f"{kie.url}/api/file-base64-upload", json=b64)
    assert answer["data"]["downloadUrl"] == data["downloadUrl"]  # same name: overwritten
    assert (await download(http, data["downloadUrl"])) == (200, png)
    assert answer["data"]["mimeType"] == "image/png"
    plain = {"base64Data": base64.b64encode(jpeg).decode(), "uploadPath": "x"}
    _, answer = await call(http, "POST", f"{kie.url}/api/file-base64-upload", json=plain)
    assert answer["data"]["fileName"].endswith(".jpg")

    by_url = {"fileUrl": site.add("u.jpg", jpeg), "uploadPath": "bot/url", "fileName": "u.jpg"}
    _, answer = await call(http, "POST", f"{kie.url}/api/file-url-upload", json=by_url)
    assert answer["success"] and (await download(http, answer["data"]["downloadUrl"])) == (
        200,
        jpeg,
    )
    _, bad = await call(
        http,
        "POST",
        f"{kie.url}/api/file-url-upload",
        json={**by_url, "fileUrl": f"{site.url}/img/none"},
    )
    assert bad["success"] is False and bad["code"] == 400
    _, bad = await call(
        http,
        "POST",
        f"{kie.url}/api/file-base64-upload",
        json={"base64Data": "%%%", "uploadPath": "x"},
    )
    assert bad["code"] == 400
    status, unauth = await call(
        http, "POST", f"{kie.url}/api/file-url-upload", auth={"X": "y"}, json=by_url
    )
    assert status == 200 and unauth["success"] is False and unauth["code"] == 401
    assert [u.method for u in kie.uploads] == ["stream", "base64", "base64", "url"]

    # an uploaded file works as image_url
    body = {"model": "qwen/image-edit", "input": qwen(answer["data"]["downloadUrl"])}
    _, created = await call(http, "POST", f"{kie.url}/api/v1/jobs/createTask", json=body)
    assert (await kie.wait_task(created["data"]["taskId"])).inputs == [jpeg]


# ----------------------------------------------------------------------------------------
# odkkk
# ----------------------------------------------------------------------------------------
async def test_odkkk_happy_path(odkkk: FakeOdkkk, site: Site, http: aiohttp.ClientSession) -> None:
    photo = make_jpeg(512, 400)
    odkkk.next_outcome(hold=True)
    body = {
        "model": "qwen-image-edit",
        "prompt": "Replace the background of this image",
        "image_urls": [site.add("o.jpg", photo)],
        "callback_url": "https://bot.example/cb/odkkk",
    }
    status, answer = await call(
        http, "POST", f"{odkkk.url}/v1/images/generations", auth=ODKKK_AUTH, json=body
    )
    assert status == 200
    assert_shape(ODKKK_CREATED, answer)
    assert answer["status"] == "pending" and answer["progress"] == 0
    assert re.fullmatch(r"task-unified-\d{10}-[a-z0-9]{8}", answer["id"])
    query = f"{odkkk.url}/v1/tasks/{answer['id']}"
    seen = await poll(http, query, lambda b: b["status"] == "processing", auth=ODKKK_AUTH)
    assert seen[-1]["progress"] == 50
    odkkk.release(answer["id"])
    seen = await poll(http, query, lambda b: b["status"] == "completed", auth=ODKKK_AUTH)
    final = seen[-1]
    assert_shape(ODKKK_CREATED, final, extra=frozenset({"data"}))
    assert final["progress"] == 100 and len(final["data"]) == 1
    status, data = await download(http, final["data"][0]["url"])
    assert status == 200 and image_info(data) == ("PNG", (512, 400))
    await odkkk.wait_callbacks(1)
    assert site.received[0].body == final
    assert odkkk.callbacks[0].sent_url == f"{site.url}/cb/odkkk"
    assert odkkk.tasks[answer["id"]].inputs == [photo]


async def test_odkkk_rejections(odkkk: FakeOdkkk, site: Site, http: aiohttp.ClientSession) -> None:
    ok_url = site.add("ok.jpg", make_jpeg(400, 400))
    url = f"{odkkk.url}/v1/images/generations"
    base = {"model": "qwen-image-edit", "prompt": "p", "image_urls": [ok_url]}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"image_urls": [ok_url] * 4}, 400, "image_urls"),
        ({"image_urls": [site.add("small.jpg", make_jpeg(200, 200))]}, 400, "image_urls"),
        (
            {"image_urls": [site.add("big.png", make_png(3100, 400), "image/png")]},
            400,
            "image_urls",
        ),
        ({"image_urls": [f"{site.url}/img/missing.jpg"]}, 400, "image_urls"),
        ({"image_urls": []}, 400, "image_urls"),
        ({"callback_url": "http://bot.example/cb"}, 400, "callback_url"),
        ({"callback_url": "https://127.0.0.1/cb"}, 400, "callback_url"),
        ({"callback_url": "https://bot.example/" + "x" * 2048}, 400, "callback_url"),
        ({"prompt": "x" * 2001}, 400, "prompt"),
        ({"model": "dall-e-3"}, 404, "model"),
    ]
    for change, code, param in cases:
        status, answer = await call(http, "POST", url, auth=ODKKK_AUTH, json={**base, **change})
        assert status == code, (change, answer)
        assert answer["error"]["code"] == code and answer["error"]["param"] == param
        assert answer["error"]["type"] in ("invalid_request_error", "not_found_error")
    assert answer["error"]["fallback_suggestion"] == "qwen-image-edit"
    assert_shape(ODKKK_ERRORS[404], answer)
    status, answer = await call(http, "POST", url, auth={"Authorization": "Bearer no"}, json=base)
    assert (status, answer) == (401, ODKKK_ERRORS[401])
    assert odkkk.tasks == {}
    # larger-than-min images in the other accepted formats pass
    for name, data in [("w.webp", make_webp(384, 3072)), ("p.png", make_png(3072, 384))]:
        status, _ = await call(
            http, "POST", url, auth=ODKKK_AUTH, json={**base, "image_urls": [site.add(name, data)]}
        )
        assert status == 200


async def test_odkkk_injected_errors_failure_and_retries(
    odkkk: FakeOdkkk, site: Site, http: aiohttp.ClientSession
) -> None:
    url = f"{odkkk.url}/v1/images/generations"
    body = {
        "model": "qwen-image-edit",
        "prompt": "p",
        "image_urls": [site.add("ok.png", make_png(400, 400), "image/png")],
        "callback_url": "https://bot.example/cb/o",
    }
    for code, example in ODKKK_ERRORS.items():
        odkkk.fail_next(code)
        status, answer = await call(http, "POST", url, auth=ODKKK_AUTH, json=body)
        assert (status, answer) == (code, example)

    odkkk.next_outcome(fail=("500", "upstream exploded"))
    site.cb_statuses.extend([500, 500])
    _, answer = await call(http, "POST", url, auth=ODKKK_AUTH, json=body)
    attempts = await odkkk.wait_callbacks(3)
    assert [a.status for a in attempts] == [500, 500, 200]
    _, final = await call(http, "GET", f"{odkkk.url}/v1/tasks/{answer['id']}", auth=ODKKK_AUTH)
    assert final["status"] == "failed" and final["error"] == {
        "code": 500,
        "message": "upstream exploded",
    }
    assert site.received[-1].body == final
    odkkk.fail_next(503, path_suffix="")
    status, answer = await call(
        http, "GET", f"{odkkk.url}/v1/tasks/{answer['id']}", auth=ODKKK_AUTH
    )
    assert status == 503
    status, answer = await call(http, "GET", f"{odkkk.url}/v1/tasks/unknown", auth=ODKKK_AUTH)
    assert status == 404 and answer["error"]["type"] == "not_found_error"


async def test_odkkk_custom_query_path_and_rate_limit(
    site: Site, http: aiohttp.ClientSession
) -> None:
    async with FakeOdkkk(
        query_path="/v1/task/{id}/detail", task_delay=0.01, rate_limit=(1, 10.0)
    ) as fake:
        body = {
            "model": "qwen-image-edit",
            "prompt": "p",
            "image_urls": [site.add("ok.jpg", make_jpeg(400, 400))],
        }
        url = f"{fake.url}/v1/images/generations"
        _, answer = await call(http, "POST", url, auth=ODKKK_AUTH, json=body)
        await fake.wait_task(answer["id"])
        _, final = await call(
            http, "GET", f"{fake.url}/v1/task/{answer['id']}/detail", auth=ODKKK_AUTH
        )
        assert final["status"] == "completed"
        status, limited = await call(http, "POST", url, auth=ODKKK_AUTH, json=body)
        assert (status, limited) == (429, ODKKK_ERRORS[429])
        assert fake.requests == [
            ("POST", "/v1/images/generations"),
            ("GET", f"/v1/task/{answer['id']}/detail"),
            ("POST", "/v1/images/generations"),
        ]
