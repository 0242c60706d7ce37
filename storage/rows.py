"""Rows to domain objects: which column holds what (storage knowledge, kept out of domain/)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.edit import AlbumItem, Edit, EditState, InputPhoto


def edit_from_row(row: Mapping[Any, Any]) -> Edit:
    """An `edits` row (all columns) as an Edit."""
    return Edit(
        id=row["id"],
        dedupe_key=row["dedupe_key"],
        chat_id=row["chat_id"],
        chat_type=row["chat_type"],
        user_id=row["user_id"],
        message_id=row["message_id"],
        status_message_id=row["status_message_id"],
        lang=row["lang"],
        provider=row["provider"],
        model=row["model"],
        prompt=row["prompt"],
        params=dict(row["params"] or {}),
        inputs=[InputPhoto.from_json(item) for item in row["inputs"] or []],
        blob_keys=list(row["blob_keys"] or []),
        state=EditState(row["state"]),
        task_id=row["task_id"],
        callback_token=row["callback_token"],
        result_urls=list(row["result_urls"] or []),
        result_file_ids=list(row["result_file_ids"] or []),
        error_code=row["error_code"],
        error_detail=row["error_detail"],
        credits=row["credits"],
        poll_count=row["poll_count"],
        delivery_attempts=row["delivery_attempts"],
        next_check_at=row["next_check_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        submitted_at=row["submitted_at"],
        finished_at=row["finished_at"],
        notified_at=row["notified_at"],
        user_name=row.get("user_name"),
        approval_message_id=row.get("approval_message_id"),
        decision=row.get("decision"),
        decided_by=row.get("decided_by"),
        decided_by_name=row.get("decided_by_name"),
        decided_at=row.get("decided_at"),
        removed_by_name=row.get("removed_by_name"),
        removed_at=row.get("removed_at"),
        cost_estimate=row.get("cost_estimate"),
        lease_owner=row.get("lease_owner"),
        lease_until=row.get("lease_until"),
        thread_id=row.get("thread_id"),
    )


def album_item_from_row(row: Mapping[Any, Any]) -> AlbumItem:
    """An `album_items` row as an AlbumItem."""
    return AlbumItem(
        chat_id=row["chat_id"],
        message_id=row["message_id"],
        media_group_id=row["media_group_id"],
        user_id=row["user_id"],
        chat_type=row["chat_type"],
        lang=row["lang"],
        caption=row["caption"],
        photo=InputPhoto.from_json(row["photo"]) if row["photo"] else None,
        created_at=row["created_at"],
        thread_id=row.get("thread_id"),
    )
