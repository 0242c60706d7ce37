"""Pending prompts: a photo sent without a prompt waits for one, the user's next text.

The photos wait in the database (the answer may reach another replica) for up to MAX_AGE;
the bot asks with a ForceReply. The text that follows is the prompt (`take`), /cancel drops
the wait (`take` too), and a settings question asked before the photo yields to it
(`asked_at`).
"""

from __future__ import annotations

from telegram import Bot, ForceReply

from bot.origin import Origin, answer
from bot.services import Services
from domain.edit import InputPhoto

MAX_AGE = 3600.0


async def ask(
    bot: Bot,
    services: Services,
    origin: Origin,
    inputs: list[InputPhoto],
    *,
    question: str = "edit.ask_prompt",
) -> None:
    """Keep the photos for the user's next text and ask for it (`question`: catalog key)."""
    await services.db.prompts.put(origin.chat_id, origin.user_id, origin.message_id, inputs)
    await answer(
        bot,
        origin,
        services.tr(origin.lang, question),
        reply_markup=ForceReply(selective=True),
    )


async def take(services: Services, chat_id: int, user_id: int) -> list[InputPhoto] | None:
    """The photos waiting for this user's prompt (no longer waiting), or None."""
    pending = await services.db.prompts.take(chat_id, user_id, max_age=MAX_AGE)
    if pending is None:
        return None
    _photo_message_id, inputs = pending
    return inputs


async def asked_at(services: Services, chat_id: int, user_id: int) -> float | None:
    """When the bot asked this user for a prompt here (photos are kept until taken)."""
    return await services.db.prompts.asked_at(chat_id, user_id)
