"""The jobs-API variants (KIE playground, Apikley), checked against their documents' bodies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.providers.base import SubmitRequest, TaskState
from bot.providers.http import HttpProvider
from bot.providers.kie import (
    PLAYGROUND_PREFIX,
    build_create_body,
    jobs_api,
    jobs_models,
    kie_error,
    parse_record,
    parse_submit,
)
from bot.providers.transport import Transport
from domain.errors import (
    FeatureDisabled,
    GenerationFailed,
    InsufficientCredits,
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderUnavailable,
    RateLimited,
    ValidationRejected,
)
from tests.docs_examples import (
    APIKLEY_CREATED,
    APIKLEY_REQUEST,
    PLAYGROUND_CREATED,
    PLAYGROUND_FAILURE_CALLBACK,
    PLAYGROUND_RECORD,
    PLAYGROUND_REQUEST,
)

PLAYGROUND = jobs_models("kie-playground", prefix="kie-playground:")
APIKLEY = jobs_models("apikley", prefix="apikley:")


def test_variant_model_ids() -> None:
    assert list(PLAYGROUND) == ["kie-playground:qwen/image-edit"]
    assert list(APIKLEY) == ["apikley:qwen/image-edit"]
    for spec in (*PLAYGROUND.values(), *APIKLEY.values()):
        assert spec.api_model == "qwen/image-edit"
    assert PLAYGROUND["kie-playground:qwen/image-edit"].provider == "kie-playground"
    assert APIKLEY["apikley:qwen/image-edit"].provider == "apikley"


@pytest.mark.parametrize(
    ("models", "document"),
    [(PLAYGROUND, PLAYGROUND_REQUEST), (APIKLEY, APIKLEY_REQUEST)],
)
def test_create_body_matches_the_documented_request(
    models: dict[str, Any], document: dict[str, Any]
) -> None:
    inputs = document["input"]
    params = {k: v for k, v in inputs.items() if k not in ("prompt", "image_url")}
    request = SubmitRequest(
        model=next(iter(models.values())),
        prompt=inputs["prompt"],
        image_urls=(inputs["image_url"],),
        params=params,
        callback_url=document["callBackUrl"],
    )
    assert build_create_body(request) == document


def test_playground_answers_use_message() -> None:
    assert kie_error(200, PLAYGROUND_CREATED) is None
    assert parse_submit(PLAYGROUND_CREATED) == "task_12345678"
    record = parse_record(PLAYGROUND_RECORD)
    assert record.state is TaskState.SUCCEEDED
    assert record.result_urls == ("https://example.com/generated-image.jpg",)
    error = kie_error(200, {"code": 422, "message": "input.guidance_scale is invalid"})
    assert isinstance(error, ValidationRejected)
    assert error.detail == "input.guidance_scale is invalid" and error.param == "guidance_scale"


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("waiting", TaskState.PENDING),
        ("queuing", TaskState.PENDING),
        ("generating", TaskState.RUNNING),
    ],
)
def test_playground_extra_states(state: str, expected: TaskState) -> None:
    body = json.loads(json.dumps(PLAYGROUND_RECORD))
    body["data"]["state"] = state
    assert parse_record(body).state is expected


def test_failed_query_with_empty_fail_code_does_not_report_code_200() -> None:
    body = json.loads(json.dumps(PLAYGROUND_RECORD))
    body["data"].update(state="fail", failCode="", failMsg="nsfw")
    status = parse_record(body)
    assert status.state is TaskState.FAILED
    assert status.error_code is None and status.error_message == "nsfw"


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    async with aiohttp.ClientSession() as session:
        yield Transport(session)


async def test_playground_failure_callback_with_code_501_is_a_failed_task(
    transport: Transport,
) -> None:
    provider = HttpProvider(
        name="kie-playground",
        api=jobs_api(PLAYGROUND_PREFIX),
        transport=transport,
        base_url="https://api.kie.ai",
        api_key="k",
        models=PLAYGROUND,
    )
    status = provider.parse_callback(PLAYGROUND_FAILURE_CALLBACK, {})
    assert status.state is TaskState.FAILED
    assert status.error_code == "500" and status.error_message == "Internal server error"
    assert status.task_id == "bd3a37c523149e4adf45a3ddb5faf1a8"
    assert status.credits_left == 2510430


def test_apikley_created_answer() -> None:
    assert kie_error(200, APIKLEY_CREATED) is None
    assert parse_submit(APIKLEY_CREATED) == "task_qwen_1765179676651"


# Every code of Apikley's ApiResponse enum, as a body code and as an HTTP status.
@pytest.mark.parametrize(
    ("code", "error", "retryable"),
    [
        (401, ProviderAuthError, False),
        (402, InsufficientCredits, False),
        (404, ProviderNotFound, False),
        (422, ValidationRejected, False),
        (429, RateLimited, True),
        (455, ProviderUnavailable, True),
        (500, ProviderUnavailable, True),
        (501, GenerationFailed, False),
        (505, FeatureDisabled, False),
    ],
)
@pytest.mark.parametrize("as_http_status", [False, True])
def test_apikley_codes(
    code: int, error: type[ProviderError], retryable: bool, as_http_status: bool
) -> None:
    body = {"code": code, "msg": "documented", "data": None}
    exc = kie_error(code if as_http_status else 200, body)
    assert isinstance(exc, error) and exc.retryable is retryable and exc.status == code
