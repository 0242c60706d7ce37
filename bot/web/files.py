"""GET/HEAD /files/{key}?exp=&sig=: input photos for providers, signed and expiring."""

from __future__ import annotations

from aiohttp import web

from bot.keys import SERVICES
from storage.blobs import CONTENT_TYPES, LocalBlobStore


async def serve_file(request: web.Request) -> web.StreamResponse:
    store = request.app[SERVICES].blobs
    if not isinstance(store, LocalBlobStore):
        raise web.HTTPNotFound()
    key = request.match_info["key"]
    path = store.resolve(key, request.query.get("exp", ""), request.query.get("sig", ""))
    if path is None:
        raise web.HTTPNotFound()
    extension = key.rsplit(".", 1)[-1]
    return web.FileResponse(
        path,
        headers={
            "Content-Type": CONTENT_TYPES[extension],
            "Cache-Control": "private, max-age=300",
            "X-Content-Type-Options": "nosniff",
        },
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/files/{key}", serve_file)
