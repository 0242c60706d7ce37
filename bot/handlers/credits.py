"""/credits: the KIE account's remaining credits, for the bot's admins (ADMIN_IDS)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.handlers.common import reply
from bot.providers.http import HttpProvider
from bot.providers.kie import account_credits
from bot.services import BotContext
from domain.errors import ProviderError

KIE_PROVIDER = "kie"


def format_credits(amount: float) -> str:
    """Whole numbers without decimals, others with up to two."""
    if float(amount).is_integer():
        return str(int(amount))
    return f"{amount:.2f}".rstrip("0").rstrip(".")


async def credits_command(update: Update, context: BotContext) -> None:
    """Ask KIE's credit endpoint and reply with the number (admins only)."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    services = context.services
    lang = await services.lang_for(user, message.chat)
    if user.id not in services.settings.admin_ids:
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
