"""Inline mode: `@bot` in any chat lists the user's recent results to share them there.

Results are re-sent by their cached Telegram file ids (nothing is downloaded); the answer
is personal and cached only briefly, so a new result shows up at once. A result an admin
removed is never offered, and someone the operators banned is offered nothing (an inline
query does not say which chat it is for, so a group's own bans cannot be told apart here).
"""

from __future__ import annotations

import logging

from telegram import (
    InlineQueryResult,
    InlineQueryResultCachedDocument,
    InlineQueryResultCachedPhoto,
    InlineQueryResultsButton,
    Update,
)
from telegram.error import BadRequest
from telegram.ext import Application, InlineQueryHandler

from bot.buttons import shorten
from bot.handlers.common import query_expired
from bot.policy import banned_everywhere
from bot.services import BotContext
from domain.edit import Edit, EditState

MAX_RESULTS = 50  # Telegram's limit per answer
SEARCH_DEPTH = 100
CACHE_SECONDS = 5
TITLE_MAX = 64

log = logging.getLogger(__name__)


def inline_results(edits: list[Edit], query: str) -> list[InlineQueryResult]:
    """Cached photos (documents for results sent as files) of delivered edits whose result
    was not removed, newest first."""
    needle = query.strip().casefold()
    results: list[InlineQueryResult] = []
    for edit in edits:
        if edit.state is not EditState.DELIVERED or not edit.result_file_ids:
            continue
        if edit.removed_at is not None:
            continue
        if needle and needle not in edit.prompt.casefold():
            continue
        title = shorten(edit.prompt, TITLE_MAX)
        for index, file_id in enumerate(edit.result_file_ids):
            result_id = f"{edit.id}-{index}"
            if edit.params.get("send_as_file"):
                results.append(
                    InlineQueryResultCachedDocument(
                        result_id, title=title, document_file_id=file_id
                    )
                )
            else:
                results.append(
                    InlineQueryResultCachedPhoto(result_id, photo_file_id=file_id, title=title)
                )
            if len(results) == MAX_RESULTS:
                return results
    return results


async def inline_query(update: Update, context: BotContext) -> None:
    """Answer `@bot [words]` with the user's recent results (matching the words, if any)."""
    query = update.inline_query
    if query is None:
        return
    services = context.services
    results: list[InlineQueryResult] = []
    if not await banned_everywhere(services, query.from_user.id):
        edits = await services.db.edits.recent(query.from_user.id, limit=SEARCH_DEPTH)
        results = inline_results(edits, query.query)
    button = None
    if not results:
        lang = await services.lang_for(query.from_user)
        button = InlineQueryResultsButton(
            services.tr(lang, "inline.empty"), start_parameter="inline"
        )
    try:
        await query.answer(results, cache_time=CACHE_SECONDS, is_personal=True, button=button)
    except BadRequest as exc:
        if not query_expired(exc):
            raise
        log.info("inline query answered too late", extra={"query_id": query.id})


def register(application: Application) -> None:  # type: ignore[type-arg]
    application.add_handler(InlineQueryHandler(inline_query))
