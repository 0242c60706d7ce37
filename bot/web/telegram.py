"""POST /telegram: Telegram's webhook, authenticated by the secret token header.

The 200 goes out only once the update is recorded (bot.intake): Telegram never sends an
acknowledged update again. A repeat of a recorded update is answered 200 and does nothing.
"""

from __future__ import annotations

import json
import secrets

from aiohttp import web
from telegram import Update

from bot.keys import INTAKE, PTB, SETTINGS
from bot.web.errors import BadRequest

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


async def telegram_webhook(request: web.Request) -> web.Response:
    expected = request.app[SETTINGS].resolved_webhook_secret
    given = request.headers.get(SECRET_HEADER, "")
    if not secrets.compare_digest(given.encode(), expected.encode()):
        return web.json_response({"ok": False, "error": "bad secret token"}, status=403)
    body = await request.read()
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadRequest("body is not JSON") from exc
    update_id = data.get("update_id") if isinstance(data, dict) else None
    if not isinstance(update_id, int) or not 0 <= update_id < 2**63:
        raise BadRequest("not a Telegram update")
    ptb = request.app[PTB]
    try:
        update = Update.de_json(data, ptb.bot)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequest("malformed update") from exc
    try:
        payload = body.decode()
    except UnicodeDecodeError:  # JSON in UTF-16 or UTF-32: recorded as UTF-8
        payload = json.dumps(data)
    await request.app[INTAKE].accept(update, payload)
    return web.json_response({"ok": True})


def setup(app: web.Application) -> None:
    app.router.add_post("/telegram", telegram_webhook)
