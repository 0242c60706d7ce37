"""POST /telegram: Telegram's webhook, authenticated by the secret token header."""

from __future__ import annotations

import json
import secrets

from aiohttp import web
from telegram import Update

from bot.keys import PTB, SETTINGS
from bot.web.errors import BadRequest

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


async def telegram_webhook(request: web.Request) -> web.Response:
    expected = request.app[SETTINGS].resolved_webhook_secret
    given = request.headers.get(SECRET_HEADER, "")
    if not secrets.compare_digest(given.encode(), expected.encode()):
        return web.json_response({"ok": False, "error": "bad secret token"}, status=403)
    try:
        data = json.loads(await request.read())
    except (ValueError, RecursionError) as exc:
        raise BadRequest("body is not JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
        raise BadRequest("not a Telegram update")
    ptb = request.app[PTB]
    try:
        update = Update.de_json(data, ptb.bot)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequest("malformed update") from exc
    await ptb.update_queue.put(update)
    return web.json_response({"ok": True})


def setup(app: web.Application) -> None:
    app.router.add_post("/telegram", telegram_webhook)
