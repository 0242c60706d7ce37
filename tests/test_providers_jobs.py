"""The jobs-API variants (KIE playground, Apikley), checked against their documents' bodies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.providers.base import TaskState
from bot.providers.catalog import models_for
from bot.providers.http import HttpProvider
from bot.providers.kie import (
    PLAYGROUND_PREFIX,
    jobs_api,
    kie_error,
    parse_record,
)
from bot.providers.transport import Transport
from domain.errors import (
    ValidationRejected,
)
from tests.docs_examples import (
    PLAYGROUND_FAILURE_CALLBACK,
    PLAYGROUND_RECORD,
)

PLAYGROUND = models_for("kie-playground")
APIKLEY = models_for("apikley")


def test_variant_model_ids() -> None:
    assert list(PLAYGROUND) == ["kie-playground:qwen/image-edit"]
    assert list(APIKLEY) == ["apikley:qwen/image-edit"]
    for spec in (*PLAYGROUND.values(), *APIKLEY.values()):
        assert spec.api_model == "qwen/image-edit"
    assert PLAYGROUND["kie-playground:qwen/image-edit"].provider == "kie-playground"
    assert APIKLEY["apikley:qwen/image-edit"].provider == "apikley"


def test_playground_answers_use_message() -> None:
    record = parse_record(PLAYGROUND_RECORD)
    assert record.state is TaskState.SUCCEEDED
    assert record.result_urls == ("https://example.com/generated-image.jpg",)
    error = kie_error(200, {"code": 422, "message": "input.guidance_scale is invalid"})
    assert isinstance(error, ValidationRejected)
    assert error.detail == "input.guidance_scale is invalid" and error.param == "guidance_scale"


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
