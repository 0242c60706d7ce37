"""Numbers as people read them in messages: waits and credit amounts."""

from __future__ import annotations

import math
from collections.abc import Callable


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
