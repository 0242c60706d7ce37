"""Callback data of the buttons under results and in /history, and the result keyboard.

Data is compact and versioned ("r1:a:<edit id>"), always within Telegram's 64 bytes; a
handler that cannot parse it answers the press politely instead of failing.

In groups results also get "Remove" (admins only): `r1:x:<edit id>` deletes the message the
button is on; `r1:x:<edit id>:<first>:<count>` also the result messages `first` to
`first + count - 1` (an album, or several files), when Telegram gave them consecutive ids.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

RESULT_PREFIX = "r1"
HISTORY_PREFIX = "h1"
RESULT_PATTERN = rf"^{RESULT_PREFIX}:"
HISTORY_PATTERN = rf"^{HISTORY_PREFIX}:"
REMOVE_PATTERN = rf"^{RESULT_PREFIX}:x:"
SPAN_MAX = 10

ResultAction = Literal["again", "file"]
_RESULT_CODES: dict[str, ResultAction] = {"a": "again", "f": "file"}
_RESULT_RE = re.compile(rf"^{RESULT_PREFIX}:([af]):(\d{{1,18}})$")
_HISTORY_RE = re.compile(rf"^{HISTORY_PREFIX}:r:(\d{{1,18}})$")
_REMOVE_RE = re.compile(rf"^{RESULT_PREFIX}:x:(\d{{1,18}})(?::(\d{{1,12}}):(\d{{1,2}}))?$")


@dataclass(frozen=True)
class ResultPress:
    action: ResultAction
    edit_id: int


def shorten(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else cut to fit with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def in_rows(
    buttons: Sequence[InlineKeyboardButton], width: int
) -> list[list[InlineKeyboardButton]]:
    """Lay buttons out `width` to a row."""
    return [list(buttons[i : i + width]) for i in range(0, len(buttons), width)]


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


@dataclass(frozen=True)
class RemovePress:
    """ "Remove" under a result: the edit, and the other result messages to delete with it."""

    edit_id: int
    others: tuple[int, ...] = ()


def remove_data(edit_id: int, others: Sequence[int] = ()) -> str:
    """Data of "Remove"; `others` (the other result messages) only if consecutive ids."""
    ids = sorted(others)
    if ids and len(ids) <= SPAN_MAX and ids == list(range(ids[0], ids[0] + len(ids))):
        return f"{RESULT_PREFIX}:x:{edit_id}:{ids[0]}:{len(ids)}"
    return f"{RESULT_PREFIX}:x:{edit_id}"


def parse_remove(data: str) -> RemovePress | None:
    match = _REMOVE_RE.match(data)
    if match is None:
        return None
    if match[2] is None:
        return RemovePress(int(match[1]))
    first, count = int(match[2]), int(match[3])
    if not 1 <= count <= SPAN_MAX:
        return None
    return RemovePress(int(match[1]), tuple(range(first, first + count)))


def result_keyboard(
    tr: Callable[[str], str],
    edit_id: int,
    *,
    with_file: bool,
    removable: bool = False,
    others: Sequence[int] = (),
) -> InlineKeyboardMarkup:
    """ "Again" (same photo and prompt, new seed) and, for photos, "As file" (original bytes);
    in groups (`removable`) "Remove" for admins, also removing the `others` result messages."""
    row = [InlineKeyboardButton(tr("result.again"), callback_data=again_data(edit_id))]
    if with_file:
        row.append(InlineKeyboardButton(tr("result.as_file"), callback_data=file_data(edit_id)))
    rows = [row]
    if removable:
        data = remove_data(edit_id, others)
        rows.append([InlineKeyboardButton(tr("result.remove"), callback_data=data)])
    return InlineKeyboardMarkup(rows)
