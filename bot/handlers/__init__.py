"""Telegram handlers, one module per feature, registered here in the order they match."""

from __future__ import annotations

from telegram.ext import Application

from bot.handlers import (
    approvals,
    audit,
    cancel,
    credits,
    edit,
    fallback,
    history,
    ignored,
    imagine,
    inline,
    moderation,
    operators,
    payments,
    remove,
    results,
    settings,
    start,
)


def register_all(application: Application) -> None:  # type: ignore[type-arg]
    """Register every feature; earlier modules win when filters overlap."""
    ignored.register(application)  # first: edits and business messages start nothing
    start.register(application)
    credits.register(application)
    operators.register(application)
    payments.register(application)  # before edits: a payment message starts nothing else
    settings.register(application)  # its text-answer handler runs in a group before edits
    moderation.register(application)
    audit.register(application)
    history.register(application)
    cancel.register(application)
    approvals.register(application)
    remove.register(application)  # before results: its buttons share the result prefix
    results.register(application)
    inline.register(application)
    imagine.register(application)
    edit.register(application)
    fallback.register(application)  # last: catches what nothing else handled
