"""Callback data of the buttons under results and in /history, and the result keyboard.

Data is compact and versioned ("r1:a:<edit id>"), always within Telegram's 64 bytes; a
handler that cannot parse it answers the press politely instead of failing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

RESULT_PREFIX = "r1"
HISTORY_PREFIX = "h1"
RESULT_PATTERN = rf"^{RESULT_PREFIX}:"
HISTORY_PATTERN = rf"^{HISTORY_PREFIX}:"

ResultAction = Literal["again", "file"]
_RESULT_CODES: dict[str, ResultAction] = {"a": "again", "f": "file"}
_RESULT_RE = re.compile(rf"^{RESULT_PREFIX}:([af]):(\d{{1,18}})$")
_HISTORY_RE = re.compile(rf"^{HISTORY_PREFIX}:r:(\d{{1,18}})$")


@dataclass(frozen=True)
class ResultPress:
    action: ResultAction
    edit_id: int


def again_data(edit_id: int) -> str:
    return f"{RESULT_PREFIX}:a:{edit_id}"


def file_data(edit_id: int) -> str:
    return f"{RESULT_PREFIX}:f:{edit_id}"


def resend_data(edit_id: int) -> str:
    return f"{HISTORY_PREFIX}:r:{edit_id}"


def parse_result(data: str) -> ResultPress | None:
    match = _RESULT_RE.match(data)
    if match is None:
        return None
    return ResultPress(_RESULT_CODES[match[1]], int(match[2]))


def parse_resend(data: str) -> int | None:
    match = _HISTORY_RE.match(data)
    return int(match[1]) if match else None


def result_keyboard(
    tr: Callable[[str], str], edit_id: int, *, with_file: bool
) -> InlineKeyboardMarkup:
    """ "Again" (same photo and prompt, new seed) and, for photos, "As file" (original bytes)."""
    row = [InlineKeyboardButton(tr("result.again"), callback_data=again_data(edit_id))]
    if with_file:
        row.append(InlineKeyboardButton(tr("result.as_file"), callback_data=file_data(edit_id)))
    return InlineKeyboardMarkup([row])
