"""Who may ask for edits, and on what terms: the one place access rules and group moderation
are applied to a request (every path that creates an edit goes through `start_edit`, which
asks here).

Order: bot-wide bans and the allowlist (`access_refusal`, before anything else is looked
at), then, in a group with moderation rules, bans, who may edit, the blocklist and the
limits; a request that passes is recorded, waiting for an admin's approval when the group
asks for it. Nothing is downloaded, uploaded or spent for a refused or waiting request.
A result sent again (a /history button, "Again", "As file") first passes `resend_refusal`:
removals and bans hold there too.

Every request, in every chat, is also held to the user's own limits and the bot-wide spend
cap (`bot.limits`); a group's quotas only add to them.

Limits are counted from the edits table, never in memory, so every replica agrees. Two
simultaneous requests cannot both take the last slot: the insert that records an edit
re-checks all the limits in its own transaction with its new row counted (`quota_guard`
combined with the user's and the cap's, `RequestLimits.guard`), under advisory locks on
PostgreSQL (SQLite serializes writers anyway). The loser's insert is rolled back and it is
counted again, now seeing the winner: a refusal that says when to try again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from telegram import Bot

from bot.blocklist import find_blocked
from bot.formats import format_credits, format_wait
from bot.limits import RequestLimits
from bot.origin import Origin
from bot.providers.registry import ProviderRegistry
from bot.services import Services
from domain.edit import Edit, EditState
from storage.edits import InsertGuard, LimitReached
from storage.moderation import (
    SAFETY_OPTION,
    Moderation,
    Quota,
    WhoMayEdit,
    quota_guard,
)

log = logging.getLogger(__name__)

ADMIT_ATTEMPTS = 3


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused (a catalog key and its parameters), and when to retry."""

    key: str
    params: Mapping[str, Any] = field(default_factory=dict)
    retry_at: float | None = None


# Records the edit in `state`, with the limits re-checked by the insert (see module doc).
Create = Callable[[EditState, InsertGuard | None], Awaitable[Edit | None]]


async def access_refusal(services: Services, origin: Origin) -> str | None:
    """Whether the user may ask for edits here: None, or the refusal's catalog key.

    Operators (ADMIN_IDS) always may; a user an operator banned bot-wide may not, anywhere.
    Then the allowlist: open to all unless ALLOWED_USER_IDS/ALLOWED_CHAT_IDS are set, then
    only listed users (anywhere; the runtime allowlist adds to them) and listed chats
    (everyone in them). Read from the database on every request, so an operator's change
    holds on every replica at once.
    """
    settings = services.settings
    if origin.user_id in settings.admin_ids:
        return None
    control = await services.db.user_controls.get(origin.user_id)
    if control is not None and control.banned:
        return "access.banned"
    if (
        not (settings.allowed_user_ids or settings.allowed_chat_ids)
        or origin.user_id in settings.allowed_user_ids
        or origin.chat_id in settings.allowed_chat_ids
        or (control is not None and control.allowed)
    ):
        return None
    return "access.denied"


async def banned_everywhere(services: Services, user_id: int) -> bool:
    """The operators banned this user bot-wide (as `access_refusal` checks first): for where
    no chat is known, such as inline mode."""
    if user_id in services.settings.admin_ids:
        return False
    control = await services.db.user_controls.get(user_id)
    return control is not None and control.banned


async def resend_refusal(bot: Bot, services: Services, origin: Origin, edit: Edit) -> str | None:
    """Whether an earlier result may be sent again where `origin` asks (a /history button,
    "Again", "As file"): None, or the refusal's catalog key.

    Never a result an admin removed (anywhere: a removal is not undone by a repost); never
    for someone `access_refusal` turns away; in a group, never for a member its admins
    banned (admins are exempt, as for new requests).
    """
    if edit.removed_at is not None:
        return "result.removed"
    refused = await access_refusal(services, origin)
    if refused is not None:
        return refused
    if not origin.group:
        return None
    moderation = (await services.db.chat_settings.get(origin.chat_id, fresh=True)).moderation
    if origin.user_id in moderation.banned and not (
        origin.as_group or await services.admins.is_admin(bot, origin.chat_id, origin.user_id)
    ):
        return "result.banned_here"
    return None


