"""What every provider family's mapping must do, one test per rule over the families.

Each family's answers come from its own document (tests/docs_examples.py); what only one
family has stays in its own file (test_kie_contract.py for the KIE jobs API,
test_providers_jobs.py, test_providers_kie4o.py, test_providers_odkkk.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from bot.providers.base import InputRejected, SubmitRequest, TaskState, TaskStatus
from bot.providers.catalog import models_for
from bot.providers.kie import (
    build_create_body,
    jobs_api,
    kie_error,
    parse_record,
    parse_submit,
)
from bot.providers.kie4o import (
    build_4o_body,
    kie4o_api,
    parse_4o_record,
    parse_4o_submit,
)
from bot.providers.odkkk import (
    build_odkkk_body,
    odkkk_api,
    odkkk_error,
    parse_odkkk_submit,
    parse_odkkk_task,
)
from domain.errors import (
    FeatureDisabled,
    GenerationFailed,
    InsufficientCredits,
    ProtocolError,
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
    GPT4O_CREATED,
    GPT4O_RECORD_RUNNING,
    GPT4O_REQUEST_MASK,
    JOBS_RECORD,
    ODKKK_CREATED,
    ODKKK_ERRORS,
    ODKKK_REQUEST,
    PLAYGROUND_CREATED,
    PLAYGROUND_RECORD,
    PLAYGROUND_REQUEST,
)


@dataclass(frozen=True)
class Family:
    """One family's request checks, around a request like its document's example."""

    example: SubmitRequest
    validate: Callable[[SubmitRequest], None]

    def request(self, **overrides: Any) -> SubmitRequest:
        return replace(self.example, **overrides)


JOBS = Family(
    SubmitRequest(
        model=models_for("kie")["qwen/image-edit"],
        prompt="Add beautiful flowers to the garden",
        image_urls=("https://files.example/a.jpg",),
        image_sizes=((1200, 1600),),
        callback_url="https://bot.example/callbacks/kie/1?token=t",
    ),
    jobs_api().validate,
)
GPT4O = Family(
    SubmitRequest(
        model=models_for("kie-4o")["gpt-4o-image"],
        prompt="Replace the masked area with a beautiful garden",
        image_urls=("https://public-url/original.jpg",),
        image_sizes=((1500, 1000),),
        mask_url="https://public-url/mask.png",
        callback_url="https://your-domain.com/4o-callback",
    ),
    kie4o_api().validate,
)
ODKKK = Family(
    SubmitRequest(
        model=models_for("odkkk")["odkkk:qwen-image-edit"],
        prompt="Replace the background of this image",
        image_urls=("https://example.com/image1.png", "https://example.com/image2.png"),
        callback_url="https://your-domain.com/webhooks/image-task-completed",
    ),
    odkkk_api().validate,
)


def copy_with(body: dict[str, Any], **data: Any) -> dict[str, Any]:
    """A deep copy of a documented answer with some of its `data` fields changed."""
    changed: dict[str, Any] = json.loads(json.dumps(body))
    changed["data"].update(data)
    return changed


def jobs_request(document: dict[str, Any], models: dict[str, Any]) -> SubmitRequest:
    """The request whose create body should be exactly the documented one."""
    inputs = document["input"]
    return SubmitRequest(
        model=next(iter(models.values())),
        prompt=inputs["prompt"],
        image_urls=(inputs["image_url"],),
        params={k: v for k, v in inputs.items() if k not in ("prompt", "image_url")},
        callback_url=document["callBackUrl"],
    )


@pytest.mark.parametrize(
    ("build", "request_", "document", "exact"),
    [
        pytest.param(
            build_create_body,
            jobs_request(PLAYGROUND_REQUEST, models_for("kie-playground")),
            PLAYGROUND_REQUEST,
            True,
            id="playground",
        ),
        pytest.param(
            build_create_body,
            jobs_request(APIKLEY_REQUEST, models_for("apikley")),
            APIKLEY_REQUEST,
            True,
            id="apikley",
        ),
        # The document's mask edit leaves out fields with defaults; 1500x1000 -> "3:2".
        pytest.param(build_4o_body, GPT4O.example, GPT4O_REQUEST_MASK, False, id="4o-mask"),
        pytest.param(build_odkkk_body, ODKKK.example, ODKKK_REQUEST, True, id="odkkk"),
    ],
)
def test_create_body_matches_the_documented_request(
    build: Callable[[SubmitRequest], dict[str, Any]],
    request_: SubmitRequest,
    document: dict[str, Any],
    exact: bool,
) -> None:
    body = build(request_)
    assert {k: body[k] for k in document} == document
    if exact:
        assert body == document


@pytest.mark.parametrize(
    ("error", "parse", "answer", "task_id"),
    [
        pytest.param(kie_error, parse_submit, PLAYGROUND_CREATED, "task_12345678", id="playground"),
        pytest.param(
            kie_error, parse_submit, APIKLEY_CREATED, "task_qwen_1765179676651", id="apikley"
        ),
        pytest.param(kie_error, parse_4o_submit, GPT4O_CREATED, "task_4o_abc123", id="4o"),
        pytest.param(
            odkkk_error,
            parse_odkkk_submit,
            ODKKK_CREATED,
            "task-unified-1757156493-imcg5zqt",
            id="odkkk",
        ),
    ],
)
def test_documented_creation_answer_names_the_task(
    error: Callable[[int, Any], ProviderError | None],
    parse: Callable[[Any], str],
    answer: dict[str, Any],
    task_id: str,
) -> None:
    assert error(200, answer) is None
    assert parse(answer) == task_id


def state_cases() -> Iterator[Any]:
    for state, expected in [
        ("waiting", TaskState.PENDING),
        ("queuing", TaskState.PENDING),
        ("generating", TaskState.RUNNING),
        ("success", TaskState.SUCCEEDED),
        ("fail", TaskState.FAILED),
    ]:
        body = copy_with(JOBS_RECORD, state=state, failMsg="x")
        yield pytest.param(parse_record, body, expected, {}, id=f"jobs-{state}")
    for state, expected in [
        ("waiting", TaskState.PENDING),
        ("queuing", TaskState.PENDING),
        ("generating", TaskState.RUNNING),
    ]:
        body = copy_with(PLAYGROUND_RECORD, state=state)
        yield pytest.param(parse_record, body, expected, {}, id=f"playground-{state}")
    for flag, progress, expected, details in [
        (0, "0.00", TaskState.PENDING, {}),
        (0, "0.50", TaskState.RUNNING, {}),
        (
            2,
            "0.50",
            TaskState.FAILED,
            {"error_code": "451", "error_message": "image download failed"},
        ),
    ]:
        body = copy_with(
            GPT4O_RECORD_RUNNING,
            successFlag=flag,
            progress=progress,
            errorCode=451,
            errorMessage="image download failed",
        )
        yield pytest.param(parse_4o_record, body, expected, details, id=f"4o-flag{flag}-{progress}")
    for status, percent, expected in [
        ("pending", 0, TaskState.PENDING),
        ("processing", 50, TaskState.RUNNING),
        ("failed", 50, TaskState.FAILED),
        ("cancelled", 0, TaskState.FAILED),
    ]:
        body = {**ODKKK_CREATED, "status": status, "progress": percent}
        fraction = {"progress": percent / 100}
        yield pytest.param(parse_odkkk_task, body, expected, fraction, id=f"odkkk-{status}")


@pytest.mark.parametrize(("parse", "body", "state", "details"), list(state_cases()))
def test_states_map_onto_one_lifecycle(
    parse: Callable[[Any], TaskStatus], body: Any, state: TaskState, details: dict[str, Any]
) -> None:
    status = parse(body)
    assert status.state is state
    for name, value in details.items():
        assert getattr(status, name) == value, name


@pytest.mark.parametrize(
    ("parse", "body"),
    [
        pytest.param(parse_record, [], id="jobs-list"),
        pytest.param(parse_record, {"code": 200}, id="jobs-no-data"),
        pytest.param(parse_record, {"code": 200, "data": {"state": "weird"}}, id="jobs-state"),
        pytest.param(
            parse_record,
            {"code": 200, "data": {"state": "success", "resultJson": "not json"}},
            id="jobs-result-not-json",
        ),
        pytest.param(
            parse_record,
            {"code": 200, "data": {"state": "success", "resultJson": '{"resultUrls": []}'}},
            id="jobs-no-result",
        ),
        pytest.param(parse_4o_record, [], id="4o-list"),
        pytest.param(parse_4o_record, {"code": 200, "data": None}, id="4o-no-data"),
        pytest.param(parse_4o_record, {"code": 200, "data": {"successFlag": 7}}, id="4o-flag"),
        pytest.param(
            parse_4o_record,
            {"code": 200, "data": {"successFlag": 1, "response": None}},
            id="4o-no-result",
        ),
        pytest.param(parse_odkkk_task, [], id="odkkk-list"),
        pytest.param(parse_odkkk_task, {"status": "weird"}, id="odkkk-status"),
        pytest.param(
            parse_odkkk_task, {**ODKKK_CREATED, "status": "completed"}, id="odkkk-no-result"
        ),
        pytest.param(parse_odkkk_task, {"object": "x"}, id="odkkk-no-status"),
    ],
)
def test_malformed_answers_are_protocol_errors(parse: Callable[[Any], Any], body: Any) -> None:
    with pytest.raises(ProtocolError):
        parse(body)


# Apikley's ApiResponse enum: every code, as a body code and as an HTTP status.
APIKLEY_CODES: list[tuple[int, type[ProviderError], bool]] = [
    (401, ProviderAuthError, False),
    (402, InsufficientCredits, False),
    (404, ProviderNotFound, False),
    (422, ValidationRejected, False),
    (429, RateLimited, True),
    (455, ProviderUnavailable, True),
    (500, ProviderUnavailable, True),
    (501, GenerationFailed, False),
    (505, FeatureDisabled, False),
]
# odkkk answers errors by HTTP status: (status, error, param, retry_after)
ODKKK_CODES: list[tuple[int, type[ProviderError], str | None, float | None]] = [
    (400, ValidationRejected, "model", None),
    (401, ProviderAuthError, None, None),
    (403, ProviderAuthError, "model", None),
    (404, ProviderNotFound, "model", None),
    (429, RateLimited, None, 60.0),
    (500, ProviderUnavailable, None, None),
    (502, ProviderUnavailable, None, None),
    (503, ProviderUnavailable, None, 30.0),
]


def error_cases() -> Iterator[Any]:
    for status, body, error in [
        (200, {"code": 401, "msg": "Unauthorized"}, ProviderAuthError),
        (401, None, ProviderAuthError),
        (200, {"code": 402, "msg": "Insufficient credits"}, InsufficientCredits),
        (402, {"code": 402, "msg": "Insufficient credits"}, InsufficientCredits),
        (200, {"code": 422, "msg": "input.num_images is invalid"}, ValidationRejected),
        (200, {"code": 429, "msg": "slow down"}, RateLimited),
        (429, None, RateLimited),
        (200, {"code": 455, "message": "maintenance"}, ProviderUnavailable),
        (200, {"code": 500, "msg": "oops"}, ProviderUnavailable),
        (502, None, ProviderUnavailable),
        (200, {"code": 501, "msg": "Generation failed"}, GenerationFailed),
        (200, {"code": 505, "msg": "Feature disabled"}, FeatureDisabled),
    ]:
        yield pytest.param(kie_error, status, body, error, {}, (), id=f"jobs-{status}-{body}")
    for status, body, error in [
        (200, {"code": 401, "msg": "Unauthorized"}, ProviderAuthError),
        (200, {"code": 402, "msg": "Insufficient credits"}, InsufficientCredits),
        (200, {"code": 422, "msg": "size is required"}, ValidationRejected),
        (429, None, RateLimited),
        (200, {"code": 400, "msg": "Content policy violation"}, ValidationRejected),
    ]:
        yield pytest.param(kie_error, status, body, error, {}, (), id=f"4o-{status}-{body}")
    for code, error, retryable in APIKLEY_CODES:
        details: dict[str, Any] = {"retryable": retryable, "status": code}
        for as_http_status in (False, True):
            body = {"code": code, "msg": "documented", "data": None}
            status = code if as_http_status else 200
            how = "http" if as_http_status else "body"
            yield pytest.param(
                kie_error, status, body, error, details, (), id=f"apikley-{code}-{how}"
            )
    for status, error, param, retry_after in ODKKK_CODES:
        documented: dict[str, Any] = ODKKK_ERRORS[status]
        details = {"status": status, "param": param, "retry_after": retry_after}
        fragments = (documented["error"]["message"], documented["error"]["type"])
        yield pytest.param(
            odkkk_error, status, documented, error, details, fragments, id=f"odkkk-{status}"
        )


@pytest.mark.parametrize(
    ("map_error", "status", "body", "error", "details", "detail"), list(error_cases())
)
def test_documented_errors_map_to_typed_errors(
    map_error: Callable[[int, Any], ProviderError | None],
    status: int,
    body: Any,
    error: type[ProviderError],
    details: dict[str, Any],
    detail: tuple[str, ...],
) -> None:
    exc = map_error(status, body)
    assert isinstance(exc, error)
    for name, value in details.items():
        assert getattr(exc, name) == value, name
    for fragment in detail:
        assert fragment in exc.detail


@pytest.mark.parametrize(
    ("family", "overrides", "code"),
    [
        pytest.param(JOBS, {"prompt": "x" * 2001}, "prompt_too_long", id="jobs-long-prompt"),
        pytest.param(JOBS, {"prompt": "   "}, "prompt_empty", id="jobs-blank-prompt"),
        pytest.param(JOBS, {"image_urls": ("a", "b")}, "too_many_images", id="jobs-2-images"),
        pytest.param(JOBS, {"image_urls": ()}, "no_image", id="jobs-no-image"),
        pytest.param(
            JOBS, {"params": {"num_inference_steps": 50}}, "param_range", id="jobs-steps-50"
        ),
        pytest.param(
            JOBS, {"params": {"num_inference_steps": 1}}, "param_range", id="jobs-steps-1"
        ),
        pytest.param(JOBS, {"params": {"guidance_scale": 20.5}}, "param_range", id="jobs-guidance"),
        pytest.param(JOBS, {"params": {"num_images": 5}}, "param_range", id="jobs-5-images"),
        pytest.param(
            JOBS,
            {"params": {"negative_prompt": "n" * 501}},
            "negative_prompt_too_long",
            id="jobs-negative-prompt",
        ),
        pytest.param(
            JOBS, {"params": {"acceleration": "turbo"}}, "param_choice", id="jobs-acceleration"
        ),
        pytest.param(JOBS, {"params": {"output_format": "gif"}}, "param_choice", id="jobs-gif"),
        pytest.param(
            JOBS, {"params": {"image_size": "huge"}}, "param_choice", id="jobs-image-size"
        ),
        pytest.param(GPT4O, {"prompt": " "}, "prompt_empty", id="4o-blank-prompt"),
        pytest.param(GPT4O, {"prompt": "x" * 5001}, "prompt_too_long", id="4o-long-prompt"),
        pytest.param(GPT4O, {"image_urls": ()}, "no_image", id="4o-mask-without-photo"),
        pytest.param(
            GPT4O,
            {"image_urls": tuple(f"https://a/{i}.jpg" for i in range(6))},
            "too_many_images",
            id="4o-6-images",
        ),
        pytest.param(GPT4O, {"params": {"num_images": 5}}, "param_range", id="4o-5-variants"),
        pytest.param(GPT4O, {"params": {"num_images": "0"}}, "param_range", id="4o-0-variants"),
        pytest.param(GPT4O, {"params": {"size": "16:9"}}, "param_choice", id="4o-size"),
        pytest.param(
            GPT4O, {"params": {"fallback_model": "DALLE"}}, "param_choice", id="4o-fallback"
        ),
        pytest.param(GPT4O, {"params": {"is_enhance": "yes"}}, "param_choice", id="4o-enhance"),
        pytest.param(ODKKK, {"prompt": ""}, "prompt_empty", id="odkkk-empty-prompt"),
        pytest.param(ODKKK, {"prompt": "x" * 2001}, "prompt_too_long", id="odkkk-long-prompt"),
        pytest.param(ODKKK, {"image_urls": ()}, "no_image", id="odkkk-no-image"),
        pytest.param(
            ODKKK,
            {"image_urls": ("https://a/1", "https://a/2", "https://a/3", "https://a/4")},
            "too_many_images",
            id="odkkk-4-images",
        ),
        pytest.param(
            ODKKK, {"mask_url": "https://a/mask.png"}, "mask_unsupported", id="odkkk-mask"
        ),
    ],
)
def test_documented_limits_are_checked_before_spending(
    family: Family, overrides: dict[str, Any], code: str
) -> None:
    with pytest.raises(InputRejected) as info:
        family.validate(family.request(**overrides))
    assert info.value.code == code


@pytest.mark.parametrize(
    ("family", "overrides"),
    [
        pytest.param(
            JOBS,
            {
                "prompt": "x" * 2000,
                "params": {
                    "num_inference_steps": 49,
                    "guidance_scale": 0,
                    "num_images": "4",
                    "negative_prompt": "n" * 500,
                },
            },
            id="jobs",
        ),
        pytest.param(
            GPT4O,
            {
                "image_urls": tuple(f"https://a/{i}.jpg" for i in range(5)),
                "params": {"num_images": 4, "size": "auto", "enable_fallback": False},
            },
            id="4o",
        ),
        pytest.param(
            ODKKK,
            {"prompt": "x" * 2000, "image_urls": ("https://a/1", "https://a/2", "https://a/3")},
            id="odkkk",
        ),
    ],
)
def test_limits_at_the_edges_pass(family: Family, overrides: dict[str, Any]) -> None:
    family.validate(family.request(**overrides))


def test_drawing_from_text_takes_no_photo_and_drawing_models_take_none() -> None:
    """4o and the text-to-image jobs models generate from the prompt alone; a model that only
    generates refuses photos, an edit-only model still needs one."""
    text_only = models_for("kie")["seedream/4.5-text-to-image"]
    GPT4O.validate(GPT4O.request(image_urls=(), image_sizes=(), mask_url=None))
    JOBS.validate(JOBS.request(model=text_only, image_urls=(), image_sizes=()))
    with pytest.raises(InputRejected) as info:
        JOBS.validate(JOBS.request(model=text_only))
    assert (info.value.code, info.value.params) == ("text_only", {"model": "Seedream 4.5"})
    with pytest.raises(InputRejected) as info:
        JOBS.validate(JOBS.request(image_urls=()))
    assert info.value.code == "no_image"
