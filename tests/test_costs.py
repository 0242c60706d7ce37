"""The price table behind estimated credits (bot/costs.py) and the spend figure's rules."""

from __future__ import annotations

from dataclasses import replace

from bot.costs import expected_cost
from bot.providers.catalog import models_for
from domain.edit import Edit, EditState
from storage.spend import day_bounds, edit_spend, month_bounds


def an_edit() -> Edit:
    """A submitted edit without a reported figure."""
    return Edit(
        id=1,
        dedupe_key="k",
        chat_id=1,
        chat_type="private",
        user_id=1,
        message_id=1,
        status_message_id=None,
        lang="en",
        provider="kie",
        model="qwen/image-edit",
        prompt="p",
        params={},
        inputs=[],
        blob_keys=[],
        state=EditState.SUBMITTED,
        task_id=None,
        callback_token="t",
        result_urls=[],
        result_file_ids=[],
        error_code=None,
        error_detail=None,
        credits=None,
        poll_count=0,
        delivery_attempts=0,
        next_check_at=None,
        created_at=0.0,
        updated_at=0.0,
        submitted_at=None,
        finished_at=None,
        notified_at=None,
    )


def test_defaults_overrides_image_counts_and_quality() -> None:
    jobs = models_for("kie")
    playground = models_for("kie-playground")
    qwen, seedream = jobs["qwen/image-edit"], jobs["seedream/4.5-edit"]
    assert expected_cost(qwen, {}, {}) == 5
    assert expected_cost(qwen, {"num_images": "3"}, {}) == 15
    assert expected_cost(jobs["google/nano-banana-edit"], {}, {}) == 8
    assert expected_cost(seedream, {"quality": "high"}, {}) == 8
    assert expected_cost(seedream, {"quality": "basic"}, {}) == 5
    assert expected_cost(models_for("kie-4o")["gpt-4o-image"], {"num_images": 2}, {}) == 12
    assert expected_cost(models_for("odkkk")["odkkk:qwen-image-edit"], {}, {}) == 5
    # An override by provider model name applies to every reseller of it, by id to one.
    overrides = {"qwen/image-edit": 4.5, "kie-playground:qwen/image-edit": 2}
    assert expected_cost(qwen, {"num_images": 2}, overrides) == 9
    assert expected_cost(playground["kie-playground:qwen/image-edit"], {}, overrides) == 2
    assert expected_cost(replace(qwen, credits=None), {}, {}) == 8  # unpriced: the dearest


def test_one_edits_figure_reported_estimated_or_nothing() -> None:
    edit = replace(an_edit(), cost_estimate=5.0)
    assert edit_spend(replace(edit, state=EditState.QUEUED)) == (5.0, True)  # reserved
    assert edit_spend(replace(edit, state=EditState.DELIVERED, credits=4.0)) == (4.0, False)
    assert edit_spend(replace(edit, state=EditState.DELIVERED)) == (5.0, True)
    assert edit_spend(replace(edit, state=EditState.FAILED)) == (0.0, False)
    assert edit_spend(replace(edit, state=EditState.REJECTED)) == (0.0, False)
    assert edit_spend(replace(edit, state=EditState.CANCELLED)) == (0.0, False)
    assert edit_spend(replace(edit, state=EditState.CANCELLED, task_id="t")) == (5.0, True)


def test_cap_periods_are_utc_days_and_calendar_months() -> None:
    now = 1_709_251_199.0  # 2024-02-29 23:59:59 UTC
    assert day_bounds(now) == (1_709_164_800.0, 1_709_251_200.0, "2024-02-29")
    assert month_bounds(now) == (1_706_745_600.0, 1_709_251_200.0, "2024-02")
