"""KIE 4o Image mapping, checked against kie-4o-image.md's own example bodies."""

from __future__ import annotations

import asyncio
import base64
import time

import aiohttp
import pytest

from bot.providers.base import TaskState, TaskStatus
from bot.providers.catalog import models_for
from bot.providers.http import HttpProvider
from bot.providers.kie import signature
from bot.providers.kie4o import (
    build_4o_body,
    kie4o_api,
    kie4o_error,
    parse_4o_callback,
    parse_4o_record,
    parse_download_url,
)
from bot.providers.transport import Transport
from domain.errors import (
    CallbackRejected,
    ValidationRejected,
)
from tests.docs_examples import (
    GPT4O_DOWNLOAD_ANSWER,
    GPT4O_FAILURE_CALLBACK,
    GPT4O_RECORD_DONE,
    GPT4O_RECORD_RUNNING,
    GPT4O_SUCCESS_CALLBACK,
)
from tests.fakes.images import make_jpeg, make_png
from tests.fakes.kie import FakeKie
from tests.test_providers_contract import GPT4O

MODEL = models_for("kie-4o")["gpt-4o-image"]


_request = GPT4O.request


def test_model_spec() -> None:
    assert MODEL.provider == "kie-4o" and MODEL.supports_mask and MODEL.max_images == 5


def test_parse_documented_answers() -> None:
    running = parse_4o_record(GPT4O_RECORD_RUNNING)
    assert running.state is TaskState.RUNNING and running.progress == 0.5
    assert running.task_id == "task_4o_abc123"
    done = parse_4o_record(GPT4O_RECORD_DONE)
    assert done.state is TaskState.SUCCEEDED
    assert done.result_urls == ("https://example.com/generated-image.png",)
    assert parse_download_url(GPT4O_DOWNLOAD_ANSWER) == GPT4O_DOWNLOAD_ANSWER["data"]


def test_parse_documented_callbacks() -> None:
    ok = parse_4o_callback(GPT4O_SUCCESS_CALLBACK)
    assert ok.state is TaskState.SUCCEEDED and ok.result_urls == ("https://.../image.png",)
    assert ok.task_id == "task_4o_abc123"
    failed = parse_4o_callback(GPT4O_FAILURE_CALLBACK)
    assert failed.state is TaskState.FAILED and failed.task_id is None
    assert failed.error_code == "400"
    assert failed.error_message == "Generation failed, please try again or contact support"


@pytest.mark.parametrize("code", [400, 451, 500])
def test_documented_failure_callback_codes(code: int) -> None:
    body = {**GPT4O_FAILURE_CALLBACK, "code": code}
    assert parse_4o_callback(body).error_code == str(code)


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ('size must be one of "1:1", "3:2", "2:3"', "size"),
        ("maskUrl requires filesUrl", "maskUrl"),
        ("fallbackModel must be one of FLUX_MAX, GPT_IMAGE_1", "fallbackModel"),
        ("nVariants must be between 1 and 4", "nVariants"),
    ],
)
def test_validation_errors_name_the_4o_parameter(message: str, param: str) -> None:
    error = kie4o_error(200, {"code": 422, "msg": message})
    assert isinstance(error, ValidationRejected) and error.param == param


def test_mask_edit_asks_for_one_variant() -> None:
    assert build_4o_body(_request())["nVariants"] == 1


def test_create_body_carries_every_parameter() -> None:
    params = {
        "num_images": "3",
        "size": "2:3",
        "is_enhance": True,
        "enable_fallback": True,
        "fallback_model": "FLUX_MAX",
    }
    body = build_4o_body(_request(params=params, mask_url=None, callback_url=None))
    assert body["nVariants"] == 3 and body["size"] == "2:3"
    assert body["isEnhance"] is True and body["enableFallback"] is True
    assert body["fallbackModel"] == "FLUX_MAX"
    assert "maskUrl" not in body and "callBackUrl" not in body


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1000, 1000), "1:1"),
        ((1200, 800), "3:2"),
        ((800, 1200), "2:3"),
        ((1920, 1080), "3:2"),
        ((1000, 1100), "1:1"),
    ],
)
def test_size_closest_to_the_photo(size: tuple[int, int], expected: str) -> None:
    assert build_4o_body(_request(image_sizes=(size,)))["size"] == expected


