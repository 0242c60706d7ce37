"""Values as people read them in messages: waits, credit amounts, provider reasons."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any


def format_wait(tr: Callable[..., str], seconds: float) -> str:
    """A duration as people read it ("45 s", "12 min", "3 h 5 min"), rounded up."""
    if seconds < 60:
        return tr("time.seconds", n=max(1, math.ceil(seconds)))
    hours, minutes = divmod(math.ceil(seconds / 60), 60)
    if not hours:
        return tr("time.minutes", n=minutes)
    if not minutes:
        return tr("time.hours", n=hours)
    return tr("time.hours_minutes", h=hours, m=minutes)


def format_credits(amount: float) -> str:
    """Whole numbers without decimals, others with up to two."""
    if float(amount).is_integer():
        return str(int(amount))
    return f"{amount:.2f}".rstrip("0").rstrip(".")


MAX_REASON_CHARS = 300
# Control and format characters (C0, C1, bidi overrides, zero-width) and runs of whitespace:
# a provider's reason is shown on one line, as the provider cannot choose how it looks.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\s]+")


def plain_reason(text: str | None) -> str:
    """A provider's failure reason as bounded plain text, whatever its shape.

    Never parsed (a reason that looks like JSON is shown as it is): notices go out without a
    parse mode, so no markup applies either.
    """
    flat = _UNPRINTABLE.sub(" ", text or "").strip()
    if len(flat) <= MAX_REASON_CHARS:
        return flat
    return flat[: MAX_REASON_CHARS - 1].rstrip() + "…"


def message_params(detail: str | None) -> dict[str, Any]:
    """The placeholders the bot itself stored for its own refusals (a flat JSON object of
    scalars); anything else gives none."""
    if not detail or not detail.startswith("{"):
        return {}
    try:
        value = json.loads(detail)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(value, dict):
        return {}
    return {
        str(k): v for k, v in value.items() if isinstance(v, str | int | float | bool) or v is None
    }
