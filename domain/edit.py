"""The edit and what belongs to it: states, input photos, the row a handler asks for.

Plain data shared by every layer (`bot/` and `storage/` both import it; it imports neither).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple


class EditState(StrEnum):
    """The lifecycle of one edit; the database row is the single source of truth."""

    AWAITING_APPROVAL = "awaiting_approval"
    QUEUED = "queued"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    DELIVERED = "delivered"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    UNDELIVERABLE = "undeliverable"


TERMINAL_STATES = frozenset(
    {
        EditState.DELIVERED,
        EditState.FAILED,
        EditState.REJECTED,
        EditState.EXPIRED,
        EditState.CANCELLED,
        EditState.UNDELIVERABLE,
    }
)
# States whose outcome the user must still be told about once (failure-like ends).
NOTIFY_STATES = frozenset({EditState.FAILED, EditState.EXPIRED, EditState.REJECTED})


@dataclass(frozen=True)
class InputPhoto:
    """A photo in Telegram that an edit uses: file id plus what we know about it."""

    file_id: str
    kind: str = "photo"  # photo | document
    mime_type: str | None = None
    file_size: int | None = None
    width: int | None = None
    height: int | None = None
    role: str = "image"  # image | mask

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InputPhoto:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class Edit:
    """One row of `edits`."""

    id: int
    dedupe_key: str
    chat_id: int
    chat_type: str
    user_id: int
    message_id: int
    status_message_id: int | None
    lang: str
    provider: str
    model: str
    prompt: str
    params: dict[str, Any]
    inputs: list[InputPhoto]
    blob_keys: list[str]
    state: EditState
    task_id: str | None
    callback_token: str
    result_urls: list[str]
    result_file_ids: list[str]
    error_code: str | None
    error_detail: str | None
    credits: float | None
    poll_count: int
    delivery_attempts: int
    next_check_at: float | None
    created_at: float
    updated_at: float
    submitted_at: float | None
    finished_at: float | None
    notified_at: float | None
    # Group moderation (audit): who asked, who decided about an approval, who removed it.
    user_name: str | None = None
    approval_message_id: int | None = None
    decision: str | None = None
    decided_by: int | None = None
    decided_by_name: str | None = None
    decided_at: float | None = None
    removed_by_name: str | None = None
    removed_at: float | None = None
    # Spending limits (0005): the credits the edit is expected to cost (model price table),
    # counted while it runs and whenever the provider does not report `credits`.
    cost_estimate: float | None = None
    # The worker holding the edit (its lease's token) and until when, unless nobody does.
    lease_owner: str | None = None
    lease_until: float | None = None
    # The forum topic the request came from (0011): answers sent later (results after a
    # restart, notices) must land there even when the request message is gone.
    thread_id: int | None = None


class Settled(NamedTuple):
    """What a settled callback changed: enough to queue the delivery or the notice."""

    id: int
    state: EditState
    provider: str
    task_id: str | None
    error_code: str | None


@dataclass
class NewEdit:
    """What a handler knows when it asks for an edit."""

    dedupe_key: str
    chat_id: int
    chat_type: str
    user_id: int
    message_id: int
    lang: str
    provider: str
    model: str
    prompt: str
    callback_token: str
    inputs: list[InputPhoto]
    params: dict[str, Any] = field(default_factory=dict)
    state: EditState = EditState.QUEUED
    # Created already leased by the worker that will submit it (saves a claim).
    lease_owner: str | None = None
    lease_until: float | None = None
    user_name: str | None = None  # the requester's name, for the moderation log
    cost_estimate: float | None = None  # expected credits (reserved against the limits)
    thread_id: int | None = None  # the forum topic answers go to (see Edit)


@dataclass(frozen=True)
class AlbumItem:
    """One message of a media group, buffered until the group is complete."""

    chat_id: int
    message_id: int
    media_group_id: str
    user_id: int
    chat_type: str
    lang: str
    caption: str | None
    photo: InputPhoto | None
    created_at: float = 0.0
    thread_id: int | None = None  # the forum topic of the album


_CALLBACK_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")


def new_callback_token() -> str:
    """The per-edit secret in a provider's callback URL (192 random bits)."""
    return secrets.token_urlsafe(24)


def is_callback_token(text: str) -> bool:
    """Whether `text` has the shape of a `new_callback_token`: anything else is refused
    without a database statement."""
    return _CALLBACK_TOKEN.fullmatch(text) is not None
