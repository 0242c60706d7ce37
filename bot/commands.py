"""The command lists Telegram shows in its menu, per language and per audience (setMyCommands).

Private chats list every command; group members see what they can use there; group admins
(BotCommandScopeAllChatAdministrators) additionally see the commands that change the
group's settings and moderate it. Each list is published for the default language (English)
and for every other catalog language, under its two-letter code (pt_BR as "pt").
"""

from __future__ import annotations

import logging

from telegram import (
    Bot,
    BotCommand,
    BotCommandScope,
    BotCommandScopeAllChatAdministrators,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeDefault,
)
from telegram.error import TelegramError

from bot.i18n import DEFAULT_LANG, Translator

log = logging.getLogger(__name__)

PRIVATE_COMMANDS = (
    "start",
    "help",
    "settings",
    "model",
    "edit",
    "imagine",
    "history",
    "cancel",
    "usage",
)
GROUP_COMMANDS = ("edit", "imagine", "history", "cancel", "help")
MODERATION_COMMANDS = (
    "moderation",
    "modlog",
    "usage",
    "allow",
    "deny",
    "ban",
    "unban",
    "block",
    "unblock",
    "remove",
)
GROUP_ADMIN_COMMANDS = (*GROUP_COMMANDS, "settings", "model", *MODERATION_COMMANDS)
# Published only with paid edits on (STARS_PACKS), in private chats where payments happen.
PAYMENT_COMMANDS = ("buy", "balance", "paysupport", "terms")


def command_lists(payments: bool = False) -> list[tuple[BotCommandScope, tuple[str, ...]]]:
    """Which commands each audience sees."""
    private = (*PRIVATE_COMMANDS, *PAYMENT_COMMANDS) if payments else PRIVATE_COMMANDS
    return [
        (BotCommandScopeDefault(), private),
        (BotCommandScopeAllPrivateChats(), private),
        (BotCommandScopeAllGroupChats(), GROUP_COMMANDS),
        (BotCommandScopeAllChatAdministrators(), GROUP_ADMIN_COMMANDS),
    ]


async def publish_commands(bot: Bot, translator: Translator, *, payments: bool = False) -> bool:
    """Set every command list; a failure is logged, never fatal (the bot works without)."""
    try:
        languages: list[tuple[str | None, str]] = [(None, DEFAULT_LANG)]
        languages += translator.command_languages().items()
        for code, lang in languages:
            for scope, names in command_lists(payments):
                commands = [
                    BotCommand(name, translator.tr(lang, f"command.{name}")) for name in names
                ]
                await bot.set_my_commands(commands, scope=scope, language_code=code)
    except TelegramError as exc:
        log.warning("could not publish the command lists", extra={"error": exc.message})
        return False
    return True
