"""A status answer whose own record says the task failed, whatever code comes with it.

`FamilyApi.says_failed` decides, before the error mapping, that such an answer is parsed;
a top-level error without a failed record stays a query error.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bot.providers.base import TaskState
from bot.providers.kie import kie_error, parse_record, record_failed
from bot.providers.kie4o import kie4o_error, parse_4o_record, record_failed_4o
from bot.providers.odkkk import odkkk_error, parse_odkkk_task, task_failed
from domain.errors import GenerationFailed, ProviderUnavailable
from tests.docs_examples import (
    GPT4O_FAILURE_CALLBACK,
    GPT4O_RECORD_DONE,
    GPT4O_RECORD_RUNNING,
    JOBS_RECORD,
    ODKKK_CREATED,
    ODKKK_ERRORS,
    PLAYGROUND_FAILURE_CALLBACK,
    PLAYGROUND_RECORD,
)


def test_kie_documented_failure_callback_as_query_answer() -> None:
    """Both KIE documents: the query answer is identical to the callback (code 501)."""
    body = PLAYGROUND_FAILURE_CALLBACK
    assert isinstance(kie_error(200, body), GenerationFailed)  # so this must be asked first
    assert record_failed(body)
    status = parse_record(body)
    assert status.state is TaskState.FAILED
    assert (status.error_code, status.error_message) == ("500", "Internal server error")


@pytest.mark.parametrize("code", [200, 500, 501])
def test_kie_failed_record_with_any_code(code: int) -> None:
    body = copy.deepcopy(JOBS_RECORD)
    body["code"] = code
    body["data"].update(state="fail", failCode="422", failMsg="bad input")
    assert record_failed(body)
    status = parse_record(body)
    assert (status.state, status.error_code, status.error_message) == (
        TaskState.FAILED,
        "422",
        "bad input",
    )


@pytest.mark.parametrize(
    "body",
    [
        JOBS_RECORD,  # waiting
        PLAYGROUND_RECORD,  # success
        {"code": 501, "msg": "Generation Failed", "data": None},
        {"code": 404, "msg": "Resource not found"},
        {"code": 500, "msg": "Internal server error", "data": {"state": "generating"}},
        None,
        [],
    ],
)
def test_kie_answers_without_a_failed_record(body: Any) -> None:
    assert not record_failed(body)


@pytest.mark.parametrize("code", [200, 400, 451, 500])
def test_4o_failed_record_with_any_code(code: int) -> None:
    body = copy.deepcopy(GPT4O_RECORD_RUNNING)
    body.update(code=code, msg="Content policy violation")
    body["data"].update(successFlag=2)
    assert record_failed_4o(body)
    if code != 200:
        assert kie4o_error(200, body) is not None  # so this must be asked first
    status = parse_4o_record(body)
    assert status.state is TaskState.FAILED
    assert status.error_message == "Content policy violation"
    # Without a code of its own, the record's failure takes the answer's code.
    assert status.error_code == (None if code == 200 else str(code))


def test_4o_failed_status_name_and_answers_without_a_failed_record() -> None:
    named = copy.deepcopy(GPT4O_RECORD_RUNNING)
    del named["data"]["successFlag"]
    named["data"]["status"] = "GENERATE_FAILED"
    assert record_failed_4o(named)
    for body in (GPT4O_RECORD_RUNNING, GPT4O_RECORD_DONE, GPT4O_FAILURE_CALLBACK, None):
        assert not record_failed_4o(body)


@pytest.mark.parametrize("http_status", [200, 500, 502])
def test_odkkk_failed_task_with_any_http_status(http_status: int) -> None:
    body = {**ODKKK_CREATED, "status": "failed", "error": {"code": 500, "message": "crashed"}}
    assert task_failed(body)
    if http_status != 200:
        assert isinstance(odkkk_error(http_status, body), ProviderUnavailable)  # retried
    status = parse_odkkk_task(body)
    assert (status.state, status.error_code, status.error_message) == (
        TaskState.FAILED,
        "500",
        "crashed",
    )


def test_odkkk_wrapped_failed_task_with_its_error_beside_it() -> None:
    body = {
        "data": {**ODKKK_CREATED, "status": "failed"},
        "error": {"code": 500, "message": "crashed"},
    }
    assert task_failed(body)
    assert odkkk_error(200, body) is not None  # so this must be asked first
    status = parse_odkkk_task(body)
    assert (status.state, status.error_code, status.error_message) == (
        TaskState.FAILED,
        "500",
        "crashed",
    )


@pytest.mark.parametrize(
    "body", [ODKKK_CREATED, ODKKK_ERRORS[404], ODKKK_ERRORS[500], None, "nope"]
)
def test_odkkk_answers_without_a_failed_task(body: Any) -> None:
    assert not task_failed(body)
