"""odkkk mapping, checked against odkkk-qwen-image-edit-openapi.txt's own examples."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import pytest

from bot.images.normalize import normalize
from bot.providers.base import TaskState
from bot.providers.catalog import models_for
from bot.providers.http import HttpProvider
from bot.providers.odkkk import (
    build_odkkk_body,
    callback_allowed,
    odkkk_api,
    odkkk_error,
    parse_odkkk_task,
)
from bot.providers.transport import Transport
from domain.errors import (
    ProtocolError,
    ProviderAuthError,
    ProviderNotFound,
    ProviderUnavailable,
)
from tests.docs_examples import ODKKK_CREATED, ODKKK_ERRORS
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.odkkk import FakeOdkkk
from tests.test_providers_contract import ODKKK

MODEL = models_for("odkkk")["odkkk:qwen-image-edit"]


_request = ODKKK.request


def test_error_without_body_and_error_inside_a_200() -> None:
    assert isinstance(odkkk_error(502, None), ProviderUnavailable)
    assert isinstance(odkkk_error(200, ODKKK_ERRORS[401]), ProviderAuthError)
    assert isinstance(odkkk_error(200, "nope"), ProtocolError)
    assert odkkk_error(200, ODKKK_CREATED) is None
    failed_task = {**ODKKK_CREATED, "status": "failed", "error": {"code": 500, "message": "boom"}}
    assert odkkk_error(200, failed_task) is None  # an answer about a failed task


@pytest.mark.parametrize(
    "results",
    [
        {"data": [{"url": "https://cdn.example/1.png"}, {"url": "https://cdn.example/2.png"}]},
        {"results": ["https://cdn.example/1.png", "https://cdn.example/2.png"]},
        {
            "images": [
                {"image_url": "https://cdn.example/1.png"},
                {"image_url": "https://cdn.example/2.png"},
            ]
        },
        {"result": {"urls": ["https://cdn.example/1.png", "https://cdn.example/2.png"]}},
    ],
)
def test_results_are_found_leniently(results: dict[str, Any]) -> None:
    parsed = parse_odkkk_task({**ODKKK_CREATED, "status": "completed", "progress": 100, **results})
    assert parsed.state is TaskState.SUCCEEDED
    assert parsed.result_urls == ("https://cdn.example/1.png", "https://cdn.example/2.png")


def test_wrapped_answer_and_failure_details() -> None:
    wrapped = {
        "code": 200,
        "data": {
            **ODKKK_CREATED,
            "status": "failed",
            "error": {"code": 500, "message": "model crashed"},
        },
    }
    parsed = parse_odkkk_task(wrapped)
    assert parsed.state is TaskState.FAILED
    assert parsed.error_code == "500" and parsed.error_message == "model crashed"


def test_create_body_leaves_out_an_http_callback() -> None:
    http_callback = build_odkkk_body(_request(callback_url="http://bot.example/cb"))
    assert "callback_url" not in http_callback


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://bot.example/callbacks/odkkk/1?token=t", True),
        ("http://bot.example/callbacks/odkkk/1?token=t", False),
        ("https://127.0.0.1:8443/cb", False),
        ("https://10.1.2.3/cb", False),
        ("https://192.168.0.1/cb", False),
        ("https://localhost/cb", False),
        ("https://bot.example/" + "x" * 2048, False),
    ],
)
def test_callbacks_only_to_public_https(url: str, allowed: bool) -> None:
    assert callback_allowed(url) is allowed


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((200, 150), (512, 384)),
        ((4000, 3000), (3072, 2304)),
        ((384, 3072), (384, 3072)),
        ((1000, 800), (1000, 800)),
    ],
)
def test_normalize_resizes_into_the_documented_side_range(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    result = normalize(make_jpeg(*size), MODEL.image_limits)
    assert (result.width, result.height) == expected


async def test_client_against_the_fake_with_three_images(kie: FakeKie) -> None:
    async with FakeOdkkk("odkkk-key") as odkkk, aiohttp.ClientSession() as session:
        provider = HttpProvider(
            name="odkkk",
            api=odkkk_api(),
            transport=Transport(session),
            base_url=odkkk.url,
            api_key="odkkk-key",
            models=models_for("odkkk"),
        )
        urls = []
        for index in range(3):
            payload = {
                "base64Data": base64.b64encode(make_jpeg(400 + index, 400)).decode(),
                "uploadPath": "test",
                "fileName": f"{index}.jpg",
            }
            headers = {"Authorization": f"Bearer {kie.api_key}"}
            async with session.post(
                f"{kie.url}/api/file-base64-upload", json=payload, headers=headers
            ) as resp:
                urls.append((await resp.json())["data"]["downloadUrl"])
        request = _request(image_urls=tuple(urls), callback_url="http://bot.example/cb")
        provider.validate(request)
        task_id = await provider.submit(request)
        task = await odkkk.wait_task(task_id)
        assert task.request == {
            "model": "qwen-image-edit",
            "prompt": request.prompt,
            "image_urls": urls,
        }
        status = await provider.status(task_id)
        assert status.state is TaskState.SUCCEEDED and status.result_urls == tuple(task.result_urls)
        with pytest.raises(ProviderNotFound):
            await provider.status("no-such-task")
