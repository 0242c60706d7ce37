"""The language each operator's alerts are written in."""

from __future__ import annotations

from collections.abc import Iterable

from telegram import User

from bot.i18n import Translator
from storage.chat_settings import ChatSettings


class OperatorLanguages:
    """An operator's alerts use the language they chose in the bot (/settings in their private
    chat, stored, shared by replicas), else the one their Telegram app last reported to this
    process, else English: an alert goes out when something is wrong, often before the
    operator has written anything since the last restart."""

    def __init__(
        self, operators: Iterable[int], chat_settings: ChatSettings, translator: Translator
    ) -> None:
        self.operators = frozenset(operators)
        self.chat_settings = chat_settings
        self.translator = translator
        self.reported: dict[int, str] = {}

    def saw(self, user: User) -> None:
        """Note the Telegram language of an operator who wrote to the bot."""
        if user.id in self.operators and user.language_code:
            self.reported[user.id] = self.translator.lang_for(user.language_code)

    async def of(self, operator_id: int) -> str:
        chosen = (await self.chat_settings.get(operator_id)).lang
        if chosen in self.translator.catalogs:
            return str(chosen)
        return self.reported.get(operator_id, "en")
