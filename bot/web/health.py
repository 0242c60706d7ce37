"""/healthz (database, webhook) and /metrics (Prometheus)."""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError
from telegram.error import TelegramError

from bot.keys import PTB, SERVICES, SETTINGS
from bot.metrics import CONTENT_TYPE_LATEST
from domain.edit import EditState

log = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    checks: dict[str, str] = {}
    healthy = True
    try:
        await services.db.ping()
        checks["database"] = "ok"
    except (SQLAlchemyError, OSError) as exc:
        checks["database"] = f"error: {type(exc).__name__}"
        healthy = False
    settings = request.app[SETTINGS]
    if settings.webhook_mode:
        try:
            info = await request.app[PTB].bot.get_webhook_info()
            expected = f"{settings.base_url}/telegram"
            checks["webhook"] = "ok" if info.url == expected else "not set"
            healthy = healthy and info.url == expected
        except TelegramError as exc:
            checks["webhook"] = f"error: {type(exc).__name__}"
            healthy = False
    else:
        checks["webhook"] = "polling"
    return web.json_response({"ok": healthy, "checks": checks}, status=200 if healthy else 503)


async def metrics(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    meters = services.metrics
    counts = await services.db.edits.count_by_state_and_provider()
    meters.edits_by_state.clear()  # states that emptied must not keep their last value
    for (state, provider), count in counts.items():
        meters.edits_by_state.labels(state=state, provider=provider).set(count)

    def total(*states: EditState) -> int:
        return sum(count for (state, _), count in counts.items() if state in states)

    meters.queue_depth.labels(queue="submit").set(total(EditState.QUEUED))
    meters.queue_depth.labels(queue="provider").set(
        total(EditState.SUBMITTING, EditState.SUBMITTED)
    )
    meters.queue_depth.labels(queue="delivery").set(total(EditState.SUCCEEDED))
    meters.queue_depth.labels(queue="notify").set(await services.db.edits.count_unnotified())
    meters.queue_depth.labels(queue="telegram_updates").set(
        await services.db.updates.count_pending()
    )
    meters.background_tasks.set(len(services.tracker))
    return web.Response(
        body=services.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
