"""Callback data of the buttons under results and in /history, and the result keyboard.

Data is compact and versioned ("r1:a:<edit id>"), always within Telegram's 64 bytes; a
handler that cannot parse it answers the press politely instead of failing.

In groups results also get "Remove" (admins only): `r1:x:<edit id>`. Callback data comes
from the client and may be forged, so it names the edit and nothing else: what a press acts
on (the chat, the messages to delete, who may press) is looked up in the database. A text
offered for drawing gets "Draw it" (`g1`): the prompt is the message the offer replies to.
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
DRAW_DATA = "g1"
DRAW_PATTERN = rf"^{DRAW_DATA}$"

ResultAction = Literal["again", "file"]
_RESULT_CODES: dict[str, ResultAction] = {"a": "again", "f": "file"}
_RESULT_RE = re.compile(rf"^{RESULT_PREFIX}:([af]):(\d{{1,18}})$")
_HISTORY_RE = re.compile(rf"^{HISTORY_PREFIX}:r:(\d{{1,18}})$")
_REMOVE_RE = re.compile(rf"^{RESULT_PREFIX}:x:(\d{{1,18}})$")


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


def remove_data(edit_id: int) -> str:
    return f"{RESULT_PREFIX}:x:{edit_id}"


def parse_remove(data: str) -> int | None:
    """The edit a "Remove" press names (the messages it deletes come from the database)."""
    match = _REMOVE_RE.match(data)
    return int(match[1]) if match else None


def result_keyboard(
    tr: Callable[[str], str],
    edit_id: int,
    *,
    with_file: bool,
    removable: bool = False,
) -> InlineKeyboardMarkup:
    """ "Again" (same photo and prompt, new seed) and, for photos, "As file" (original bytes);
    in groups (`removable`) "Remove" for admins."""
    row = [InlineKeyboardButton(tr("result.again"), callback_data=again_data(edit_id))]
    if with_file:
        row.append(InlineKeyboardButton(tr("result.as_file"), callback_data=file_data(edit_id)))
    rows = [row]
    if removable:
        remove = InlineKeyboardButton(tr("result.remove"), callback_data=remove_data(edit_id))
        rows.append([remove])
    return InlineKeyboardMarkup(rows)


def draw_keyboard(label: str) -> InlineKeyboardMarkup:
    """The one button under a text offered for drawing (`DRAW_DATA`)."""
    return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=DRAW_DATA)]])