async def test_callback_signature_covers_the_edits_task_when_the_body_names_none() -> None:
    async with aiohttp.ClientSession() as session:
        provider = HttpProvider(
            name="kie-4o",
            api=kie4o_api(),
            transport=Transport(session),
            base_url="https://kie",
            api_key="k",
            models=models_for("kie-4o"),
            hmac_key="secret",
        )
    ts = str(int(time.time()))
    headers = {"X-Webhook-Timestamp": ts, "X-Webhook-Signature": signature("secret", "t1", ts)}
    status = provider.parse_callback(GPT4O_FAILURE_CALLBACK, headers, task_id="t1")
    assert status.state is TaskState.FAILED
    with pytest.raises(CallbackRejected):
        provider.parse_callback(GPT4O_FAILURE_CALLBACK, headers, task_id="t2")
    with pytest.raises(CallbackRejected):
        provider.parse_callback(GPT4O_FAILURE_CALLBACK, headers)  # task unknown: cannot verify
    with pytest.raises(CallbackRejected):
        provider.parse_callback({"code": 200, "data": {"taskId": "t1"}}, headers)


# The real client against the fake KIE server (real HTTP on loopback).


async def _upload(session: aiohttp.ClientSession, kie: FakeKie, data: bytes, name: str) -> str:
    """Make `data` reachable for the fake through its own upload API."""
    payload = {
        "base64Data": base64.b64encode(data).decode(),
        "uploadPath": "test",
        "fileName": name,
    }
    headers = {"Authorization": f"Bearer {kie.api_key}"}
    async with session.post(
        f"{kie.url}/api/file-base64-upload", json=payload, headers=headers
    ) as resp:
        url: str = (await resp.json())["data"]["downloadUrl"]
        return url


async def _wait_finished(provider: HttpProvider, task_id: str) -> TaskStatus:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status = await provider.status(task_id)
        if status.state.finished:
            return status
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {task_id} never finished")


async def test_client_against_the_fake_with_mask_variants_and_download_url(kie: FakeKie) -> None:
    kie.refuse_direct_result_fetch = True
    async with aiohttp.ClientSession() as session:
        provider = HttpProvider(
            name="kie-4o",
            api=kie4o_api(),
            transport=Transport(session),
            base_url=kie.url,
            api_key=kie.api_key,
            models=models_for("kie-4o"),
        )
        photos = [await _upload(session, kie, make_jpeg(96, 64), f"p{i}.jpg") for i in range(2)]
        mask = await _upload(session, kie, make_png(96, 64, alpha=True), "mask.png")
        params = {
            "num_images": 2,
            "is_enhance": True,
            "enable_fallback": True,
            "fallback_model": "GPT_IMAGE_1",
        }
        request = _request(
            image_urls=tuple(photos),
            image_sizes=((96, 64),) * 2,
            mask_url=mask,
            params=params,
            callback_url=None,
        )
        provider.validate(request)
        task_id = await provider.submit(request)
        status = await _wait_finished(provider, task_id)
        assert status.state is TaskState.SUCCEEDED and len(status.result_urls) == 2
        task = kie.tasks[task_id]
        assert task.mask is not None and len(task.inputs) == 2
        assert task.request["size"] == "3:2" and task.request["nVariants"] == 2
        async with session.get(status.result_urls[0]) as resp:
            assert resp.status == 403  # the CDN refuses the direct link
        link = await provider.fallback_download_url(status.result_urls[0])
        assert link is not None
        async with session.get(link) as resp:
            assert resp.status == 200 and await resp.read() == task.results[0]
        assert await provider.fallback_download_url("https://elsewhere.example/x.png") is None
