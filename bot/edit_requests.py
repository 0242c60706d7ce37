"""Starting an edit, the one path every way of asking takes (a photo with a caption, a reply
to a photo, a photo then a prompt, an album, /edit, "Again" under a result, /history), and
/imagine: an image drawn from the prompt alone is an edit without input photos, made by the
chat's generating model under the same limits, moderation, approval and delivery.

Validate, ask `bot.policy` who may and on what terms, record the edit, then post it for
approval or submit it; bad input and refusals are answered with a clear message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from telegram import Bot
from telegram.error import TelegramError

from bot import limits, pending_prompts, policy
from bot.approval_panel import post_request
from bot.costs import expected_cost
from bot.delivery import api_call, reply_to
from bot.message_input import clean_prompt
from bot.origin import Origin, answer
from bot.payments import charge_for
from bot.preferences import resolve, resolve_generation
from bot.providers.base import InputRejected
from bot.services import Services
from domain.edit import Edit, EditState, InputPhoto
from storage.chat_settings import ChatPrefs
from storage.edits import InsertGuard

log = logging.getLogger(__name__)


async def edit_or_ask(
    bot: Bot,
    services: Services,
    origin: Origin,
    inputs: list[InputPhoto],
    prompt: str,
    *,
    question: str = "edit.ask_prompt",
) -> None:
    """Start the edit, or (no prompt yet) keep the photos and ask for one with `question`."""
    if clean_prompt(prompt) or await policy.access_refusal(services, origin):
        await start_edit(bot, services, origin, inputs, prompt)
        return
    await pending_prompts.ask(bot, services, origin, inputs, question=question)


async def start_edit(
    bot: Bot,
    services: Services,
    origin: Origin,
    inputs: list[InputPhoto],
    raw_prompt: str,
    *,
    dedupe_key: str | None = None,
    model_params: tuple[str, Mapping[str, Any]] | None = None,
    generate: bool = False,
) -> None:
    """Validate, record and submit one edit; answer bad input with a clear message.

    The model and params come from the chat's settings (`generate`: its generating model,
    for a new image from the prompt alone, `inputs` empty) unless `model_params` is given (a
    repeat of an earlier edit); `dedupe_key` defaults to the origin message. Who may ask and
    on what terms (allowlist, group moderation) is decided by `bot.policy`.
    """
    refused = await policy.access_refusal(services, origin)
    if refused is not None:
        await answer(bot, origin, services.tr(origin.lang, refused))
        return
    prompt = clean_prompt(raw_prompt)
    prefs = ChatPrefs()
    if model_params is None or origin.group:  # a group's moderation rules apply to repeats too
        prefs = await services.db.chat_settings.get(origin.chat_id, fresh=True)
    settings = services.settings
    if model_params is None and generate:
        model_params = resolve_generation(
            prefs, services.registry, settings.default_generator, settings.default_model
        )
        if model_params is None:
            await answer(bot, origin, services.tr(origin.lang, "imagine.unavailable"))
            return
    if model_params is None:
        model_params = resolve(prefs, services.registry, settings.default_model)
    model_id, chosen = model_params
    params = policy.enforced_params(services.registry, prefs.moderation, origin, model_id, chosen)
    images = [photo for photo in inputs if photo.role == "image"]
    has_mask = len(images) != len(inputs)
    try:
        services.edits.check_request(model_id, prompt, len(images), params, has_mask=has_mask)
    except InputRejected as exc:
        await answer(bot, origin, services.tr(origin.lang, f"error.input.{exc.code}", **exc.params))
        return
    spec = services.registry.model(model_id)
    cost = expected_cost(spec, params, settings.model_costs)
    own = await services.db.user_controls.limits_for(origin.user_id)
    # Paid edits: the requester's balance (never a group's) is checked with the limits and
    # reserved by the insert that records the edit (README: "Paid edits").
    charge = charge_for(settings, origin.user_id, spec, params)
    request_limits = limits.for_request(settings, origin.user_id, cost, own, charge)

    async def record(state: EditState, guard: InsertGuard | None) -> Edit | None:
        return await services.edits.create(
            dedupe_key=dedupe_key or f"msg:{origin.chat_id}:{origin.message_id}",
            chat_id=origin.chat_id,
            chat_type=origin.chat_type,
            user_id=origin.user_id,
            message_id=origin.message_id,
            lang=origin.lang,
            model_id=model_id,
            prompt=prompt,
            inputs=inputs,
            params=params,
            unblock_chat=True,
            claim=True,
            state=state,
            user_name=origin.user_name or None,
            thread_id=origin.thread_id,
            guard=guard,
            cost_estimate=cost,
        )

    moderation = prefs.moderation
    edit = await policy.admit(bot, services, origin, moderation, prompt, record, request_limits)
    if isinstance(edit, policy.Refusal):
        text = policy.refusal_text(services, origin.lang, edit, now=time.time())
        await answer(bot, origin, text)
        return
    if edit is None:
        log.info("repeated update ignored", extra={"chat_id": origin.chat_id})
        return
    if request_limits.cap is not None and request_limits.cap.active:
        await limits.watch_cap(services)
    if edit.state is EditState.AWAITING_APPROVAL:
        await post_request(bot, services, origin, edit)  # nothing spent until then
        return
    # The status message goes out while the photos are fetched and stored.
    status = _send_status(bot, services, origin, "edit.queued" if inputs else "imagine.queued")
    await services.edits.submit(edit.id, claimed=edit, status=status)


async def _send_status(bot: Bot, services: Services, origin: Origin, key: str) -> int | None:
    """Say the edit is under way (catalog key `key`); its message id, or None if it could not
    be sent. Past Telegram's bot-wide limit it gives way to the messages waiting there (the
    results of earlier edits), and the edit waits for it before it is submitted."""
    params = {
        "chat_id": origin.chat_id,
        "text": services.tr(origin.lang, key),
        "reply_parameters": reply_to(origin.message_id),
        "message_thread_id": origin.thread_id,
    }
    try:
        message = await api_call(bot, "sendMessage", params, gives_way=True)
    except TelegramError as exc:
        log.warning(
            "status message not sent", extra={"chat_id": origin.chat_id, "error": exc.message}
        )
        return None
    message_id = message.get("message_id")
    return message_id if isinstance(message_id, int) else None
