"""Everything a handler or route needs, opened by the app factory and passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from telegram import Chat, User
from telegram.constants import ChatType
from telegram.ext import CallbackContext, ExtBot

from bot.admins import AdminCache
from bot.config import Settings
from bot.delivery import TelegramNotifier
from bot.i18n import Translator
from bot.lifecycle.service import EditService
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
    notifier: TelegramNotifier
    admins: AdminCache = field(init=False)

    def __post_init__(self) -> None:
        self.admins = AdminCache()

    async def lang_for(self, user: User | None, chat: Chat | None = None) -> str:
        """The reply language: a group's chosen one, else the user's override, else Telegram's."""
        if user is not None and self.notifier.operator_langs is not None:
            self.notifier.operator_langs.saw(user)
        if chat is not None and chat.type != ChatType.PRIVATE:
            lang = (await self.db.chat_settings.get(chat.id)).lang
            if lang in self.translator.catalogs:
                return str(lang)
        if user is not None:
            lang = (await self.db.chat_settings.get(user.id)).lang
            if lang in self.translator.catalogs:
                return str(lang)
        return self.translator.lang_for(user.language_code if user else None)

    def lang_of(self, user: User | None) -> str:
        """Synchronous best effort (no database access): prefer `lang_for` in handlers."""
        if user is not None:
            cached = self.db.chat_settings.cached(user.id)
            if cached is not None and cached.lang in self.translator.catalogs:
                return str(cached.lang)
        return self.translator.lang_for(user.language_code if user else None)

    def tr(self, lang: str, key: str, **params: Any) -> str:
        return self.translator.tr(lang, key, **params)


class BotContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """PTB's context with typed access to the services."""

    @property
    def services(self) -> Services:
        return cast(Services, self.bot_data[SERVICES_KEY])
