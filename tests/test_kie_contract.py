"""The KIE jobs-family mapping, checked against the documents' own example bodies."""

from __future__ import annotations

import json

import pytest

from bot.providers import kie
from bot.providers.base import TaskState
from bot.providers.catalog import models_for
from bot.providers.kie import (
    build_create_body,
    kie_error,
    parse_record,
    signature,
    verify_signature,
)
from domain.errors import (
    CallbackRejected,
)
from tests.docs_examples import (
    JOBS_RECORD,
    PLAYGROUND_FAILURE_CALLBACK,
    PLAYGROUND_SUCCESS_CALLBACK,
)
from tests.test_providers_contract import JOBS

QWEN = models_for("kie")["qwen/image-edit"]
BANANA = models_for("kie")["google/nano-banana-edit"]


_request = JOBS.request


def test_parse_documented_records() -> None:
    waiting = parse_record(JOBS_RECORD)
    assert waiting.state is TaskState.PENDING
    assert waiting.task_id == "281e5b0*********************f39b9"
    success = parse_record(PLAYGROUND_SUCCESS_CALLBACK)
    assert success.state is TaskState.SUCCEEDED
    assert success.result_urls == ("https://example.com/generated-image.jpg",)
    assert success.credits_used == 100 and success.credits_left == 2510330
    failure = parse_record(PLAYGROUND_FAILURE_CALLBACK)
    assert failure.state is TaskState.FAILED
    assert failure.error_code == "500" and failure.error_message == "Internal server error"


def test_task_id_snake_case_is_accepted() -> None:
    body = json.loads(json.dumps(PLAYGROUND_SUCCESS_CALLBACK))
    body["data"]["task_id"] = body["data"].pop("taskId")
    assert parse_record(body).task_id == "e989621f54392584b05867f87b160672"


def test_validation_error_names_the_parameter() -> None:
    err = kie_error(200, {"code": 422, "msg": "input.num_inference_steps must be <= 49"})
    assert err is not None and err.param == "num_inference_steps"


def test_create_body_for_qwen_carries_every_parameter() -> None:
    params = {
        "acceleration": "regular",
        "image_size": "auto",
        "num_inference_steps": 30,
        "seed": 42,
        "guidance_scale": 4.5,
        "sync_mode": False,
        "num_images": 2,
        "enable_safety_checker": True,
        "output_format": "jpeg",
        "negative_prompt": "blurry",
    }
    body = build_create_body(_request(params=params))
    assert body["model"] == "qwen/image-edit"
    assert body["callBackUrl"] == "https://bot.example/callbacks/kie/1?token=t"
    inputs = body["input"]
    assert inputs["image_url"] == "https://files.example/a.jpg"
    assert inputs["num_images"] == "2"  # the document wants a string
    assert inputs["image_size"] == "portrait_4_3"  # "auto" follows the 1200x1600 photo
    for name in (
        "acceleration",
        "num_inference_steps",
        "seed",
        "guidance_scale",
        "sync_mode",
        "enable_safety_checker",
        "output_format",
        "negative_prompt",
    ):
        assert inputs[name] == params[name]


def test_create_body_for_multi_image_model() -> None:
    body = build_create_body(
        _request(
            model=BANANA,
            image_urls=("https://a/1.jpg", "https://a/2.jpg"),
            params={"output_format": "png"},
            callback_url=None,
        )
    )
    assert body["input"]["image_urls"] == ["https://a/1.jpg", "https://a/2.jpg"]
    assert "image_url" not in body["input"] and "callBackUrl" not in body
    assert body["input"]["aspect_ratio"] == "3:4"


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1000, 1000), "square_hd"),
        ((1600, 1200), "landscape_4_3"),
        ((1920, 1080), "landscape_16_9"),
        ((1080, 1920), "portrait_16_9"),
        ((900, 1200), "portrait_4_3"),
    ],
)
def test_unset_image_size_is_the_closest_to_the_photo(size: tuple[int, int], expected: str) -> None:
    assert build_create_body(_request(image_sizes=(size,)))["input"]["image_size"] == expected


def test_webhook_signature() -> None:
    headers = {
        "X-Webhook-Timestamp": "1700000000",
        "X-Webhook-Signature": signature("key", "task1", "1700000000"),
    }
    verify_signature("key", headers, "task1", now=1700000010)
    with pytest.raises(CallbackRejected):
        verify_signature("key", headers, "task2", now=1700000010)
    with pytest.raises(CallbackRejected):
        verify_signature("other", headers, "task1", now=1700000010)
    with pytest.raises(CallbackRejected):
        verify_signature("key", headers, "task1", now=1700000000 + 3600)
    with pytest.raises(CallbackRejected):
        verify_signature("key", {}, "task1", now=1700000000)
    # Hostile header values are refusals, never crashes.
    for timestamp, given in [
        ("1700000000", "é" * 44),
        ("١٧٠٠٠٠٠٠٠٠", headers["X-Webhook-Signature"]),  # non-ASCII digits float() accepts
        ("nan", signature("key", "task1", "nan")),
        ("1e400", signature("key", "task1", "1e400")),
    ]:
        forged = {"X-Webhook-Timestamp": timestamp, "X-Webhook-Signature": given}
        with pytest.raises(CallbackRejected):
            verify_signature("key", forged, "task1", now=1700000010)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (1, 1.0),
        ("2.5", 2.5),
        (10**400, None),
        ("nan", None),
        ("inf", None),
        (True, None),
        ("lots", None),
        ([1], None),
    ],
)
def test_credit_numbers_are_finite_or_none(value: object, expected: float | None) -> None:
    assert kie._number(value) == expected