def enforced_params(
    registry: ProviderRegistry,
    moderation: Moderation,
    origin: Origin,
    model_id: str,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """The params with what the group enforces: the safety checker on, for models that have it
    (also for repeats of edits made before the lock)."""
    enforced = dict(params)
    if origin.group and moderation.safety_locked:
        spec = registry.models.get(model_id)
        if spec is not None and SAFETY_OPTION in spec.options:
            enforced[SAFETY_OPTION] = True
    return enforced


async def admit(
    bot: Bot,
    services: Services,
    origin: Origin,
    moderation: Moderation,
    prompt: str,
    create: Create,
    limits: RequestLimits,
) -> Edit | Refusal | None:
    """Apply the group's rules and `limits` to a request and record it if they allow it.

    Returns the recorded edit (queued, or awaiting approval), a Refusal, or None for a
    repeated Telegram update (recorded before). Admins (anonymous ones too) are exempt from
    bans, "who may edit", approval, the per-member limit and the cooldown; the blocklist and
    the group's daily limit apply to everyone.
    """
    if not origin.group or not moderation.binds:
        return await _record(services, origin, None, EditState.QUEUED, create, limits)
    admin: bool | None = None

    async def is_admin() -> bool:
        nonlocal admin
        if admin is None:
            admin = origin.as_group or await services.admins.is_admin(
                bot, origin.chat_id, origin.user_id
            )
        return admin

    if origin.user_id in moderation.banned and not await is_admin():
        return Refusal("moderation.refused.banned")
    if moderation.who is WhoMayEdit.ADMINS and not await is_admin():
        return Refusal("moderation.refused.admins_only")
    if (
        moderation.who is WhoMayEdit.APPROVED
        and origin.user_id not in moderation.allowed
        and not await is_admin()
    ):
        return Refusal("moderation.refused.approved_only")
    if find_blocked(prompt, moderation.blocklist) is not None:
        return Refusal("moderation.refused.blocked")
    member_rules = moderation.approval or moderation.member_daily or moderation.cooldown
    exempt = bool(member_rules) and await is_admin()
    quota = Quota(
        chat_id=origin.chat_id,
        user_id=origin.user_id,
        member_daily=0 if exempt else moderation.member_daily,
        group_daily=moderation.group_daily,
        cooldown=0 if exempt else moderation.cooldown,
    )
    state = EditState.AWAITING_APPROVAL if moderation.approval and not exempt else EditState.QUEUED
    return await _record(services, origin, quota, state, create, limits)


async def _record(
    services: Services,
    origin: Origin,
    quota: Quota | None,
    state: EditState,
    create: Create,
    limits: RequestLimits,
) -> Edit | Refusal | None:
    """Record the edit if the group's `quota` and the user's and bot's `limits` allow it."""
    group = quota if quota is not None and quota.active else None
    for _attempt in range(ADMIT_ATTEMPTS):
        if group is not None:
            hit = await services.db.moderation.quota_hit(group)
            if hit is not None:
                return Refusal(f"moderation.limit.{hit.kind}", {"limit": hit.limit}, hit.retry_at)
        limit = await limits.check(services)
        if limit is not None:
            params = {"limit": format_credits(limit.limit)}
            return Refusal(f"limits.{limit.kind}", params, limit.retry_at)
        try:
            return await create(state, limits.guard(quota_guard(group) if group else None))
        except LimitReached:
            # A simultaneous request took the last slot: count again, now seeing it.
            log.info("limit reached by a concurrent request", extra={"chat_id": origin.chat_id})
    return Refusal("moderation.limit.busy")


def refusal_text(services: Services, lang: str, refusal: Refusal, *, now: float) -> str:
    """The refusal in the reader's language, with when to try again."""
    params = dict(refusal.params)
    if refusal.retry_at is not None:
        params["wait"] = format_wait(
            lambda key, **p: services.tr(lang, key, **p), max(0.0, refusal.retry_at - now)
        )
    return services.tr(lang, refusal.key, **params)
