"""POST /callbacks/{provider}/{edit_id}?token=...: provider completion callbacks.

The edit's state change is committed before the 200 answer, so a crash after answering
still delivers (the sweeper finds the succeeded edit); delivery itself runs in background.
"""

from __future__ import annotations

import json

from aiohttp import web

from bot.keys import SERVICES
from bot.providers.errors import CallbackRejected
from bot.web.errors import BadRequest

MAX_CALLBACK_BYTES = 256 * 1024


async def provider_callback(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    provider = request.match_info["provider"]
    try:
        edit_id = int(request.match_info["edit_id"])
    except ValueError:
        raise CallbackRejected("unknown edit", status=404) from None
    if request.content_length is not None and request.content_length > MAX_CALLBACK_BYTES:
        services.metrics.callbacks.labels(provider=provider, result="too_large").inc()
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_CALLBACK_BYTES, actual_size=request.content_length
        )
    raw = await request.content.read(MAX_CALLBACK_BYTES + 1)
    if len(raw) > MAX_CALLBACK_BYTES:
        services.metrics.callbacks.labels(provider=provider, result="too_large").inc()
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_CALLBACK_BYTES, actual_size=len(raw))
    try:
        body = json.loads(raw)
    except ValueError:
        services.metrics.callbacks.labels(provider=provider, result="malformed").inc()
        raise BadRequest("body is not JSON") from None
    try:
        outcome = await services.edits.handle_callback(
            provider, edit_id, request.query.get("token", ""), body, request.headers
        )
    except CallbackRejected:
        services.metrics.callbacks.labels(provider=provider, result="refused").inc()
        raise
    result = "applied" if outcome.changed else "duplicate"
    services.metrics.callbacks.labels(provider=provider, result=result).inc()
    return web.json_response({"ok": True, "state": outcome.state.value})


def setup(app: web.Application) -> None:
    app.router.add_post(r"/callbacks/{provider:[a-z0-9_-]{1,32}}/{edit_id}", provider_callback)
