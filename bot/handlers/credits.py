"""/credits: the KIE account's remaining credits, for the bot's admins (ADMIN_IDS)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.formats import format_credits
from bot.handlers.common import incoming, reply
from bot.providers.http import HttpProvider
from bot.providers.kie import account_credits
from bot.services import BotContext
from domain.errors import ProviderError

KIE_PROVIDER = "kie"


async def credits_command(update: Update, context: BotContext) -> None:
    """Ask KIE's credit endpoint and reply with the number (admins only)."""
    asked = await incoming(update, context)
    if asked is None:
        return
    message, services, lang = asked.message, asked.services, asked.lang
    if asked.user.id not in services.settings.admin_ids:
        await reply(message, services.tr(lang, "credits.admins_only"))
        return
    provider = services.registry.providers.get(KIE_PROVIDER)
    if not isinstance(provider, HttpProvider):  # "kie" is always the jobs family
        await reply(message, services.tr(lang, "credits.unavailable"))
        return
    try:
        amount = await account_credits(provider)
    except ProviderError as exc:
        await reply(message, services.tr(lang, "credits.failed", error=exc.code))
        return
    await reply(message, services.tr(lang, "credits.balance", credits=format_credits(amount)))


def register(application: Application) -> None:  # type: ignore[type-arg]
    application.add_handler(CommandHandler("credits", credits_command))
