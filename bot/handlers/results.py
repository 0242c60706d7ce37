"""The buttons under every result: "Again" (same photos and prompt, new seed) and "As file"."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from telegram import Bot, Update
from telegram.ext import Application, CallbackQueryHandler

from bot.buttons import RESULT_PATTERN, parse_result
from bot.edit_requests import start_edit
from bot.handlers.common import answer_press, edit_press
from bot.lifecycle.context import ChatUnreachable, DeliveryFailed
from bot.origin import Origin, answer
from bot.preferences import SEED_MAX
from bot.services import BotContext, Services
from domain.edit import Edit

log = logging.getLogger(__name__)

EXPIRED_CODES = frozenset({"result_missing", "result_refused"})


def repeat_params(services: Services, edit: Edit) -> dict[str, Any]:
    """The edit's params with a new random seed (when its model takes one)."""
    params = dict(edit.params)
    spec = services.registry.models.get(edit.model)
    if spec is not None and "seed" in spec.options:
        params["seed"] = secrets.randbelow(SEED_MAX + 1)
    return params


async def on_result_button(update: Update, context: BotContext) -> None:
    """A press under a result: make it again, or send the original file."""
    pressed = await edit_press(update, context, parse_result, lambda press: press.edit_id)
    if pressed is None:
        return
    services = context.services
    query, _message, edit, press, lang = pressed
    origin = pressed.origin
    if press.action == "again":
        if query.from_user.id != edit.user_id:
            await answer_press(query, services.tr(lang, "result.not_yours"), alert=True)
            return
        await answer_press(query, services.tr(lang, "result.again_started"))
        await start_edit(
            context.bot,
            services,
            origin,
            edit.inputs,
            edit.prompt,
            dedupe_key=f"again:{query.id}",
            model_params=(edit.model, repeat_params(services, edit)),
        )
        return
    await answer_press(query, services.tr(lang, "result.sending_file"))
    await send_as_files(services, context.bot, origin, edit)


async def send_as_files(services: Services, bot: Bot, origin: Origin, edit: Edit) -> None:
    """The original result bytes as documents, or a clear word why they are gone."""
    try:
        await services.notifier.send_files(edit, origin.chat_id, origin.message_id)
    except DeliveryFailed as exc:
        log.info("result not re-sent as file", extra={"edit_id": edit.id, "error": exc.code})
        key = "result.expired" if exc.code in EXPIRED_CODES else "result.file_failed"
        await answer(bot, origin, services.tr(origin.lang, key))
    except ChatUnreachable:
        await services.db.chats.block(origin.chat_id, "unreachable while sending a file")


def register(application: Application) -> None:  # type: ignore[type-arg]
    application.add_handler(CallbackQueryHandler(on_result_button, pattern=RESULT_PATTERN))
