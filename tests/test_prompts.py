"""How captions and texts become prompts, in private chats and groups."""

from __future__ import annotations

import pytest

from bot.message_input import clean_prompt, extract_prompt


@pytest.mark.parametrize(
    ("text", "group", "expected"),
    [
        ("make it blue", False, "make it blue"),
        ("make it blue", True, None),
        ("/edit make it blue", True, "make it blue"),
        ("/edit@edit_test_bot make it blue", True, "make it blue"),
        ("/EDIT make it blue", False, "make it blue"),
        ("/edit@other_bot make it blue", True, None),
        ("@edit_test_bot make it blue", True, "make it blue"),
        ("please @Edit_Test_Bot add a hat", True, "please add a hat"),
        ("/edit", True, ""),
        ("/editor is not a command", False, "/editor is not a command"),
        ("", False, ""),
    ],
)
def test_extract_prompt(text: str, group: bool, expected: str | None) -> None:
    assert extract_prompt(text, "edit_test_bot", group=group) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  add a hat  ", "add a hat"),
        ("add\x00 a\x07 hat", "add a hat"),
        ("line1\n\n\n\nline2", "line1\n\nline2"),
        ("\u202eevil\u200b text", "evil text"),
        ("\x00\x01\x02", ""),
        ("tabs\tand   spaces", "tabs and spaces"),
    ],
)
def test_clean_prompt(raw: str, expected: str) -> None:
    assert clean_prompt(raw) == expected
