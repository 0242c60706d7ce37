"""Telegram handlers, one module per feature, registered here in the order they match."""

from __future__ import annotations

from telegram.ext import Application

from bot.handlers import edit, fallback, start


def register_all(application: Application) -> None:  # type: ignore[type-arg]
    """Register every feature; earlier modules win when filters overlap."""
    start.register(application)
    edit.register(application)
    fallback.register(application)  # last: catches what nothing else handled
