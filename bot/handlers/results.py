"""The buttons under every result: "Again" (same photos and prompt, new seed) and "As file"
(throttled: each press downloads and posts the result again)."""

from __future__ import annotations

import logging
import secrets
import time
from functools import partial
from typing import Any

from telegram import Bot, Update
from telegram.ext import Application, CallbackQueryHandler

from bot.buttons import RESULT_PATTERN, parse_result
from bot.edit_requests import start_edit
from bot.formats import format_wait
from bot.handlers.common import answer_press, edit_press
from bot.lifecycle.context import ChatUnreachable, DeliveryFailed
from bot.origin import Origin, answer
from bot.policy import resend_refusal
from bot.preferences import SEED_MAX
from bot.services import BotContext, Services
from domain.edit import Edit
from storage.throttle import Rule

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
    if press.action == "again" and query.from_user.id != edit.user_id:
        await answer_press(query, services.tr(lang, "result.not_yours"), alert=True)
        return
    refused = await resend_refusal(context.bot, services, origin, edit)
    if refused is not None:
        await answer_press(query, services.tr(lang, refused), alert=True)
        return
    if press.action == "again":
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
    retry_at = await take_file_slot(services, query.from_user.id, edit.id)
    if retry_at is not None:
        wait = format_wait(partial(services.tr, lang), max(0.0, retry_at - time.time()))
        await answer_press(query, services.tr(lang, "result.file_throttled", wait=wait), alert=True)
        return
    await answer_press(query, services.tr(lang, "result.sending_file"))
    await send_as_files(services, context.bot, origin, edit)


async def take_file_slot(services: Services, user_id: int, edit_id: int) -> float | None:
    """Count an "As file" press (None), or refuse it: when one is allowed again.

    Each press downloads and posts the result again: AS_FILE_RESULT_LIMIT per result (any
    presser) and AS_FILE_USER_LIMIT per user, counted in the database; operators are exempt.
    """
    settings = services.settings
    if user_id in settings.admin_ids:
        return None
    rules = (
        Rule("subject", *settings.as_file_result_limit),
        Rule("user", *settings.as_file_user_limit),
    )
    return await services.db.throttle.take("as_file", user_id, edit_id, rules)


async def send_as_files(services: Services, bot: Bot, origin: Origin, edit: Edit) -> None:
    """The original result bytes as documents, or a clear word why they are gone."""
    try:
        sent = await services.notifier.send_files(
            edit, origin.chat_id, origin.message_id, origin.thread_id
        )
    except DeliveryFailed as exc:
        log.info("result not re-sent as file", extra={"edit_id": edit.id, "error": exc.code})
        key = "result.expired" if exc.code in EXPIRED_CODES else "result.file_failed"
        await answer(bot, origin, services.tr(origin.lang, key))
    except ChatUnreachable:
        await services.db.chats.block(origin.chat_id, "unreachable while sending a file")
    else:
        await services.db.result_messages.record(edit.id, origin.chat_id, sent)


def register(application: Application) -> None:  # type: ignore[type-arg]
    application.add_handler(CallbackQueryHandler(on_result_button, pattern=RESULT_PATTERN))
