"""Spending limits for one request: the user's own (in every chat) and the bot-wide cap.

`bot.policy` asks `RequestLimits.check` before recording an edit and passes `guard()` to the
insert, which re-checks everything with the new row counted (storage/limits.py), together
with a group's own quotas: a group can only tighten what applies to a user. The operators in
ADMIN_IDS are exempt from the per-user limits, and from the cap only with
SPEND_CAP_EXEMPT_ADMINS. When the day's or the month's spend reaches 80% of its cap, and when
the cap refuses a request, the operators are told once per period (one row per alert in the
database, so several replicas send it once).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import TypeVar

from bot.config import Settings
from bot.formats import format_credits
from bot.services import Services
from storage.balances import Charge, reservation
from storage.edits import InsertGuard
from storage.limits import LimitHit, SpendCap, UserQuota, combine_guards, limits_guard
from storage.spend import day_bounds, month_bounds
from storage.user_controls import UserOverrides

log = logging.getLogger(__name__)

NEAR_CAP = 0.8
N = TypeVar("N", int, float)


@dataclass(frozen=True)
class RequestLimits:
    """What a request by one user, expected to cost `cost` credits, is checked against."""

    user: UserQuota | None
    cap: SpendCap | None
    cost: float
    charge: Charge | None = None  # paid edits: what the requester's balance must cover

    def guard(self, also: InsertGuard | None = None) -> InsertGuard | None:
        """The insert's condition: these limits and `also` (a group's quotas); with paid
        edits, the reservation of the charge in the same transaction."""
        paid = None if self.charge is None else reservation(self.charge)
        return combine_guards(limits_guard(self.user, self.cap, also), paid)

    async def check(self, services: Services, now: float | None = None) -> LimitHit | None:
        """The limit the request would exceed now, or None; a cap refusal alerts operators."""
        now = time.time() if now is None else now
        hit = await services.db.limits.hit(self.user, self.cap, self.cost, now)
        if hit is not None and hit.kind in ("cap_daily", "cap_monthly"):
            await watch_cap(services, refused=hit, now=now)
        if hit is None and self.charge is not None:
            missing = await services.db.balances.shortfall(self.charge, now)
            if missing:
                return LimitHit("balance", missing, None)
        return hit


def for_request(
    settings: Settings,
    user_id: int,
    cost: float,
    own: UserOverrides | None = None,
    charge: Charge | None = None,
) -> RequestLimits:
    """The limits that apply to `user_id`: the settings, where an operator set none of the
    user's own (`/userlimits`, `own`; 0 there means no limit, as in the settings)."""
    operator = user_id in settings.admin_ids
    user = None
    if not operator:
        own = own or UserOverrides()
        user = UserQuota(
            user_id=user_id,
            max_in_flight=_either(own.max_in_flight, settings.user_max_in_flight),
            daily_edits=_either(own.daily_edits, settings.user_daily_edits),
            daily_credits=_either(own.daily_credits, settings.user_daily_credits or 0.0),
        )
    cap = None
    if not (operator and settings.spend_cap_exempt_admins):
        cap = SpendCap(settings.spend_cap_daily or 0.0, settings.spend_cap_monthly or 0.0)
    return RequestLimits(user=user, cap=cap, cost=cost, charge=charge)


def _either(own: N | None, setting: N) -> N:
    return setting if own is None else own


async def watch_cap(
    services: Services, *, refused: LimitHit | None = None, now: float | None = None
) -> None:
    """Tell the operators, once per period, that the spend reached 80% of a cap, or that the
    cap refused a request (nothing more fits until the period rolls over)."""
    settings = services.settings
    now = time.time() if now is None else now
    periods = (
        ("daily", settings.spend_cap_daily, day_bounds(now)),
        ("monthly", settings.spend_cap_monthly, month_bounds(now)),
    )
    for name, cap, (start, end, label) in periods:
        if not cap:
            continue
        spent = await services.db.limits.spent_since(start)
        full = refused is not None and refused.kind == f"cap_{name}"
        level = "full" if full or spent >= cap else "near" if spent >= NEAR_CAP * cap else None
        if level is None:
            continue
        if not await services.db.limits.claim_alert(f"cap:{name}:{label}:{level}", now):
            continue
        if level == "full":  # the 80% alert would come too late now
            await services.db.limits.claim_alert(f"cap:{name}:{label}:near", now)
        reset = dt.datetime.fromtimestamp(end, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        detail = services.tr(
            "en",
            f"limits.alert.{level}.{name}",
            spent=format_credits(round(spent, 2)),
            cap=format_credits(cap),
            reset=reset,
        )
        log.warning("spend cap alert", extra={"period": name, "level": level, "spent": spent})
        try:
            await services.notifier.alert_admins(f"spend_cap_{level}", detail)
        except Exception:
            log.exception("could not alert admins about the spend cap")
