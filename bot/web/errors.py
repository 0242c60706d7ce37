"""Exceptions become HTTP statuses here, once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from domain.errors import CallbackRejected

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(Exception):
    """The caller sent something malformed (400)."""


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except CallbackRejected as exc:
        log.warning("callback refused", extra={"path": request.path, "reason": exc.reason})
        return web.json_response({"ok": False, "error": exc.detail}, status=exc.status or 403)
    except BadRequest as exc:
        return web.json_response({"ok": False, "error": str(exc)}, status=400)
