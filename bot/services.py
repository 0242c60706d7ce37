"""Everything a handler or route needs, opened by the app factory and passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from telegram import User
from telegram.ext import CallbackContext, ExtBot

from bot.config import Settings
from bot.edits import EditService
from bot.i18n import Translator
from bot.metrics import Metrics
from bot.providers.registry import ProviderRegistry
from bot.tasks import TaskTracker
from storage.blobs import BlobStore
from storage.db import Database

SERVICES_KEY = "services"


@dataclass
class Services:
    settings: Settings
    db: Database
    edits: EditService
    translator: Translator
    registry: ProviderRegistry
    blobs: BlobStore
    tracker: TaskTracker
    metrics: Metrics

    def lang_of(self, user: User | None) -> str:
        return self.translator.lang_for(user.language_code if user else None)

    def tr(self, lang: str, key: str, **params: Any) -> str:
        return self.translator.tr(lang, key, **params)


class BotContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """PTB's context with typed access to the services."""

    @property
    def services(self) -> Services:
        return cast(Services, self.bot_data[SERVICES_KEY])
