"""Telegram handlers, one module per feature, registered here in the order they match."""

from __future__ import annotations

from telegram.ext import Application

from bot.handlers import (
    cancel,
    credits,
    edit,
    fallback,
    history,
    inline,
    results,
    settings,
    start,
)


def register_all(application: Application) -> None:  # type: ignore[type-arg]
    """Register every feature; earlier modules win when filters overlap."""
    start.register(application)
    credits.register(application)
    settings.register(application)  # its text-answer handler runs in a group before edits
    history.register(application)
    cancel.register(application)
    results.register(application)
    inline.register(application)
    edit.register(application)
    fallback.register(application)  # last: catches what nothing else handled
